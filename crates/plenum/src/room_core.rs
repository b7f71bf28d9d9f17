//! The room's engine, sans IO. It owns who is in the room and in what role, who has
//! joined us over an open link, our shared state and streams and the peers' streams, our
//! pings, a viewer's watch over its publishers, the messages that wait for a peer's link
//! (or for a first peer), what each envelope from a link means, the gate negotiation
//! passes before it reaches a link (held while its peer is not named yet, then admitted:
//! identity, replay, the verify hook's word; or refused), each link's life and perfect
//! negotiation (`links`), the room's overlay behind one step and the signaling server's
//! word and backlog (`topology`).
//!
//! It is told the time and what happened ([`RoomCore::handle_input`]) and says what to do
//! ([`RoomCore::poll_output`], drained until [`Output::Timeout`]); the driver carries that
//! out with webrtc-rs and the server connection, and tells it what came of it. It holds no
//! connection, no task and no clock.

mod links;
mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_overlay::Input as OverlayInput;
use plenum_proto::identity::Identity;
use plenum_proto::signal::{ClientToServer, PeerSummary, Role, ServerToClient, SignalPayload};
use plenum_proto::{ChannelName, DisplayName, Envelope, EnvelopeKind, PeerId, StreamAnnouncement};

use crate::admission::{Admission, Admit, Early, Verdict};
use crate::backlog::Backlog;
use crate::lifecycle::Transport;
use crate::negotiation::Candidate;
use crate::overlay::Overlay;
use crate::types::{RoomError, RoomEvent};

pub(crate) use links::Description;

/// Streams a peer may announce at once, and the longest stream id.
pub(crate) const MAX_STREAMS_PER_PEER: usize = 8;
pub(crate) const MAX_STREAM_ID: usize = 64;
/// A ping with no pong by then is forgotten (its caller has given up long before).
pub(crate) const PING_FORGET_AFTER: Duration = Duration::from_secs(10);
/// How often messages dropped from full queues are reported (one event per peer, not one
/// per message).
pub(crate) const OVERFLOW_REPORT_EVERY: Duration = Duration::from_millis(500);
/// How often links are checked (restarts due, silence excused) while there are any.
pub(crate) const LINK_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long the core sleeps with nothing scheduled.
const IDLE: Duration = Duration::from_secs(60);
/// Names heard from relayed frames of peers not on the roster, at most.
pub(crate) const HEARD_NAMES: usize = 1024;

