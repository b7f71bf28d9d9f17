//! The room's public types: what the application sends, hears and gets back. A leaf: it
//! names nothing else of this crate, so the room, the driver, the links and the media tasks
//! all take their words from here.

use std::time::Duration;

use bytes::Bytes;
pub use plenum_overlay::TreeTarget;
use plenum_proto::signal::ErrorCode;
use plenum_proto::{ChannelName, DisplayName, PeerId};
use plenum_signal::SignalError;

/// The largest message a link carries, in bytes: the SCTP `max-message-size` both ends
/// announce, and webrtc-rs's own ceiling.
pub(crate) const SCTP_MAX_MESSAGE: u32 = 262_144;

/// Largest payload [`Room::send`](crate::Room::send) accepts, in bytes: its envelope, with the longest channel
/// name, is the largest message a link carries (262,144 bytes, the SCTP `max-message-size`
/// both ends announce).
pub const MAX_MESSAGE_BYTES: usize = SCTP_MAX_MESSAGE as usize
    - plenum_proto::envelope::header_len(plenum_proto::ChannelName::MAX_BYTES);

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every peer in the room.
    All,
    /// One peer.
    One(PeerId),
    /// A list of peers.
    Many(Vec<PeerId>),
}

/// The state of the link to a peer, as [`Room::peers`](crate::Room::peers) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Known from signaling; no link attempt yet or waiting to retry.
    Waiting,
    /// Negotiating or connecting.
    Connecting,
    /// The data channel is open.
    Connected,
    /// The transport lost the peer; it may come back.
    Disconnected,
    /// The link failed; a retry is scheduled.
    Failed,
}

impl LinkState {
    /// The state as text (`waiting`, `connecting`, `connected`, `disconnected`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
        }
    }
}

/// A change of a tree link, as [`RoomEvent::TreeLink`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeEdge {
    /// The link to our parent opened.
    ParentConnect,
    /// The link to our parent closed.
    ParentClose,
    /// A child's link opened.
    ChildConnect,
    /// A child's link closed.
    ChildClose,
}

impl TreeEdge {
    /// `parent_connect`, `parent_close`, `child_connect` or `child_close`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParentConnect => "parent_connect",
            Self::ParentClose => "parent_close",
            Self::ChildConnect => "child_connect",
            Self::ChildClose => "child_close",
        }
    }
}

/// Why [`Room::tree_send`](crate::Room::tree_send) sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeSendError {
    /// The room is not a tree.
    #[error("the room is not a tree")]
    NotATree,
    /// We have no parent (we are the root, or not in the tree yet).
    #[error("no parent: this peer is the root or not in the tree yet")]
    NoParent,
    /// Only the tree's root puts a peer on stage.
    #[error("only the tree's root puts a peer on stage")]
    NotRoot,
    /// The peer is not our parent or a linked child.
    #[error("{0} is not a tree neighbour")]
    NotNeighbour(PeerId),
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}

impl From<plenum_overlay::TreeSendError> for TreeSendError {
    fn from(e: plenum_overlay::TreeSendError) -> Self {
        match e {
            plenum_overlay::TreeSendError::NoParent => Self::NoParent,
            plenum_overlay::TreeSendError::NotRoot => Self::NotRoot,
            plenum_overlay::TreeSendError::NotNeighbour(p) => Self::NotNeighbour(p),
        }
    }
}

/// The network path a link's media and data take, after its selected ICE candidate pair:
/// the less direct of our candidate and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkPath {
    /// Directly between host addresses.
    Host,
    /// Through a NAT's mapped address (STUN, server- or peer-reflexive).
    Srflx,
    /// Through a TURN relay.
    Relay,
}

impl LinkPath {
    /// `host`, `srflx` or `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Relay => "relay",
        }
    }
}

