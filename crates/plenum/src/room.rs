//! The public room API: a clonable [`Room`] handle and a [`RoomEvents`] stream.

use std::time::Duration;

use bytes::Bytes;
use plenum_proto::signal::ErrorCode;
use plenum_proto::{ChannelName, DisplayName, NameError, PeerId, RoomName};
use plenum_signal::SignalError;
use tokio::sync::{mpsc, oneshot};

use crate::config::RoomConfig;
use crate::driver::{Command, Driver};
pub use crate::events::RoomEvents;
pub use plenum_overlay::TreeTarget;

const COMMAND_QUEUE: usize = 256;

/// Largest payload [`Room::send`] accepts, in bytes: its envelope, with the longest channel
/// name, is the largest message a link carries (262,144 bytes, the SCTP `max-message-size`
/// both ends announce).
pub const MAX_MESSAGE_BYTES: usize = crate::link::SCTP_MAX_MESSAGE as usize
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

/// The state of the link to a peer, as [`Room::peers`] reports it.
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

/// Why [`Room::tree_send`] sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeSendError {
    /// The room is not a tree.
    #[error("the room is not a tree")]
    NotATree,
    /// We have no parent (we are the root, or not in the tree yet).
    #[error("no parent: this peer is the root or not in the tree yet")]
    NoParent,
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
    /// What it does in the room: two viewers never link ([`Role::links_with`]).
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
    /// A room-wide broadcast ([`Room::mesh_send`]) reached us, once.
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
    /// A linked peer's shared state ([`Room::set_state`]): sent when it changes, and when
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
    /// Our video source failed (a camera went away); the call goes on without it.
    #[error("video source failed: {0}")]
    VideoSource(String),
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

/// A handle to a joined room. Clones share the room. The room runs until [`leave`](Self::leave)
/// is called or every handle and the [`RoomEvents`] are dropped; dropping leaves abruptly
/// (peers notice through signaling), `leave` says goodbye first.
#[derive(Debug, Clone)]
pub struct Room {
    me: PeerId,
    grants: plenum_proto::token::Grants,
    publish_without_grant: bool,
    room: RoomName,
    commands: mpsc::Sender<Command>,
    audio: mpsc::Sender<crate::audio::AudioCmd>,
    video: crate::video::VideoHandle,
    /// Stream numbering and our current streams (shared by clones of the handle).
    next_stream: std::sync::Arc<std::sync::Mutex<Streams>>,
    /// Whether room messages flow (a host room's host is linked; always in other rooms).
    synced: tokio::sync::watch::Receiver<bool>,
}

/// Our published streams: at most one audio, one camera and one screen.
#[derive(Debug, Default)]
struct Streams {
    next: u64,
    audio: Option<String>,
    video: Option<String>,
    screen: Option<String>,
}

impl Streams {
    /// The slot for streams named `{prefix}-N`: `audio`, `video` (the camera) or `screen`.
    fn slot(&mut self, prefix: &str) -> &mut Option<String> {
        match prefix {
            "video" => &mut self.video,
            "screen" => &mut self.screen,
            _ => &mut self.audio,
        }
    }
}

/// A named channel of a room.
#[derive(Debug, Clone)]
pub struct Channel {
    room: Room,
    name: ChannelName,
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &ChannelName {
        &self.name
    }

    /// Sends `data` to `to`. Peers whose link is not open yet get it when it opens.
    pub async fn send(&self, data: impl Into<Bytes>, to: Target) -> Result<(), SendError> {
        self.room.send(&self.name, data.into(), to).await
    }
}

impl Room {
    /// Joins the room: connects to signaling, waits for the welcome, starts linking peers.
    pub async fn join(config: RoomConfig) -> Result<(Room, RoomEvents), JoinError> {
        let (signal, welcome) = crate::session::connect(&config).await?;
        let publish_without_grant = config.publish_without_grant;
        let me = welcome.me.clone();
        let grants = welcome.grants;
        let roster_len = welcome.peers.len();
        let (events_tx, events_rx) = crate::events::channel();
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let room = config.room.clone();
        tracing::info!(room = %room, peer = me.short(), peers = roster_len, "joined");
        let opus = crate::audio::opus_config(config.audio_bitrate_kbps);
        let (audio, audio_thread) =
            crate::audio::spawn(events_tx.clone(), config.voice_processing, opus);
        let (video, video_thread) =
            crate::video::spawn(events_tx.clone(), config.video_bitrate_kbps);
        let driver = Driver::new(
            config,
            signal,
            welcome,
            commands_rx,
            events_tx,
            (audio.clone(), video.clone()),
            vec![audio_thread, video_thread],
        );
        let synced = driver.synced();
        tokio::spawn(driver.run());
        let room = Room {
            synced,
            me,
            grants,
            publish_without_grant,
            room,
            commands,
            audio: audio.cmds,
            video,
            next_stream: Default::default(),
        };
        Ok((room, events_rx))
    }