/// What happened, as the core is told.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// Bytes the link to `peer` delivered.
    Envelope { peer: PeerId, bytes: Bytes },
    /// The transport (ICE and DTLS) of the link to `peer` changed state.
    Transport { peer: PeerId, state: Transport },
    /// The data channel of the link to `peer` opened.
    ChannelOpen { peer: PeerId },
    /// The data channel of the link to `peer` closed.
    ChannelClosed { peer: PeerId },
    /// Our link to `peer` found a local candidate.
    Gathered { peer: PeerId, candidate: Candidate },
    /// Our offer or answer for `peer` is made (see [`Output::Offer`], [`Output::Answer`],
    /// [`Output::RestartIce`]).
    Described {
        peer: PeerId,
        kind: Description,
        sdp: String,
    },
    /// The link to `peer` failed: its transport, or a description that could not be made
    /// or applied.
    LinkFailed { peer: PeerId, reason: String },
    /// No link to `peer` could be made at all.
    NoLink { peer: PeerId, reason: String },
    /// The link to `peer` holds `queued` envelopes it does not send (past its bound, or no
    /// progress for too long).
    Stalled { peer: PeerId, queued: usize },
    /// Our network addresses changed.
    AddressesChanged,
    /// A frame from the signaling server.
    Server(ServerToClient),
    /// The server connection is gone; it is being made again.
    ServerLost { reason: String },
    /// The server connection is back; `peers` are the room's now.
    ServerBack { peers: Vec<PeerSummary> },
    /// The server connection's queue did not take this frame (see [`Output::Server`]).
    ServerFull(ClientToServer),
    /// The server connection's queue may have room again.
    ServerReady,
    /// Our own stream, added, removed or muted: announced to every open link now and to
    /// each that opens later.
    Stream(StreamAnnouncement),
    /// Our shared state, replacing what we shared (or merged into it, both objects).
    State {
        state: serde_json::Value,
        merge: bool,
    },
    /// Our verify hook's word on `peer`'s credentials.
    Verdict { peer: PeerId, ok: bool },
    /// Time passed.
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// An event for the application that must not be lost.
    Event(RoomEvent),
    /// An event the application may miss if it lags (a lossy channel's message).
    Lossy(RoomEvent),
    /// Whether room messages flow (a host room waits for its host).
    Synced(bool),
    /// Bytes for the link to `peer`, if it is open.
    Write { peer: PeerId, bytes: Bytes },
    /// A frame for the server; if its queue cannot take it, [`Input::ServerFull`].
    Server(ClientToServer),
    /// Make a new link to `peer` (replacing any) and an offer on it: then
    /// [`Input::Described`], or [`Input::NoLink`] / [`Input::LinkFailed`].
    Offer { peer: PeerId },
    /// Apply `peer`'s offer and answer it, on a new link (`fresh`, replacing any) or on
    /// the one we have (an ICE restart); then [`Input::Described`].
    Answer {
        peer: PeerId,
        sdp: String,
        fresh: bool,
    },
    /// An offer with new ICE credentials on the link to `peer`; then [`Input::Described`].
    RestartIce { peer: PeerId },
    /// Apply `peer`'s answer to our offer.
    TakeAnswer { peer: PeerId, sdp: String },
    /// Add `peer`'s candidate to our link to it.
    AddCandidate { peer: PeerId, candidate: Candidate },
    /// Close our link to `peer` (its media ends).
    Close { peer: PeerId },
    /// The link to `peer` is open: its media tracks go to the media threads.
    MediaUp { peer: PeerId },
    /// Send keyframes on the link to `peer` (it came back).
    Keyframes { peer: PeerId },
    /// A neighbour's word about a seat's voice on a cells room's stage.
    StageWord {
        peer: PeerId,
        word: crate::cell_stage::Control,
    },
    /// Our ping `id` came back after `rtt`.
    Pong { id: u64, rtt: Duration },
    /// Our ping `id` had no pong in time.
    PingLost { id: u64 },
    /// Ask our verify hook about `peer`'s credentials (its negotiation waits meanwhile).
    Verify {
        peer: PeerId,
        credentials: serde_json::Value,
    },
    /// Drop the server connection and make it anew ([`Input::ServerLost`], then
    /// [`Input::ServerBack`]).
    DropServer { reason: String },
    /// Nothing more until then, unless an input comes first.
    Timeout(Instant),
}

/// A viewer's reconnect pings while its publishers are all gone.
#[derive(Debug, Clone, Copy)]
struct Pinging {
    /// Attempts left (0: it gave up and said so).
    left: u32,
    next: Instant,
}

/// The room's engine (see the module).
#[derive(Debug)]
pub(crate) struct RoomCore {
    me: PeerId,
    role: Role,
    lossy: BTreeSet<ChannelName>,
    ping_interval: Duration,
    ping_attempts: u32,
    now: Instant,
    /// Our key, what we present with our descriptions, and the number of the last one.
    identity: Identity,
    credentials: Option<serde_json::Value>,
    seq: u64,
    /// The room's peers as the server (or a plan, or the overlay) named them.
    roster: BTreeMap<PeerId, DisplayName>,
    /// Names (and roles) the server gave with frames it relayed from peers not on the
    /// roster yet ([`HEARD_NAMES`] at most), for when a tree or relay node asks to link them.
    heard_names: HashMap<PeerId, (DisplayName, Role)>,
    /// Each peer's role, from the server.
    roles: HashMap<PeerId, Role>,
    /// Peers whose token does not grant publishing: their streams are ignored.
    viewers: BTreeSet<PeerId>,
    /// Peers the application has seen join over an open link.
    joined: BTreeSet<PeerId>,
    /// Our shared state, sent to every link that opens.
    state: Option<serde_json::Value>,
    /// Our published streams, announced to every link that opens.
    streams: BTreeMap<String, StreamAnnouncement>,
    /// Peers' streams we know of.
    remote_streams: HashMap<PeerId, BTreeSet<String>>,
    /// Our pings in flight: when each left.
    pings: BTreeMap<u64, Instant>,
    next_id: u64,
    /// A viewer: whether it has had a publisher, and its pings while all are gone.
    had_publisher: bool,
    pinging: Option<Pinging>,
    /// Messages for a peer whose link is not open or cannot take them yet, oldest first,
    /// `queue_per_peer` at most each.
    pending: HashMap<PeerId, VecDeque<Bytes>>,
    queue_per_peer: usize,
    /// Messages to everyone sent while nobody else was there, for the first link;
    /// `queue_size` at most.
    waiting: VecDeque<Bytes>,
    queue_size: usize,
    /// Messages dropped from each peer's queue since the last report, and when that was.
    overflowed: BTreeMap<PeerId, usize>,
    reported: Instant,
    /// Credentials, identity keys and description numbers: who may negotiate with us.
    admission: Admission,
    /// Negotiation from peers not named yet.
    early: Early,
    /// Our links, by peer.
    links: HashMap<PeerId, links::LinkBook>,
    /// When links were last checked.
    checked: Instant,
    /// The room's topology: a full mesh, our cell of a cellular room, our tree or relay
    /// node, or our peer of a host room; and when it wants the time next.
    overlay: Overlay,
    overlay_at: Instant,
    /// Whether links follow the overlay (a cell plan, the tree), not the roster.
    sparse: bool,
    /// In a cells room: whether we want the stage, because we speak or our hand is up, as
    /// the server was last told.
    floor: Floor,
    /// Peers the server said left while our link to them was up: gone when the link goes.
    server_gone: BTreeSet<PeerId>,
    /// Whether the server connection is there, and whether its queue refused a frame.
    server_up: bool,
    server_busy: bool,
    /// Frames for the server that could not go yet.
    backlog: Backlog<ClientToServer>,
    outputs: VecDeque<Output>,
}