/// One peer of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// Its display name.
    pub name: DisplayName,
    /// The state of our link to it.
    pub state: LinkState,
    /// The path of the link, once connected.
    pub path: Option<LinkPath>,
    /// The safety code of our two keys (compare it aloud), once the peer has proven its key.
    pub safety_code: Option<String>,
    /// What it does in the room: two viewers never link ([`Role::links_with`]), except
    /// where a tree or relay network decides the links.
    ///
    /// [`Role::links_with`]: plenum_proto::signal::Role::links_with
    pub role: plenum_proto::signal::Role,
    /// Whether its credentials or ours were refused: no link while it stays.
    pub refused: bool,
}

/// Something that happened in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// A link to a peer opened: it can be sent to.
    PeerJoin {
        /// The peer.
        peer: PeerId,
        /// Its display name.
        name: DisplayName,
    },
    /// A peer left, or its link was lost.
    PeerLeave {
        /// The peer.
        peer: PeerId,
    },
    /// A message on a named channel.
    Message {
        /// The channel.
        channel: ChannelName,
        /// The sender.
        from: PeerId,
        /// The payload.
        data: Bytes,
    },
    /// A peer published a stream (also reported for streams it published before our link
    /// opened).
    StreamAdded {
        /// The peer.
        peer: PeerId,
        /// Its id for the stream.
        stream: String,
        /// `audio`.
        kind: String,
        /// What the peer said about it.
        metadata: serde_json::Value,
        /// Whether it is muted.
        muted: bool,
    },
    /// A peer stopped publishing a stream, or left.
    StreamRemoved {
        /// The peer.
        peer: PeerId,
        /// Which stream.
        stream: String,
    },
    /// A peer muted or unmuted a stream.
    StreamMuted {
        /// The peer.
        peer: PeerId,
        /// Which stream.
        stream: String,
        /// Whether it is muted now.
        muted: bool,
    },
    /// A peer started or stopped speaking (its audio level, with hysteresis).
    Speaking {
        /// The peer.
        peer: PeerId,
        /// Whether it speaks now.
        speaking: bool,
    },
    /// The signaling connection came back after a loss; the session resumed.
    SignalingResumed,
    /// The path of an open link to a peer went down (silence, or our address changed); it
    /// is being restarted (ICE restart) and the peer is still in the room.
    LinkDown {
        /// The peer.
        peer: PeerId,
    },
    /// A link that was down is back; data sent meanwhile arrives, media resumes.
    LinkUp {
        /// The peer.
        peer: PeerId,
    },
    /// Our place in a cellular room changed (cell, bridges, cell size).
    MeshState(plenum_overlay::MeshState),
    /// Where another peer of a cellular room sits (for drawing the room).
    MeshPeer {
        /// The peer.
        peer: PeerId,
        /// Its cell.
        cell: u32,
    },
    /// A room-wide broadcast ([`Room::mesh_send`](crate::Room::mesh_send)) reached us, once.
    MeshMessage {
        /// The peer that broadcast it.
        from: PeerId,
        /// What it sent.
        data: Bytes,
        /// Links it crossed to get here.
        hops: u8,
    },
    /// Our place in a tree room changed.
    TreeState {
        /// Our parent, once linked (none for the root).
        parent: Option<PeerId>,
        /// Our linked children.
        children: Vec<PeerId>,
        /// Our depth (the root's is 0), once known.
        depth: Option<u32>,
        /// Whether we are the root.
        is_root: bool,
        /// The root, once known: whose media reaches us down the tree, and the name
        /// under which we hear and see it.
        root: Option<PeerId>,
        /// The root's display name, once known (most of the tree is not linked to it).
        root_name: Option<DisplayName>,
        /// How many are in our subtree, ourselves included, as our children last said: at
        /// the root, everyone in the tree.
        subtree: u32,
    },
    /// At a tree's root: a viewer raised (or lowered) its hand
    /// ([`Room::raise_hand`](crate::Room::raise_hand)).
    Hand {
        /// Whose hand.
        peer: PeerId,
        /// Its name, as it said (most of a tree is not linked to the root).
        name: DisplayName,
        /// Raised or lowered.
        raised: bool,
    },
    /// In a tree room: the root put `speaker` on stage (`None`: nobody). Its voice now
    /// reaches every peer along the tree.
    Stage {
        /// The peer on stage.
        speaker: Option<PeerId>,
        /// Its name, as its raised hand said (`None`: it raised none, or nobody is on stage).
        name: Option<DisplayName>,
    },
    /// In a cells room: who holds each seat of the stage, whose voices reach every cell
    /// (`None`: an empty seat). The server seats whoever speaks or raises a hand.
    Seats {
        /// The seats, in order; a seat's voice keeps its seat while it speaks.
        seats: Vec<Option<plenum_proto::signal::StageSeat>>,
        /// Who presents: its camera and screen reach every cell ([`crate::Room::present`]).
        presenter: Option<plenum_proto::signal::StageSeat>,
    },
    /// A tree link opened or closed.
    TreeLink {
        /// The peer at the other end.
        peer: PeerId,
        /// What happened.
        edge: TreeEdge,
    },
    /// A tree broadcast reached us (once), or a tree neighbour sent to us.
    TreeMessage {
        /// The peer that sent it first.
        origin: PeerId,
        /// The neighbour it came from.
        from: PeerId,
        /// Whether that neighbour is our parent.
        from_parent: bool,
        /// Links it crossed.
        hops: u8,
        /// The bytes.
        data: Bytes,
    },
    /// Our neighbours in a relay room changed (the peers we hold direct links to).
    RelayState {
        /// Our neighbours.
        neighbours: Vec<PeerId>,
    },
    /// In a host room: we are linked to a host and in step with it (or we are the host).
    Host {
        /// The host.
        peer: PeerId,
        /// Whether it is us.
        is_self: bool,
    },
    /// In a host room: whether room messages flow now, or wait for a host (sent ones are
    /// queued and delivered once it is back).
    Synced {
        /// In step with a host.
        in_sync: bool,
    },
    /// In a host room: a peer's join data ([`crate::RoomConfigBuilder::init_data`]).
    InitData {
        /// The peer.
        peer: PeerId,
        /// What it set.
        data: serde_json::Value,
    },
    /// A linked peer's shared state ([`Room::set_state`](crate::Room::set_state)): sent when it changes, and when
    /// our link to it opens.
    State {
        /// The peer.
        peer: PeerId,
        /// Its state.
        state: serde_json::Value,
    },
    /// In a host room: a peer entered the room (not necessarily linked to us).
    MemberJoined {
        /// The peer.
        peer: PeerId,
        /// Everyone in the room now, us included, in id order.
        peers: Vec<PeerId>,
    },
    /// In a host room: a peer left the room.
    MemberLeft {
        /// The peer.
        peer: PeerId,
        /// Everyone in the room now, us included, in id order.
        peers: Vec<PeerId>,
    },
    /// A relay network's message for us arrived (once).
    RelayMessage {
        /// The peer that sent it.
        from: PeerId,
        /// Links it crossed.
        hops: u8,
        /// The bytes.
        data: Bytes,
    },
    /// Something went wrong that did not end the room.
    Error(RoomError),
    /// The room ended (left, or the engine stopped). Nothing follows.
    Closed,
}