    /// Resolves once room messages flow: at once in a room without a host; in a host room
    /// when we are linked to the host and in step with it (or are the host). Messages sent
    /// before are queued, not lost.
    pub async fn wait_to_sync(&self) -> Result<(), RoomClosed> {
        let mut synced = self.synced.clone();
        synced
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| RoomClosed)
    }

    /// Whether room messages flow now (see [`wait_to_sync`](Self::wait_to_sync)).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    async fn audio(&self, cmd: crate::audio::AudioCmd) -> Result<(), RoomClosed> {
        self.audio.send(cmd).await.map_err(|_| RoomClosed)
    }

    /// Publishes audio from `source` to every peer (replacing what we published before), or
    /// stops publishing with `None`. Every link carries an Opus track from the start, so this
    /// never renegotiates.
    pub async fn set_audio_source(
        &self,
        source: Option<Box<dyn plenum_media::AudioSource>>,
    ) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Source(source)).await
    }

    /// Mutes or unmutes what we publish: while muted nothing is sent.
    pub async fn set_audio_muted(&self, muted: bool) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Muted(muted)).await
    }

    /// Turns echo cancellation and noise suppression for microphones on or off, at once.
    pub async fn set_voice_processing(
        &self,
        config: plenum_media::ProcessingConfig,
    ) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Processing(config)).await
    }

    /// Where the mix of every peer we hear goes, 20 ms at a time (`None`: nowhere). Returns
    /// once the previous sink is dropped, so a recording it wrote is complete.
    pub async fn set_audio_sink(
        &self,
        sink: Option<Box<dyn plenum_media::AudioSink>>,
    ) -> Result<(), RoomClosed> {
        let (done, replaced) = oneshot::channel();
        self.audio(crate::audio::AudioCmd::Sink(sink, done)).await?;
        replaced.await.map_err(|_| RoomClosed)
    }

    async fn announce(
        &self,
        announcement: plenum_proto::StreamAnnouncement,
    ) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::Stream(announcement))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Publishes an audio stream from `source` with the application's `metadata` (replacing
    /// the audio stream published before, if any); peers get [`RoomEvent::StreamAdded`].
    pub async fn add_stream(
        &self,
        source: Box<dyn plenum_media::AudioSource>,
        metadata: serde_json::Value,
    ) -> Result<String, PublishError> {
        self.may_publish()?;
        let stream = self.new_stream("audio").await?;
        self.set_audio_muted(false).await?;
        self.set_audio_source(Some(source)).await?;
        self.announce_added(&stream, "audio", metadata).await?;
        Ok(stream)
    }

    /// Publishes a video stream from `source` with the application's `metadata`; peers get
    /// [`RoomEvent::StreamAdded`] with kind `video`, then pictures in their video sink. A
    /// camera-like source replaces the camera stream published before, a screen source
    /// (`content()` is `Screen`) the shared screen, so that both can go out side by side; a
    /// screen's metadata gets `"type": "screen"` unless it names a type itself.
    pub async fn add_video_stream(
        &self,
        source: Box<dyn plenum_media::VideoSource>,
        mut metadata: serde_json::Value,
    ) -> Result<String, PublishError> {
        self.may_publish()?;
        let lane = source.content();
        let prefix = match lane {
            plenum_media::Content::Screen => {
                if let Some(object) = metadata.as_object_mut() {
                    object.entry("type").or_insert_with(|| "screen".into());
                } else if metadata.is_null() {
                    metadata = serde_json::json!({"type": "screen"});
                }
                "screen"
            }
            plenum_media::Content::Camera => "video",
        };
        let stream = self.new_stream(prefix).await?;
        self.video_source(lane, Some(source)).await?;
        self.announce_added(&stream, "video", metadata).await?;
        Ok(stream)
    }

    fn may_publish(&self) -> Result<(), PublishError> {
        if self.grants.publish || self.publish_without_grant {
            Ok(())
        } else {
            Err(PublishError::NotPermitted)
        }
    }

    /// What our token grants (everything on a server without tokens).
    pub fn grants(&self) -> plenum_proto::token::Grants {
        self.grants
    }

    /// Where pictures from every peer's video go (`None`: nowhere).
    pub fn set_video_sink(&self, sink: Option<Box<dyn plenum_media::VideoSink>>) {
        if let Ok(mut slot) = self.video.sink.lock() {
            *slot = sink;
        }
    }

    async fn video_source(
        &self,
        lane: plenum_media::Content,
        source: Option<Box<dyn plenum_media::VideoSource>>,
    ) -> Result<(), RoomClosed> {
        self.video
            .cmds
            .send(crate::video::VideoCmd::Source(lane, source))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Numbers a new stream `{prefix}-N`, removing the one in that slot published before.
    async fn new_stream(&self, prefix: &str) -> Result<String, RoomClosed> {
        let old = {
            let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
            streams.slot(prefix).take()
        };
        if let Some(old) = old {
            self.remove_stream(&old).await?;
        }
        let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
        streams.next += 1;
        let stream = format!("{prefix}-{}", streams.next);
        *streams.slot(prefix) = Some(stream.clone());
        Ok(stream)
    }

    async fn announce_added(
        &self,
        stream: &str,
        kind: &str,
        metadata: serde_json::Value,
    ) -> Result<(), RoomClosed> {
        self.announce(plenum_proto::StreamAnnouncement::Add {
            stream: stream.to_owned(),
            kind: kind.into(),
            metadata,
            muted: false,
        })
        .await
    }

    /// Stops publishing a stream; peers get [`RoomEvent::StreamRemoved`].
    pub async fn remove_stream(&self, stream: &str) -> Result<(), RoomClosed> {
        let prefix = stream.split_once('-').map_or("", |(prefix, _)| prefix);
        {
            let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
            let slot = streams.slot(prefix);
            if slot.as_deref() == Some(stream) {
                *slot = None;
            }
        }
        match prefix {
            "video" => {
                self.video_source(plenum_media::Content::Camera, None)
                    .await?
            }
            "screen" => {
                self.video_source(plenum_media::Content::Screen, None)
                    .await?
            }
            _ => self.set_audio_source(None).await?,
        }
        self.announce(plenum_proto::StreamAnnouncement::Remove {
            stream: stream.into(),
        })
        .await
    }

    /// Mutes or unmutes a stream without renegotiating; peers get [`RoomEvent::StreamMuted`].
    pub async fn set_stream_muted(&self, stream: &str, muted: bool) -> Result<(), RoomClosed> {
        self.set_audio_muted(muted).await?;
        self.announce(plenum_proto::StreamAnnouncement::Muted {
            stream: stream.into(),
            muted,
        })
        .await
    }

    /// The level of what our audio source captures now, in dBFS (also while muted; -inf
    /// without a source): for an input level meter.
    pub async fn audio_level(&self) -> Result<f32, RoomClosed> {
        let (reply, level) = oneshot::channel();
        self.audio(crate::audio::AudioCmd::Level(reply)).await?;
        level.await.map_err(|_| RoomClosed)
    }

    /// Our published audio stream, if any.
    pub fn audio_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.audio.clone())
    }

    /// Our published camera stream, if any.
    pub fn video_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.video.clone())
    }

    /// Our shared screen's stream, if any.
    pub fn screen_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.screen.clone())
    }

    /// Our peer id.
    pub fn id(&self) -> &PeerId {
        &self.me
    }

    /// The room's name.
    pub fn name(&self) -> &RoomName {
        &self.room
    }

    /// A named channel: UTF-8, 1 to 12 bytes.
    pub fn channel(&self, name: &str) -> Result<Channel, NameError> {
        Ok(Channel {
            room: self.clone(),
            name: ChannelName::new(name)?,
        })
    }

    /// Sends `data` on `channel` to `to`.
    pub async fn send(
        &self,
        channel: &ChannelName,
        data: Bytes,
        to: Target,
    ) -> Result<(), SendError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(SendError::TooLarge(data.len()));
        }
        let (reply, result) = oneshot::channel();
        let command = Command::Send {
            channel: channel.clone(),
            data,
            to,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| SendError::Closed)?;
        // Backpressure per link: a peer whose link holds much unsent makes this sender
        // wait, and nobody else.
        for outbox in result.await.map_err(|_| SendError::Closed)?? {
            outbox.writable().await;
        }
        Ok(())
    }

    /// Writes `bytes` as they are on the link to `peer` (nothing if it is not open), as a
    /// broken or hostile client could: for tests of the other side's checks.
    #[doc(hidden)]
    pub async fn send_raw(&self, peer: PeerId, bytes: impl Into<Bytes>) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::Raw {
                peer,
                bytes: bytes.into(),
            })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Broadcasts `data` to every peer of the room, whatever the topology: each peer gets
    /// it once ([`RoomEvent::MeshMessage`], in a tree room [`RoomEvent::TreeMessage`]). In
    /// a cellular room it travels over the overlay, forwarded cell to cell; in a tree along
    /// its edges; in a full mesh it goes straight to every link.
    pub async fn mesh_send(&self, data: impl Into<Bytes>) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::MeshSend(data.into()))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Shares a small JSON state (audio on, hand raised...) with every linked peer, and
    /// with every peer whose link opens later ([`RoomEvent::State`] on their side). With
    /// `merge`, an object's keys are set over the current state's; otherwise it replaces it.
    pub async fn set_state(&self, state: serde_json::Value, merge: bool) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::SetState { state, merge })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Sends `data` to tree neighbours, one hop: the parent, every child, or one of them
    /// ([`RoomEvent::TreeMessage`] with `hops` 1 on their side). Tree broadcasts are
    /// [`mesh_send`](Self::mesh_send).
    pub async fn tree_send(
        &self,
        to: TreeTarget,
        data: impl Into<Bytes>,
    ) -> Result<(), TreeSendError> {
        let (reply, result) = oneshot::channel();
        let command = Command::TreeSend {
            to,
            data: data.into(),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(TreeSendError::Closed);
        }
        result.await.map_err(|_| TreeSendError::Closed)?
    }

    /// Sends `data` to `to` through the relay network: directly if it is a neighbour,
    /// relayed hop by hop if not ([`RoomEvent::RelayMessage`] on its side). A target not
    /// reached within its retries comes back as [`RoomError::Unreachable`].
    pub async fn relay_send(
        &self,
        to: PeerId,
        data: impl Into<Bytes>,
    ) -> Result<(), plenum_overlay::RelaySendError> {
        let (reply, result) = oneshot::channel();
        let command = Command::RelaySend {
            to,
            data: data.into(),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(plenum_overlay::RelaySendError::Closed);
        }
        result
            .await
            .map_err(|_| plenum_overlay::RelaySendError::Closed)?
    }

    /// Forms a direct link to `peer` in a relay network, its negotiation carried over the
    /// network (no server needed); `link_up` tells when it is open.
    pub async fn connect(&self, peer: PeerId) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::RelayLink { peer, up: true })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Closes the direct link to `peer` in a relay network.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::RelayLink { peer, up: false })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Our direct links and the state of each. In a large room they are the few peers the
    /// overlay links us to, not the room's members.
    pub async fn links(&self) -> Result<Vec<(PeerId, LinkState)>, RoomClosed> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Links { reply })
            .await
            .map_err(|_| RoomClosed)?;
        result.await.map_err(|_| RoomClosed)
    }

    /// The peers of the room with the state of each link.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, RoomClosed> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Peers { reply })
            .await
            .map_err(|_| RoomClosed)?;
        result.await.map_err(|_| RoomClosed)
    }

    /// Measures the round trip to `peer` over its link (5 s timeout).
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, PingError> {
        let timeout = Duration::from_secs(5);
        let (reply, result) = oneshot::channel();
        let command = Command::Ping {
            peer: peer.clone(),
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| PingError::Closed)?;
        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(PingError::Closed),
            Err(_) => Err(PingError::Timeout(timeout)),
        }
    }

    /// Says goodbye to every peer and to the server, closes every link, and ends the room.
    pub async fn leave(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}