/// Why we want a cells room's stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Floor {
    pub(crate) speaking: bool,
    pub(crate) hand: bool,
    pub(crate) presenting: bool,
}

impl Floor {
    /// The frame that tells the server.
    pub(crate) fn frame(self) -> ClientToServer {
        ClientToServer::Floor {
            speaking: self.speaking,
            hand: self.hand,
            presenting: self.presenting,
        }
    }
}

/// What a core is made with.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// Our id.
    pub(crate) me: PeerId,
    /// Our key, and what we present with our descriptions.
    pub(crate) identity: Identity,
    pub(crate) credentials: Option<serde_json::Value>,
    /// The number our descriptions count on from (the clock in microseconds, so that they
    /// rise across runs too).
    pub(crate) seq: u64,
    /// Our role in the room.
    pub(crate) role: Role,
    /// Whether links follow the overlay (a cell plan, the tree), not the roster.
    pub(crate) sparse: bool,
    /// Channels whose messages may be dropped when the application lags.
    pub(crate) lossy: BTreeSet<ChannelName>,
    /// A viewer whose publishers are gone pings this often, so many times.
    pub(crate) ping_interval: Duration,
    pub(crate) ping_attempts: u32,
    /// How many messages may wait.
    pub(crate) queues: Queues,
    /// A verify hook checks the credentials of peers that negotiate with us.
    pub(crate) verify: bool,
}

/// How many messages may wait, for one peer and for a first peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queues {
    pub(crate) per_peer: usize,
    pub(crate) first_peer: usize,
}

impl RoomCore {
    /// A core as `config` says, running `overlay`, at `now`.
    pub(crate) fn new(config: CoreConfig, overlay: Overlay, now: Instant) -> Self {
        let CoreConfig {
            me,
            identity,
            credentials,
            seq,
            role,
            sparse,
            lossy,
            ping_interval,
            ping_attempts,
            queues,
            verify,
        } = config;
        Self {
            me: me.clone(),
            identity,
            credentials,
            seq,
            links: HashMap::new(),
            checked: now,
            overlay,
            overlay_at: now,
            sparse,
            floor: Floor::default(),
            server_gone: BTreeSet::new(),
            server_up: true,
            server_busy: false,
            backlog: Backlog::default(),
            role,
            lossy,
            ping_interval,
            ping_attempts,
            now,
            roster: BTreeMap::new(),
            heard_names: HashMap::new(),
            roles: HashMap::new(),
            viewers: BTreeSet::new(),
            joined: BTreeSet::new(),
            state: None,
            streams: BTreeMap::new(),
            remote_streams: HashMap::new(),
            pings: BTreeMap::new(),
            next_id: 1,
            had_publisher: false,
            pinging: None,
            pending: HashMap::new(),
            queue_per_peer: queues.per_peer.max(1),
            waiting: VecDeque::new(),
            queue_size: queues.first_peer,
            overflowed: BTreeMap::new(),
            reported: now,
            admission: Admission::new(me, verify),
            early: Early::default(),
            outputs: VecDeque::new(),
        }
    }