/// A failure reported as an event; the room goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The link to a peer failed or timed out; it is retried while the peer is in the room.
    #[error("link to {peer} failed: {reason}")]
    LinkFailed {
        /// The peer.
        peer: PeerId,
        /// What happened.
        reason: String,
    },
    /// A peer sent bytes that are not an envelope; they were dropped.
    #[error("malformed message from {peer}: {reason}")]
    Malformed {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        reason: String,
    },
    /// Messages queued for a peer whose link is not open overflowed; the oldest were dropped.
    /// Reported at most every half second per peer, with how many since the last report.
    #[error("{dropped} queued messages for {peer} dropped")]
    QueueOverflow {
        /// The peer.
        peer: PeerId,
        /// How many.
        dropped: usize,
    },
    /// Room messages waiting (in a host room for a host; in another room, sent while
    /// nobody else was there, for a first peer) overflowed their queue; the oldest were
    /// dropped.
    #[error("{dropped} waiting messages dropped")]
    WaitingOverflow {
        /// How many.
        dropped: usize,
    },
    /// A viewer's publishers are all gone and its reconnect pings ran out; a publisher
    /// that returns is linked again.
    #[error("no publisher answered {attempts} reconnect attempts")]
    PublishersGone {
        /// The attempts made.
        attempts: u32,
    },
    /// A peer refused our credentials (its verify hook said no): no link to it.
    #[error("{peer} did not accept our credentials: {reason}")]
    NotVerified {
        /// The peer that refused.
        peer: PeerId,
        /// What it said.
        reason: String,
    },
    /// The application left events unread past the event queue's bound
    /// ([`crate::EVENT_QUEUE_CAPACITY`]): this many were dropped here, in their place. What
    /// follows came after them.
    #[error("{dropped} events dropped: the application did not read them in time")]
    EventsLagged {
        /// How many.
        dropped: usize,
    },
    /// A peer stopped taking what we send it (its data channel made no progress for the
    /// stall timeout, or more waited than a link may hold): its link was closed so that
    /// it holds up nobody else. It is linked again if it comes back.
    #[error("link to {peer} stalled with {queued} bytes unsent; closed")]
    LinkStalled {
        /// The peer.
        peer: PeerId,
        /// Bytes that were waiting for it.
        queued: usize,
    },
    /// A relay network could not reach the peer (no route within the hop limit, after
    /// its retries).
    #[error("{peer} is unreachable through the relay network")]
    Unreachable {
        /// The target.
        peer: PeerId,
    },
    /// The signaling server refused a frame.
    #[error("signaling error {code}: {message}")]
    Signaling {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// Our audio source failed (a device went away); the call goes on without it.
    #[error("audio source failed: {0}")]
    AudioSource(String),
    /// Our camera (or test pattern) failed (a camera went away); the call goes on without it.
    #[error("video source failed: {0}")]
    VideoSource(String),
    /// Our screen capture failed (the display or the shared window went away); the call,
    /// and the camera, go on without it.
    #[error("screen capture failed: {0}")]
    ScreenSource(String),
    /// The signaling connection ended; existing links go on, and the session is resumed
    /// when the server is back.
    #[error("signaling connection lost: {0}")]
    SignalingLost(String),
    /// A link limited to relayed candidates got none: TURN refused our credentials (wrong
    /// or expired) or did not answer.
    #[error("TURN failed for the link to {peer}: {reason}")]
    TurnFailed {
        /// The peer.
        peer: PeerId,
        /// What failed.
        reason: String,
    },
    /// A peer's offer or answer does not carry a valid signature of its key over the
    /// description's DTLS fingerprint: someone between us altered it. No link is made.
    #[error("identity of {peer} does not match its description: {reason}")]
    IdentityMismatch {
        /// The peer the description claims to come from.
        peer: PeerId,
        /// What did not match.
        reason: String,
    },
}