    /// No link to `peer` while it stays (its credentials, or ours, were refused).
    pub(crate) fn refuse(&mut self, peer: &PeerId) {
        self.admission.refuse(peer);
        self.pending.remove(peer);
    }

    pub(crate) fn is_refused(&self, peer: &PeerId) -> bool {
        self.admission.is_refused(peer)
    }

    /// The identity key `peer` proved, if it did.
    pub(crate) fn key(&self, peer: &PeerId) -> Option<&plenum_proto::identity::PublicKey> {
        self.admission.key(peer)
    }

    /// A peer left: if it comes back, its credentials are checked again, its key proven
    /// again (see [`Admission::forget`]), its role told again, and nothing it sent before
    /// it was named is kept.
    pub(crate) fn forget_checks(&mut self, peer: &PeerId) {
        let roster = &self.roster;
        self.admission.forget(peer, |p| roster.contains_key(p));
        self.roles.remove(peer);
        self.viewers.remove(peer);
        self.early.forget(peer);
    }

    /// Whether messages wait for `peer` already (a new one goes behind them).
    pub(crate) fn is_behind(&self, peer: &PeerId) -> bool {
        self.pending.get(peer).is_some_and(|q| !q.is_empty())
    }

    /// Keeps a message for `peer` until its link takes it; past the bound the oldest goes,
    /// counted and reported with the others dropped since the last report.
    pub(crate) fn queue(&mut self, peer: &PeerId, bytes: Bytes) {
        let queue = self.pending.entry(peer.clone()).or_default();
        queue.push_back(bytes);
        if queue.len() > self.queue_per_peer {
            queue.pop_front();
            *self.overflowed.entry(peer.clone()).or_default() += 1;
        }
    }

    /// The oldest message waiting for `peer`.
    pub(crate) fn next_queued(&mut self, peer: &PeerId) -> Option<Bytes> {
        let queue = self.pending.get_mut(peer)?;
        let bytes = queue.pop_front();
        if queue.is_empty() {
            self.pending.remove(peer);
        }
        bytes
    }

    /// A message [`Self::next_queued`] gave that the link could not take after all: first
    /// again.
    pub(crate) fn requeue(&mut self, peer: &PeerId, bytes: Bytes) {
        self.pending
            .entry(peer.clone())
            .or_default()
            .push_front(bytes);
    }

    /// Peers that messages wait for.
    pub(crate) fn queued_for(&self) -> impl Iterator<Item = &PeerId> {
        self.pending.keys()
    }

    /// What waited for `peer` is dropped (it left, or is not ours to link).
    pub(crate) fn forget_queued(&mut self, peer: &PeerId) {
        self.pending.remove(peer);
    }

    /// A message to everyone while nobody is there: kept for the first peer whose link
    /// opens; past the bound the oldest goes, reported at once.
    pub(crate) fn hold_for_first(&mut self, bytes: Bytes) {
        self.waiting.push_back(bytes);
        if self.waiting.len() > self.queue_size {
            self.waiting.pop_front();
            tracing::warn!("a message waiting for a first peer dropped");
            let error = RoomError::WaitingOverflow { dropped: 1 };
            self.event(RoomEvent::Error(error));
        }
    }

    /// The room's peers and their names.
    pub(crate) fn roster(&self) -> &BTreeMap<PeerId, DisplayName> {
        &self.roster
    }

    pub(crate) fn is_member(&self, peer: &PeerId) -> bool {
        self.roster.contains_key(peer)
    }

    /// Names `peer` a member; whether it is new.
    pub(crate) fn add_member(&mut self, peer: PeerId, name: DisplayName) -> bool {
        self.roster.insert(peer, name).is_none()
    }

    /// Takes `peer` off the roster; whether it was on it.
    pub(crate) fn remove_member(&mut self, peer: &PeerId) -> bool {
        self.roster.remove(peer).is_some()
    }

    /// A peer's role, as the server said (the default until it did).
    pub(crate) fn role(&self, peer: &PeerId) -> Role {
        self.roles.get(peer).copied().unwrap_or_default()
    }

    pub(crate) fn set_role(&mut self, peer: PeerId, role: Role) {
        self.roles.insert(peer, role);
    }

    /// Whether `peer` may publish (its token grants it): a non-publisher's streams and
    /// tracks are ignored.
    pub(crate) fn set_publisher(&mut self, peer: &PeerId, publishes: bool) {
        if publishes {
            self.viewers.remove(peer);
        } else {
            self.viewers.insert(peer.clone());
        }
    }

    pub(crate) fn is_viewer(&self, peer: &PeerId) -> bool {
        self.viewers.contains(peer)
    }

    /// A new ping's id and its envelope; [`Self::ping_sent`] once it is on its way.
    pub(crate) fn ping(&mut self) -> (u64, Bytes) {
        let id = self.next_id();
        (
            id,
            Envelope::control(EnvelopeKind::Ping, id).encode().into(),
        )
    }

    /// Our ping `id` left at `now` (taken when it is written: the core's last input may be
    /// long before).
    pub(crate) fn ping_sent(&mut self, id: u64, now: Instant) {
        self.now = self.now.max(now);
        self.pings.insert(id, now);
    }

    /// A fresh id for an envelope of ours.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether we link to `peer` at all (a viewer links to publishers only, except where a
    /// tree or relay network decides the links; nobody links to a peer refused).
    pub(crate) fn links_with(&self, peer: &PeerId) -> bool {
        // In a tree or relay network the links are the overlay's: a viewer passes a
        // presentation on to viewers.
        let overlay = matches!(self.overlay, Overlay::Tree(_) | Overlay::Relay(_));
        (overlay || self.role.links_with(self.role(peer))) && !self.is_refused(peer)
    }

    /// `peer` is named now: what it sent before goes on.
    pub(crate) fn named(&mut self, peer: PeerId) {
        for payload in self.early.take(&peer) {
            self.admit(peer.clone(), payload);
        }
    }

    /// Takes in what happened at `now`.
    pub(crate) fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Envelope { peer, bytes } => self.link_data(peer, &bytes),
            Input::Transport { peer, state } => self.transport(peer, state),
            Input::ChannelOpen { peer } => self.channel_open(peer),
            Input::ChannelClosed { peer } => self.channel_closed(peer),
            Input::Gathered { peer, candidate } => self.gathered(peer, candidate),
            Input::Described { peer, kind, sdp } => self.described(peer, kind, sdp),
            Input::LinkFailed { peer, reason } => self.link_failed(peer, reason),
            Input::NoLink { peer, reason } => self.no_link(peer, reason),
            Input::Stalled { peer, queued } => self.stalled(peer, queued),
            Input::AddressesChanged => self.addresses_changed(),
            Input::Server(frame) => self.on_server(frame),
            Input::ServerLost { reason } => self.server_lost(reason),
            Input::ServerBack { peers } => self.server_back(peers),
            Input::ServerFull(frame) => self.server_full(frame),
            Input::ServerReady => self.server_ready(),
            Input::Stream(announcement) => self.our_stream(announcement),
            Input::State { state, merge } => self.our_state(state, merge),
            Input::Verdict { peer, ok } => self.verdict(peer, ok),
            Input::Tick => self.tick(),
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing more.
    pub(crate) fn poll_output(&mut self) -> Output {
        if self.outputs.is_empty() {
            self.step_overlay();
        }
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        let mut at = (self.now + IDLE).min(self.overlay_at);
        if let Some(sent) = self.pings.values().min() {
            at = at.min(*sent + PING_FORGET_AFTER);
        }
        if !self.overflowed.is_empty() {
            at = at.min(self.reported + OVERFLOW_REPORT_EVERY);
        }
        if !self.links.is_empty() {
            at = at.min(self.checked + LINK_CHECK_EVERY);
        }
        if let Some(pinging) = self.pinging.filter(|p| p.left > 0) {
            at = at.min(pinging.next);
        }
        Output::Timeout(at)
    }