/// Why [`crate::Room::present`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresentError {
    /// Only a cells room has a presenter: in any other, whoever links to us sees what we
    /// publish already.
    #[error("the room is not a cells room: whoever links to this peer sees its video already")]
    NotCells,
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}

/// Why a stream could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Our room token does not grant publishing (a viewer token).
    #[error("not permitted: this peer's token does not grant publishing")]
    NotPermitted,
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}

impl From<RoomClosed> for PublishError {
    fn from(_: RoomClosed) -> Self {
        Self::Closed
    }
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The signaling server could not be reached.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The server refused the join (wrong password, room full, ...).
    #[error("join refused ({code}): {message}")]
    Refused {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The server did not welcome us in time.
    #[error("no welcome from the signaling server within {0:?}")]
    Timeout(Duration),
    /// The signaling connection ended before the welcome.
    #[error("signaling connection closed before the welcome: {0}")]
    Closed(String),
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The payload is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// A target peer is not in the room.
    #[error("peer {0} is not in the room")]
    UnknownPeer(PeerId),
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}

/// Why a ping failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// The peer is not in the room or its link is not open.
    #[error("no open link to {0}")]
    NotConnected(PeerId),
    /// No pong within the timeout.
    #[error("no pong within {0:?}")]
    Timeout(Duration),
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}

/// The room has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the room is closed")]
pub struct RoomClosed;