    fn event(&mut self, event: RoomEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn malformed(&mut self, peer: PeerId, what: &str, reason: impl std::fmt::Display) {
        tracing::warn!(peer = peer.short(), error = %reason, "malformed {what} dropped");
        let reason = reason.to_string();
        self.event(RoomEvent::Error(RoomError::Malformed { peer, reason }));
    }

    fn on_envelope(&mut self, peer: PeerId, bytes: &[u8]) {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(e) => return self.malformed(peer, "envelope", e),
        };
        match envelope.kind {
            EnvelopeKind::Data => {
                let Some(channel) = envelope.channel else {
                    return self.malformed(peer, "message", "a data envelope with no channel");
                };
                let lossy = self.lossy.contains(&channel);
                let event = RoomEvent::Message {
                    channel,
                    from: peer,
                    data: Bytes::from(envelope.payload),
                };
                self.outputs.push_back(if lossy {
                    Output::Lossy(event)
                } else {
                    Output::Event(event)
                });
            }
            EnvelopeKind::Ping => {
                let pong = Envelope::control(EnvelopeKind::Pong, envelope.id).encode();
                let bytes = Bytes::from(pong);
                self.outputs.push_back(Output::Write { peer, bytes });
            }
            EnvelopeKind::Pong => {
                if let Some(sent) = self.pings.remove(&envelope.id) {
                    let rtt = self.now.saturating_duration_since(sent);
                    let id = envelope.id;
                    self.outputs.push_back(Output::Pong { id, rtt });
                }
            }
            EnvelopeKind::Heartbeat => {}
            EnvelopeKind::Stream => self.their_stream(peer, &envelope.payload),
            EnvelopeKind::Mesh | EnvelopeKind::Tree | EnvelopeKind::Relay | EnvelopeKind::Host => {
                let now = self.now;
                if let Err((what, reason)) = self.overlay.on_envelope(peer.clone(), &envelope, now)
                {
                    self.malformed(peer, what, reason);
                }
            }
            EnvelopeKind::State => match serde_json::from_slice(&envelope.payload) {
                Ok(state) => self.event(RoomEvent::State { peer, state }),
                Err(e) => self.malformed(peer, "state", e),
            },
            EnvelopeKind::Stage => match crate::cell_stage::Control::decode(&envelope.payload) {
                Ok(word) => self.outputs.push_back(Output::StageWord { peer, word }),
                Err(e) => self.malformed(peer, "stage word", e),
            },
            EnvelopeKind::Bye => {
                let known = self.roster.remove(&peer).is_some();
                self.pending.remove(&peer);
                self.bye(peer, known);
            }
        }
    }

    /// Negotiation from `from` (an offer, an answer, a candidate), through the server or
    /// relayed; from a peer not named yet it is held if `hold_unknown` (a plan or the
    /// overlay may name it soon), else dropped.
    fn negotiation(&mut self, from: PeerId, payload: SignalPayload, hold_unknown: bool) {
        if self.roster.contains_key(&from) {
            return self.admit(from, payload);
        }
        if !hold_unknown {
            tracing::debug!(
                peer = from.short(),
                "negotiation from a peer not in the roster; ignored"
            );
        } else if !self.early.hold(from.clone(), payload) {
            tracing::debug!(
                peer = from.short(),
                "too many unnamed peers negotiating; dropped"
            );
        }
    }

    /// Negotiation from a peer in the room, through admission.
    fn admit(&mut self, from: PeerId, payload: SignalPayload) {
        let delegate = self.delegates_to(&from);
        match self.admission.admit(&from, payload, delegate) {
            Admit::Pass(payload) => self.on_negotiation(from, payload),
            Admit::Held => {}
            Admit::Dropped(why) => tracing::debug!(peer = from.short(), "{why}; dropped"),
            Admit::Check { credentials } if !self.admission.hooked() => {
                let ok = self.credentials.as_ref() == Some(&credentials);
                self.verdict(from, ok);
            }
            Admit::Check { credentials } => self.outputs.push_back(Output::Verify {
                peer: from,
                credentials,
            }),
            Admit::Mismatch { kind, reason } => {
                tracing::warn!(peer = from.short(), %reason, "{kind} refused: identity mismatch");
                let reason = format!("{kind}: {reason}");
                self.event(RoomEvent::Error(RoomError::IdentityMismatch {
                    peer: from,
                    reason,
                }));
            }
        }
    }

    /// Whether we pass the root's media on to `peer` (a child of ours in a tree, or one we
    /// accepted) while we were let in with credentials: the root's word on who may watch
    /// is ours to keep, so it must present what we presented. A node let in without any
    /// passes on to anyone its parent would have taken.
    fn delegates_to(&self, peer: &PeerId) -> bool {
        self.credentials.is_some()
            && matches!(&self.overlay, Overlay::Tree(node) if !node.is_root() && node.has_child(peer))
    }

    fn verdict(&mut self, peer: PeerId, ok: bool) {
        match self.admission.verdict(&peer, ok) {
            Verdict::Stale => {}
            Verdict::Refused => {
                tracing::warn!(
                    peer = peer.short(),
                    "refused: its credentials did not pass our check"
                );
                let reason = "credentials not accepted".to_owned();
                self.signal(peer.clone(), SignalPayload::Refused { reason });
                self.refuse_link(&peer);
            }
            Verdict::Passed(held) => {
                for payload in held {
                    self.admit(peer.clone(), payload);
                }
            }
        }
    }

    /// A peer's stream announcement: its streams, bounded in number and id length; a
    /// non-publisher's are ignored.
    fn their_stream(&mut self, peer: PeerId, payload: &[u8]) {
        if self.viewers.contains(&peer) {
            tracing::info!(
                peer = peer.short(),
                "stream announcement from a viewer; ignored"
            );
            return;
        }
        let announcement: StreamAnnouncement = match serde_json::from_slice(payload) {
            Ok(a) => a,
            Err(e) => {
                return self.malformed(peer, "stream", format!("bad stream announcement: {e}"));
            }
        };
        if let StreamAnnouncement::Add { stream, .. } = &announcement {
            let known = self.remote_streams.get(&peer);
            let over = if stream.len() > MAX_STREAM_ID {
                Some(format!("a stream id longer than {MAX_STREAM_ID} bytes"))
            } else if known.is_some_and(|s| !s.contains(stream) && s.len() >= MAX_STREAMS_PER_PEER)
            {
                Some(format!("more than {MAX_STREAMS_PER_PEER} streams"))
            } else {
                None
            };
            if let Some(reason) = over {
                return self.malformed(peer, "stream announcement", reason);
            }
        }
        let streams = self.remote_streams.entry(peer.clone()).or_default();
        let event = match announcement {
            StreamAnnouncement::Add {
                stream,
                kind,
                metadata,
                muted,
            } => {
                streams.insert(stream.clone());
                RoomEvent::StreamAdded {
                    peer,
                    stream,
                    kind,
                    metadata,
                    muted,
                }
            }
            StreamAnnouncement::Remove { stream } => {
                if !streams.remove(&stream) {
                    return;
                }
                RoomEvent::StreamRemoved { peer, stream }
            }
            StreamAnnouncement::Muted { stream, muted } => {
                if !streams.contains(&stream) {
                    return;
                }
                RoomEvent::StreamMuted {
                    peer,
                    stream,
                    muted,
                }
            }
        };
        self.event(event);
    }

    /// The link's data channel opened: our streams and state go to it, and the peer joins
    /// (once per link).
    fn link_opened(&mut self, peer: PeerId) {
        for announcement in self.streams.values() {
            let bytes = Bytes::from(Envelope::stream(announcement).encode());
            self.outputs.push_back(Output::Write {
                peer: peer.clone(),
                bytes,
            });
        }
        if !self.joined.contains(&peer)
            && let Some(name) = self.roster.get(&peer).cloned()
        {
            tracing::info!(peer = peer.short(), "peer linked");
            self.joined.insert(peer.clone());
            self.event(RoomEvent::PeerJoin {
                peer: peer.clone(),
                name,
            });
        }
        if let Some(state) = &self.state {
            let bytes = state_envelope(state);
            self.outputs.push_back(Output::Write {
                peer: peer.clone(),
                bytes,
            });
        }
        // Sent to everyone while nobody was there: the first peer gets it, in order, after
        // what was queued for it alone.
        if !self.waiting.is_empty() {
            let waiting = std::mem::take(&mut self.waiting);
            let queue = self.pending.entry(peer.clone()).or_default();
            queue.extend(waiting);
            // Within its own bound and the first peer's, however often its link opens.
            let most = self.queue_per_peer + self.queue_size;
            let over = queue.len().saturating_sub(most);
            if over > 0 {
                queue.drain(..over);
                *self.overflowed.entry(peer).or_default() += over;
            }
        }
    }

    /// The link is gone: the peer's streams end, and it leaves if it had joined.
    fn link_closed(&mut self, peer: PeerId) {
        for stream in self.remote_streams.remove(&peer).unwrap_or_default() {
            self.event(RoomEvent::StreamRemoved {
                peer: peer.clone(),
                stream,
            });
        }
        if self.joined.remove(&peer) {
            tracing::info!(peer = peer.short(), "peer gone");
            self.event(RoomEvent::PeerLeave { peer });
        }
    }

    fn our_stream(&mut self, announcement: StreamAnnouncement) {
        match &announcement {
            StreamAnnouncement::Add { stream, .. } => {
                self.streams.insert(stream.clone(), announcement.clone());
            }
            StreamAnnouncement::Remove { stream } => {
                self.streams.remove(stream);
            }
            StreamAnnouncement::Muted { stream, muted } => {
                if let Some(StreamAnnouncement::Add { muted: m, .. }) = self.streams.get_mut(stream)
                {
                    *m = *muted;
                }
            }
        }
        let bytes = Bytes::from(Envelope::stream(&announcement).encode());
        self.write_to_open(bytes);
    }

    fn our_state(&mut self, state: serde_json::Value, merge: bool) {
        let state = match (self.state.take(), state, merge) {
            (Some(serde_json::Value::Object(mut old)), serde_json::Value::Object(new), true) => {
                old.extend(new);
                serde_json::Value::Object(old)
            }
            (_, state, _) => state,
        };
        self.write_to_open(state_envelope(&state));
        self.state = Some(state);
    }

    /// Bytes for every open link.
    fn write_to_open(&mut self, bytes: Bytes) {
        for peer in self.open_peers() {
            let bytes = bytes.clone();
            self.outputs.push_back(Output::Write { peer, bytes });
        }
    }

    /// A viewer with publishers linked stays quiet. Once every one is gone, it meets them
    /// again every `ping_interval`, `ping_attempts` times, then says it gave up; after that
    /// the link layer's own backoff goes on trying, and a publisher that returns (or a new
    /// one) is linked.
    fn watch_publishers(&mut self) {
        if self.role != Role::Viewer {
            return;
        }
        let linked: Vec<PeerId> = self
            .roster
            .keys()
            .filter(|p| self.links_with(p))
            .cloned()
            .collect();
        let open = linked.iter().any(|p| self.is_open(p));
        if open {
            if self.pinging.take().is_some() {
                tracing::info!("a publisher is linked again");
            }
            self.had_publisher = true;
            return;
        }
        if !self.had_publisher {
            return;
        }
        let now = self.now;
        let Some(pinging) = self.pinging.as_mut() else {
            tracing::info!("every publisher is gone; pinging");
            self.pinging = Some(Pinging {
                left: self.ping_attempts,
                next: now + self.ping_interval,
            });
            return;
        };
        if now < pinging.next || pinging.left == 0 {
            return;
        }
        pinging.left -= 1;
        pinging.next = now + self.ping_interval;
        let left = pinging.left;
        for peer in linked {
            self.meet_again(peer);
        }
        if left == 0 {
            let attempts = self.ping_attempts;
            tracing::warn!(attempts, "no publisher answered; waiting for one to return");
            self.event(RoomEvent::Error(RoomError::PublishersGone { attempts }));
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        self.overlay.handle_input(OverlayInput::Tick { now });
        if now >= self.checked + LINK_CHECK_EVERY {
            self.checked = now;
            self.check_links();
        }
        // Every tick: its deadline (the next attempt) is among the core's, and only the
        // watch moves it on.
        self.watch_publishers();
        if now >= self.reported + OVERFLOW_REPORT_EVERY {
            self.reported = now;
            for (peer, dropped) in std::mem::take(&mut self.overflowed) {
                tracing::debug!(peer = peer.short(), dropped, "queued messages dropped");
                self.event(RoomEvent::Error(RoomError::QueueOverflow { peer, dropped }));
            }
        }
        let lost: Vec<u64> = self
            .pings
            .iter()
            .filter(|(_, sent)| now.saturating_duration_since(**sent) >= PING_FORGET_AFTER)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.pings.remove(&id);
            self.outputs.push_back(Output::PingLost { id });
        }
    }
}

/// Our shared state as it travels: JSON in a `state` envelope.
pub(crate) fn state_envelope(state: &serde_json::Value) -> Bytes {
    let envelope = Envelope {
        kind: EnvelopeKind::State,
        hops: 0,
        channel: None,
        id: 0,
        // A JSON value always serializes.
        payload: serde_json::to_vec(state).unwrap_or_default(),
    };
    Bytes::from(envelope.encode())
}

#[cfg(test)]
#[path = "room_core_tests.rs"]
mod tests;
