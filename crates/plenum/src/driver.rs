//! The room driver: one task that owns all of a room's mutable state. [`Room`](crate::Room)
//! handles talk to it over a bounded command channel; webrtc-rs callbacks and data-channel
//! readers forward into it over bounded channels; the topology tells it whom to link.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_overlay::{
    Appearance, CellMesh, CellMeshConfig, DropReason, FullMesh, HostConfig, HostNode, Input,
    RelayConfig, RelayNode, TreeConfig, TreeMsg, TreeNode, TreeTarget,
};
use plenum_proto::identity::{safety_code, sign_link};
use plenum_proto::overlay::{CellPlan, TopologySpec};
use plenum_proto::signal::{ClientToServer, PeerSummary, ServerToClient, SignalPayload};
use plenum_proto::{ChannelName, DisplayName, Envelope, EnvelopeKind, PeerId, StreamAnnouncement};
use plenum_signal::{SignalConnection, SignalEvent};
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState};

use crate::audio::{AudioCmd, AudioHandle, RtpIn};
use crate::backlog::Backlog;
use crate::config::RoomConfig;
use crate::lifecycle::{Due, Reaction, Transport};
use crate::link::{DATA_CHANNEL_LABEL, Link, LinkData, LinkEvent, LinkEventKind};
use crate::negotiation::{self, OnOffer};
use crate::outbound::TrackSender;
use crate::overlay::{Overlay, Step};
use crate::room_core::{self, RoomCore};
use crate::session::{Reconnected, Welcome};
use crate::types::{
    LinkState, PeerInfo, PingError, RoomError, RoomEvent, SendError, Target, TreeSendError,
};
use crate::video::{VideoCmd, VideoHandle};
use plenum_proto::signal::Role;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

const LINK_EVENT_QUEUE: usize = 1024;
const LINK_DATA_QUEUE: usize = 1024;
/// How often restarts and our addresses are checked.
const MAINTAIN_EVERY: Duration = Duration::from_millis(500);

/// Commands held for a media task that lags (a link going up or down is one or two).
const MEDIA_BACKLOG: usize = 1024;
/// How long a media task may take to drop its devices when the room ends.
const MEDIA_STOP: Duration = Duration::from_secs(5);

/// Remote tracks read per link: audio, camera and screen, as every link negotiates.
const MAX_TRACKS_PER_LINK: usize = 3;

/// What the core said that the driver carries out with webrtc-rs or the server, after the
/// core's outputs are drained (they are drained where nothing may be awaited).
#[derive(Debug)]
enum Deferred {
    /// Admitted negotiation for the link to `from`.
    Negotiate {
        from: PeerId,
        payload: SignalPayload,
    },
    /// Tell `peer` its credentials were refused, and close our link.
    Refuse { peer: PeerId },
}

/// What a [`Room`](crate::Room) handle asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        channel: ChannelName,
        data: Bytes,
        to: Target,
        /// Ok with the outboxes of the targets that hold more than a sender should add
        /// to: the sender waits for them, per link, and the driver does not.
        reply: oneshot::Sender<Result<Vec<crate::outbox::Outbox>, SendError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Ping {
        peer: PeerId,
        reply: oneshot::Sender<Result<Duration, PingError>>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    /// Announce a stream of ours (added, removed or muted) to every peer, now and to those
    /// whose link opens later.
    Stream(StreamAnnouncement),
    /// Broadcast to every peer of the room over the overlay.
    MeshSend(Bytes),
    /// Share our state with the linked peers.
    SetState {
        state: serde_json::Value,
        merge: bool,
    },
    /// Send to tree neighbours (tree rooms).
    TreeSend {
        to: TreeTarget,
        data: Bytes,
        reply: oneshot::Sender<Result<(), TreeSendError>>,
    },
    /// Send to a peer of a relay network, relayed if it is not a neighbour.
    RelaySend {
        to: PeerId,
        data: Bytes,
        reply: oneshot::Sender<Result<(), plenum_overlay::RelaySendError>>,
    },
    /// Form (or close) a direct link in a relay network.
    RelayLink {
        peer: PeerId,
        up: bool,
    },
    /// Our direct links and their states.
    Links {
        reply: oneshot::Sender<Vec<(PeerId, LinkState)>>,
    },
    /// Bytes written as they are on the link to a peer, as a broken or hostile client could.
    Raw {
        peer: PeerId,
        bytes: Bytes,
    },
}

pub(crate) struct Driver {
    config: RoomConfig,
    me: PeerId,
    /// Whether room messages flow (see `Room::wait_to_sync`).
    synced: tokio::sync::watch::Sender<bool>,
    /// The room's own book: roster, roles, joins, shared state, streams, pings.
    core: RoomCore,
    /// When the core wants to be told the time next.
    core_deadline: Instant,
    /// What the core said that waits for webrtc-rs or the server, in order.
    deferred: VecDeque<Deferred>,
    /// Our verify hook at work, one task per peer it is asked about (aborted with the room).
    verifying: tokio::task::JoinSet<(PeerId, bool)>,
    /// The server connection; `None` while it is away and being reconnected.
    signal: Option<SignalConnection>,
    /// Frames made while the server was away.
    backlog: Backlog<ClientToServer>,
    /// Commands for the media tasks that their queues could not take yet, in order.
    audio_backlog: Backlog<AudioCmd>,
    video_backlog: Backlog<VideoCmd>,
    /// The token that resumes our session after a drop.
    resume: String,
    reconnect_tx: mpsc::Sender<Reconnected>,
    reconnect_rx: mpsc::Receiver<Reconnected>,
    reconnecting: Option<tokio::task::JoinHandle<()>>,
    /// ICE servers from our configuration; the server's (TURN credentials) are added to them.
    base_ice: Vec<crate::config::IceServer>,
    /// The number of our last signed description.
    seq: u64,
    /// Peers the server said left while our link to them was up: gone when the link goes.
    server_gone: BTreeSet<PeerId>,
    /// Our network addresses as last seen, to notice a network change.
    addresses: crate::netwatch::Addresses,
    commands: mpsc::Receiver<Command>,
    events: crate::events::EventSender,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    data_tx: mpsc::Sender<LinkData>,
    data_rx: mpsc::Receiver<LinkData>,
    /// The room's topology: a full mesh, our cell of a cellular room, or our tree node.
    mesh: Overlay,
    /// Whether links follow the overlay (a cell plan, the tree), not the roster.
    sparse: bool,
    deadline: Instant,
    links: HashMap<PeerId, Link>,
    /// Links found stalled in this step, closed at its end.
    stalled: BTreeSet<PeerId>,
    /// Who waits for the pong of each ping in flight.
    ping_replies: HashMap<u64, oneshot::Sender<Result<Duration, PingError>>>,
    next_generation: u64,
    audio: AudioHandle,
    video: VideoHandle,
    /// The audio and video threads, joined when the room ends.
    media: Vec<crate::media_thread::MediaThread>,
}

impl Driver {
    pub(crate) fn new(
        config: RoomConfig,
        signal: SignalConnection,
        welcome: Welcome,
        commands: mpsc::Receiver<Command>,
        events: crate::events::EventSender,
        (audio, video): (AudioHandle, VideoHandle),
        media: Vec<crate::media_thread::MediaThread>,
    ) -> Self {
        let Welcome {
            me,
            peers: initial,
            ice_servers,
            resume,
            topology,
            ..
        } = welcome;
        let now = crate::clock::now();
        let seed = me.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let sparse = topology.is_overlay();
        let clock_seq = crate::clock::wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let mut mesh = match (&topology, TreeConfig::from_spec(&topology)) {
            (TopologySpec::Host {}, _) => {
                let host = HostConfig::default().with_links(config.mesh.clone());
                // JSON values always serialize.
                let init = config
                    .init_data
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).unwrap_or_default());
                let node = HostNode::new(me.clone(), host, now, seed, clock_seq, init);
                Overlay::Host(Box::new(node))
            }
            (_, Ok(Some(tree))) => {
                let tree = tree.with_links(config.mesh.clone());
                // A root claimant waits for the server to crown it (at once, or when the
                // root it stands by for goes).
                Overlay::Tree(Box::new(if config.root_secret.is_some() {
                    TreeNode::standby(me.clone(), tree, now, seed)
                } else {
                    TreeNode::join(me.clone(), tree, now, seed)
                }))
            }
            (TopologySpec::Relay { .. }, _) => {
                let relay = RelayConfig::from_spec(&topology)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .with_links(config.mesh.clone());
                match RelayNode::new(me.clone(), relay, now, seed) {
                    Some(node) => Overlay::Relay(Box::new(node)),
                    // Peer ids are 40 hex digits; a relay node needs nothing else.
                    None => Overlay::Mesh(Box::new(
                        FullMesh::with_seed(config.mesh.clone(), now, seed).with_peer(me.clone()),
                    )),
                }
            }
            (TopologySpec::Cells { .. }, _) => {
                let cells = CellMeshConfig::builder()
                    .links(config.mesh.clone())
                    .build()
                    .unwrap_or_default();
                Overlay::Mesh(Box::new(CellMesh::new(me.clone(), cells, now, seed)))
            }
            _ => Overlay::Mesh(Box::new(
                FullMesh::with_seed(config.mesh.clone(), now, seed).with_peer(me.clone()),
            )),
        };
        let queues = room_core::Queues {
            per_peer: config.queue_per_peer,
            first_peer: config.queue_size,
        };
        let core_config = room_core::CoreConfig {
            me: me.clone(),
            role: config.role,
            lossy: config.lossy_channels.clone(),
            ping_interval: config.ping_interval,
            ping_attempts: config.ping_attempts,
            queues,
            verify: config.verify.is_some(),
        };
        let mut core = RoomCore::new(core_config, now);
        for PeerSummary {
            peer,
            name,
            publish,
            role,
        } in initial
        {
            core.set_publisher(&peer, publish);
            core.set_role(peer.clone(), role);
            if peer != me && config.role.links_with(role) {
                mesh.handle_input(Input::PeerAppeared {
                    peer: peer.clone(),
                    origin: Appearance::Roster,
                    now,
                });
            }
            if peer != me {
                // A relay network's sample is whom it may link, not whom it has.
                if !matches!(mesh, Overlay::Relay(_)) {
                    core.add_member(peer, name);
                }
            }
        }
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENT_QUEUE);
        let (data_tx, data_rx) = mpsc::channel(LINK_DATA_QUEUE);
        let (reconnect_tx, reconnect_rx) = mpsc::channel(1);
        let base_ice = config.ice_servers.clone();
        let host_room = matches!(mesh, Overlay::Host(_));
        let (synced, _) = tokio::sync::watch::channel(!host_room);
        let mut driver = Self {
            config,
            me,
            synced,
            core,
            core_deadline: now,
            deferred: VecDeque::new(),
            verifying: tokio::task::JoinSet::new(),
            signal: Some(signal),
            backlog: Backlog::default(),
            audio_backlog: Backlog::with_capacity(MEDIA_BACKLOG),
            video_backlog: Backlog::with_capacity(MEDIA_BACKLOG),
            resume,
            reconnect_tx,
            reconnect_rx,
            reconnecting: None,
            base_ice,
            seq: clock_seq,
            server_gone: BTreeSet::new(),
            addresses: crate::netwatch::Addresses::now(),
            commands,
            events,
            link_tx,
            link_rx,
            data_tx,
            data_rx,
            mesh,
            sparse,
            deadline: now,
            links: HashMap::new(),
            stalled: BTreeSet::new(),
            ping_replies: HashMap::new(),
            next_generation: 1,
            audio,
            video,
            media,
        };
        driver.use_server_ice(ice_servers);
        driver
    }

    /// Follows whether room messages flow.
    pub(crate) fn synced(&self) -> tokio::sync::watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// Our configured ICE servers plus those the server handed out (TURN credentials are
    /// minted per session, so a resumed session replaces them).
    fn use_server_ice(&mut self, servers: Vec<plenum_proto::signal::IceServerInfo>) {
        let mut all = self.base_ice.clone();
        all.extend(servers.into_iter().map(|s| crate::config::IceServer {
            urls: s.urls,
            username: s.username,
            credential: s.credential,
        }));
        self.config.ice_servers = all;
    }

    /// Tells the media tasks a link's tracks went away (replaced, dropped or closed).
    fn audio_down(&mut self, peer: &PeerId) {
        self.tell_audio(AudioCmd::LinkDown { peer: peer.clone() });
        self.tell_video(VideoCmd::LinkDown { peer: peer.clone() });
    }

    /// A command for the audio task, without waiting for it: what its queue cannot take
    /// now waits in order and goes on a later step (see `flush_media`).
    fn tell_audio(&mut self, cmd: AudioCmd) {
        if !self.audio_backlog.push(cmd) {
            tracing::warn!("audio task far behind; oldest command dropped");
        }
        self.flush_media();
    }

    fn tell_video(&mut self, cmd: VideoCmd) {
        if !self.video_backlog.push(cmd) {
            tracing::warn!("video task far behind; oldest command dropped");
        }
        self.flush_media();
    }

    /// Hands held commands to the media tasks while their queues have room.
    fn flush_media(&mut self) {
        let audio = &self.audio.cmds;
        self.audio_backlog.flush(|cmd| {
            match audio.try_send(cmd) {
                Err(mpsc::error::TrySendError::Full(cmd)) => Some(cmd),
                // Taken, or the task is gone (the room is ending): nothing to hold.
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            }
        });
        let video = &self.video.cmds;
        self.video_backlog.flush(|cmd| match video.try_send(cmd) {
            Err(mpsc::error::TrySendError::Full(cmd)) => Some(cmd),
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        });
    }

    pub(crate) async fn run(mut self) {
        self.drive_mesh().await;
        let mut maintenance = tokio::time::interval(MAINTAIN_EVERY);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = maintenance.tick() => self.maintain().await,
                command = self.commands.recv() => match command {
                    Some(Command::Leave { reply }) => {
                        self.leave().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                    // Every handle is gone: end without goodbyes.
                    None => break,
                },
                Some(event) = self.link_rx.recv() => self.on_link_event(event).await,
                Some(data) = self.data_rx.recv() => self.on_data(data).await,
                event = next_signal(&mut self.signal) => self.on_signal(event).await,
                Some(back) = self.reconnect_rx.recv() => self.on_reconnected(back).await,
                Some(verdict) = self.verifying.join_next() => match verdict {
                    Ok((peer, ok)) => {
                        self.tell_core(room_core::Input::Verdict { peer, ok });
                        self.run_deferred().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "the verify hook did not finish"),
                },
                () = tokio::time::sleep_until(self.deadline.min(self.core_deadline).into()) => {
                    let now = crate::clock::now();
                    self.tell_core(room_core::Input::Tick);
                    self.mesh.handle_input(Input::Tick { now });
                }
            }
            self.drive_mesh().await;
            self.flush_backlog();
            self.flush_media();
            self.flush_all_pending();
            self.close_stalled().await;
        }
        self.stop_reconnecting();
        self.close_all();
        self.stop_media().await;
    }

    /// Stops the audio and video tasks (dropping sources and sinks: devices close,
    /// recordings complete) and joins their threads, whoever still holds a `Room`.
    async fn stop_media(&mut self) {
        let mut stopping = Vec::new();
        let (done, stopped) = oneshot::channel();
        if self.audio.cmds.send(AudioCmd::Stop(done)).await.is_ok() {
            stopping.push(stopped);
        }
        let (done, stopped) = oneshot::channel();
        if self.video.cmds.send(VideoCmd::Stop(done)).await.is_ok() {
            stopping.push(stopped);
        }
        for stopped in stopping {
            if tokio::time::timeout(MEDIA_STOP, stopped).await.is_err() {
                tracing::warn!("a media task did not stop in time");
            }
        }
        for thread in std::mem::take(&mut self.media) {
            thread.join().await;
        }
    }

    fn stop_reconnecting(&mut self) {
        if let Some(task) = self.reconnecting.take() {
            task.abort();
        }
    }

    /// Hands an event to the application without waiting for it: an application that
    /// lags gets `EventsLagged` in place of what it missed (see `events.rs`), and the room
    /// goes on meanwhile.
    fn emit(&self, event: RoomEvent) {
        // Nobody listening is not an error: the application dropped its event stream.
        self.events.send(event);
    }

    /// Tells the core what happened, now, and carries out what it says.
    fn tell_core(&mut self, input: room_core::Input) {
        self.core.handle_input(crate::clock::now(), input);
        self.drain_core();
    }

    /// Carries out what the core says until it waits.
    fn drain_core(&mut self) {
        loop {
            match self.core.poll_output() {
                room_core::Output::Event(event) => self.emit(event),
                room_core::Output::Lossy(event) => {
                    self.events.send_lossy(event);
                }
                room_core::Output::Write { peer, bytes } => {
                    self.write(&peer, bytes);
                }
                room_core::Output::WriteOpen(bytes) => self.write_to_open(bytes),
                room_core::Output::Overlay { peer, envelope } => self.on_overlay(peer, envelope),
                room_core::Output::Bye { peer, known } => {
                    self.core.forget_checks(&peer);
                    self.mesh.handle_input(Input::PeerGone {
                        peer: peer.clone(),
                        now: crate::clock::now(),
                    });
                    if known {
                        self.member_changed(peer, false);
                    }
                }
                room_core::Output::Pong { id, rtt } => {
                    if let Some(reply) = self.ping_replies.remove(&id) {
                        let _ = reply.send(Ok(rtt));
                    }
                }
                room_core::Output::PingLost { id } => {
                    if let Some(reply) = self.ping_replies.remove(&id) {
                        let _ = reply.send(Err(PingError::Timeout(room_core::PING_FORGET_AFTER)));
                    }
                }
                room_core::Output::Reoffer { peer } => {
                    // Forgotten and met again: the link layer offers at once, whatever its
                    // backoff.
                    let now = crate::clock::now();
                    self.mesh.handle_input(Input::PeerGone {
                        peer: peer.clone(),
                        now,
                    });
                    self.mesh.handle_input(Input::PeerAppeared {
                        peer,
                        origin: Appearance::Roster,
                        now,
                    });
                }
                room_core::Output::Negotiate { from, payload } => {
                    self.deferred
                        .push_back(Deferred::Negotiate { from, payload });
                }
                room_core::Output::Refuse { peer } => {
                    self.deferred.push_back(Deferred::Refuse { peer });
                }
                room_core::Output::Verify { peer, credentials } => {
                    if let Some(verify) = &self.config.verify {
                        let check = verify.check(peer.clone(), credentials);
                        self.verifying.spawn(async move { (peer, check.await) });
                    }
                }
                room_core::Output::Timeout(at) => {
                    self.core_deadline = at;
                    return;
                }
            }
        }
    }

    /// A topology's message from `peer`, for the overlay; one that does not decode is
    /// reported.
    fn on_overlay(&mut self, peer: PeerId, envelope: Envelope) {
        let now = crate::clock::now();
        if let Err((what, error)) = self.mesh.on_envelope(peer.clone(), &envelope, now) {
            self.malformed(peer, what, error);
        }
    }

    /// Sends a payload for `to` through the server, or holds it until the server is back.
    async fn signal(&mut self, to: &PeerId, payload: SignalPayload) {
        // Without the server, a relay network carries its links' negotiation itself: it
        // needs no server after the join. (With it, the server is the surer way: the
        // other peer may have no link yet.)
        let server_away = self.signal.is_none();
        if let Some(relay) = self.mesh.relay()
            && server_away
            && !relay.neighbours().is_empty()
            && !matches!(payload, SignalPayload::RelayLink { .. })
        {
            let bytes = serde_json::to_vec(&payload).unwrap_or_default();
            if let Err(e) = relay.send_signal(to.clone(), bytes) {
                tracing::debug!(error = %e, "negotiation not relayed");
            }
            return;
        }
        let frame = ClientToServer::Signal {
            to: to.clone(),
            from: None,
            payload,
        };
        self.send_to_server(frame).await;
    }

    /// Sends a frame to the server, or holds it until the server is back or its queue has
    /// room: the driver never waits for the server.
    async fn send_to_server(&mut self, frame: ClientToServer) {
        if !self.backlog.push(frame) {
            tracing::debug!("signaling backlog full; oldest frame dropped");
        }
        self.flush_backlog();
    }

    /// Hands held frames to the server's connection while its queue has room.
    fn flush_backlog(&mut self) {
        let Some(signal) = &self.signal else {
            return;
        };
        self.backlog.flush(|frame| match signal.tx.try_send(frame) {
            Ok(()) => None,
            Err(
                mpsc::error::TrySendError::Full(frame) | mpsc::error::TrySendError::Closed(frame),
            ) => Some(frame),
        });
    }

    /// Carries out what the overlay asks, whichever topology it is, until it waits.
    async fn drive_mesh(&mut self) {
        loop {
            match self.mesh.step() {
                Step::Link {
                    peer,
                    initiate,
                    introduce: true,
                } => self.overlay_link(peer, initiate).await,
                Step::Link { peer, initiate, .. } => {
                    if initiate {
                        self.offer_to(&peer).await;
                    }
                }
                Step::Unlink { peer, reason } => self.drop_link(&peer, reason).await,
                Step::Heartbeat(peer) => self.heartbeat(&peer),
                Step::Write { peer, bytes } => {
                    self.write(&peer, bytes);
                }
                Step::Signal { to, payload } => self.signal(&to, payload).await,
                Step::Server(frame) => self.send_to_server(frame).await,
                Step::AskLink { peer, degree } => {
                    let server_away = self.signal.is_none();
                    match self.mesh.relay() {
                        // The server is away: asked over the network instead.
                        Some(relay) if server_away && !relay.neighbours().is_empty() => {
                            relay.ask_over_network(peer, degree);
                        }
                        _ => {
                            let payload = SignalPayload::RelayLink { degree };
                            self.signal(&peer, payload).await;
                        }
                    }
                }
                Step::Negotiation { from, payload } => {
                    // Relayed by the overlay: a peer it has not named to us yet may be
                    // about to be.
                    self.gate(from, payload, true).await;
                }
                Step::Malformed { peer, what, reason } => {
                    self.malformed(peer, what, reason);
                }
                Step::Synced(in_sync) => {
                    self.synced.send_replace(in_sync);
                    self.emit(RoomEvent::Synced { in_sync });
                }
                Step::Event(event) => self.emit(event),
                Step::Timeout(at) => {
                    self.deadline = at;
                    return;
                }
            }
        }
    }

    /// A link a tree or relay node asks for: the peer joins the roster (under its short
    /// id: these overlays do not say names), we offer if it is ours to, and negotiation it
    /// sent before we knew it is taken up.
    async fn overlay_link(&mut self, peer: PeerId, initiate: bool) {
        if !self.core.is_member(&peer) {
            let name = DisplayName::new(peer.short()).unwrap_or_else(|_| self.config.name.clone());
            self.core.add_member(peer.clone(), name);
        }
        if initiate {
            self.offer_to(&peer).await;
        }
        self.tell_core(room_core::Input::Named { peer });
        self.run_deferred().await;
    }

    fn heartbeat(&mut self, peer: &PeerId) {
        let bytes = Envelope::control(EnvelopeKind::Heartbeat, 0).encode();
        self.write(peer, bytes.into());
    }

    /// Negotiation from `from`, through the core's gate (held while unnamed if
    /// `hold_unknown`; admitted, checked or refused), then to its link.
    async fn gate(&mut self, from: PeerId, payload: SignalPayload, hold_unknown: bool) {
        let input = room_core::Input::Negotiation {
            from,
            payload,
            hold_unknown,
        };
        self.tell_core(input);
        self.run_deferred().await;
    }

    /// What the core said that needs webrtc-rs or the server: admitted negotiation for its
    /// link, and refusals to tell.
    async fn run_deferred(&mut self) {
        while let Some(work) = self.deferred.pop_front() {
            match work {
                Deferred::Negotiate { from, payload } => self.on_negotiation(from, payload).await,
                Deferred::Refuse { peer } => {
                    let reason = "credentials not accepted".to_owned();
                    self.signal(&peer, SignalPayload::Refused { reason }).await;
                    self.refuse_link(&peer).await;
                }
            }
        }
    }

    /// No link to `peer` while it stays: ours is closed and the topology forgets it.
    async fn refuse_link(&mut self, peer: &PeerId) {
        self.core.refuse(peer);
        if self.links.contains_key(peer) {
            self.drop_link(peer, DropReason::Left).await;
        }
        self.mesh.handle_input(Input::PeerGone {
            peer: peer.clone(),
            now: crate::clock::now(),
        });
    }

    /// Whether we link to `peer` at all (a viewer links to publishers only).
    fn links_with(&self, peer: &PeerId) -> bool {
        let role = self.core.role(peer);
        self.config.role.links_with(role) && !self.core.is_refused(peer)
    }

    /// In a host room, the room's peers changed: the application hears whom, and the list.
    fn member_changed(&mut self, peer: PeerId, joined: bool) {
        let Some(host) = self.mesh.host() else {
            return;
        };
        let peers = host.members();
        let event = if joined {
            RoomEvent::MemberJoined { peer, peers }
        } else {
            RoomEvent::MemberLeft { peer, peers }
        };
        self.emit(event);
    }

    /// The server's plan for us in a cellular room: the peers it names are the ones we link.
    async fn on_plan(&mut self, plan: CellPlan) {
        let now = crate::clock::now();
        let mut named = BTreeSet::new();
        for s in plan
            .members
            .iter()
            .chain(plan.bridges.iter().map(|b| &b.peer))
        {
            if s.peer == self.me {
                continue;
            }
            self.core.set_publisher(&s.peer, s.publish);
            self.core.add_member(s.peer.clone(), s.name.clone());
            named.insert(s.peer.clone());
        }
        self.mesh.handle_input(Input::Plan { plan, now });
        self.drive_mesh().await;
        for peer in named {
            self.tell_core(room_core::Input::Named { peer });
        }
        self.run_deferred().await;
    }

    async fn new_link(&mut self, peer: &PeerId) -> Option<&mut Link> {
        let generation = self.next_generation;
        self.next_generation += 1;
        if let Some(old) = self.links.remove(peer) {
            old.close();
            self.audio_down(peer);
        }
        let keyframes = self.video.keyframes.clone();
        match Link::new(
            &self.config,
            peer,
            generation,
            self.link_tx.clone(),
            keyframes,
        )
        .await
        {
            Ok(link) => {
                self.links.insert(peer.clone(), link);
                self.links.get_mut(peer)
            }
            Err(e) => {
                self.link_failed(peer, format!("cannot create peer connection: {e}"))
                    .await;
                None
            }
        }
    }

    async fn link_failed(&mut self, peer: &PeerId, reason: String) {
        tracing::warn!(peer = peer.short(), %reason, "link failed");
        self.emit(RoomEvent::Error(RoomError::LinkFailed {
            peer: peer.clone(),
            reason,
        }));
        self.mesh.handle_input(Input::LinkDown {
            peer: peer.clone(),
            now: crate::clock::now(),
        });
    }

    async fn offer_to(&mut self, peer: &PeerId) {
        let (data, events) = (self.data_tx.clone(), self.link_tx.clone());
        let me = self.me.clone();
        let Some(link) = self.new_link(peer).await else {
            return;
        };
        match link.offer(&me, peer, data, events).await {
            Ok(sdp) => self.send_offer(peer, sdp).await,
            Err(e) => {
                self.link_failed(peer, format!("cannot create offer: {e}"))
                    .await
            }
        }
    }

    async fn on_signal(&mut self, event: Option<SignalEvent>) {
        let now = crate::clock::now();
        match event {
            Some(SignalEvent::Frame(ServerToClient::PeerJoined {
                peer,
                name,
                publish,
                role,
            })) => {
                self.core.set_publisher(&peer, publish);
                if peer != self.me {
                    self.server_gone.remove(&peer);
                    self.core.set_role(peer.clone(), role);
                    let new = self.core.add_member(peer.clone(), name);
                    if self.config.role.links_with(role) {
                        self.mesh.handle_input(Input::PeerAppeared {
                            peer: peer.clone(),
                            origin: Appearance::Joined,
                            now,
                        });
                    }
                    if new {
                        self.member_changed(peer, true);
                    }
                }
            }
            Some(SignalEvent::Frame(ServerToClient::PeerLeft { peer })) => {
                if self.links.get(&peer).is_some_and(|l| l.life.is_open()) {
                    // The server lost it, our link did not (its signaling dropped, or the
                    // server restarted): the link's heartbeat decides, a `bye` ends it.
                    tracing::info!(peer = peer.short(), "server says left; link still up");
                    self.server_gone.insert(peer);
                    return;
                }
                let known = self.core.remove_member(&peer);
                self.core.forget_queued(&peer);
                self.core.forget_checks(&peer);
                self.mesh.handle_input(Input::PeerGone {
                    peer: peer.clone(),
                    now,
                });
                if known {
                    self.member_changed(peer, false);
                }
            }
            Some(SignalEvent::Frame(ServerToClient::Signal {
                from,
                payload: SignalPayload::Refused { reason },
            })) => {
                tracing::warn!(peer = from.short(), %reason, "our credentials were refused");
                self.refuse_link(&from).await;
                let error = RoomError::NotVerified { peer: from, reason };
                self.emit(RoomEvent::Error(error));
            }
            Some(SignalEvent::Frame(ServerToClient::Host { peer, epoch })) => {
                match self.mesh.host() {
                    Some(host) => {
                        tracing::info!(host = peer.as_ref().map(PeerId::short), epoch, "host seat");
                        host.on_seat(peer, epoch, now);
                    }
                    None => tracing::debug!("host seat word in a room without one; ignored"),
                }
            }
            Some(SignalEvent::Frame(ServerToClient::Cell { plan })) => {
                if let Overlay::Mesh(_) = self.mesh
                    && self.sparse
                {
                    self.on_plan(plan).await;
                }
            }
            Some(SignalEvent::Frame(ServerToClient::Root {})) => {
                if let Some(tree) = self.mesh.tree() {
                    tracing::info!("the server made us the tree's root");
                    tree.promote();
                }
            }
            Some(SignalEvent::Frame(ServerToClient::Signal {
                from,
                payload: SignalPayload::RelayLink { degree },
            })) => match self.mesh.relay() {
                Some(relay) => relay.link_requested(from, degree),
                None => tracing::debug!(
                    peer = from.short(),
                    "relay link request in a room without a relay network; ignored"
                ),
            },
            Some(SignalEvent::Frame(ServerToClient::Signal {
                from,
                payload: SignalPayload::Tree { msg },
            })) => match self.mesh.tree() {
                Some(tree) => tree.handle_msg(from, TreeMsg::from(msg), now),
                None => tracing::debug!(
                    peer = from.short(),
                    "tree message in a room without a tree; ignored"
                ),
            },
            Some(SignalEvent::Frame(ServerToClient::Signal { from, payload })) => {
                // In a cellular or tree room, a plan may name the peer soon.
                self.gate(from, payload, self.sparse).await;
            }
            Some(SignalEvent::Frame(ServerToClient::IceServers { ice_servers })) => {
                tracing::debug!("fresh TURN credentials");
                self.use_server_ice(ice_servers);
            }
            Some(SignalEvent::Frame(ServerToClient::Error { code, message, .. })) => {
                tracing::warn!(code = code.as_str(), %message, "signaling refused a frame");
                self.emit(RoomEvent::Error(RoomError::Signaling { code, message }));
            }
            Some(SignalEvent::Frame(_)) => {}
            Some(SignalEvent::Closed { reason }) => self.signaling_lost(reason).await,
            None => self.signaling_lost("driver stopped".into()).await,
        }
    }

    async fn signaling_lost(&mut self, reason: String) {
        self.signal = None;
        tracing::warn!(%reason, "signaling connection lost; links go on, reconnecting");
        self.emit(RoomEvent::Error(RoomError::SignalingLost(reason)));
        self.stop_reconnecting();
        self.reconnecting = Some(crate::session::reconnect(
            self.config.clone(),
            self.resume.clone(),
            self.reconnect_tx.clone(),
        ));
    }

    /// The server is back (or refused us for good).
    async fn on_reconnected(&mut self, back: Reconnected) {
        self.reconnecting = None;
        let (signal, welcome) = match back {
            Ok(back) => back,
            Err(e) => {
                tracing::warn!(error = %e, "signaling refused our return; links go on");
                let (code, message) = match e {
                    crate::types::JoinError::Refused { code, message } => (code, message),
                    other => (plenum_proto::signal::ErrorCode::Internal, other.to_string()),
                };
                return self.emit(RoomEvent::Error(RoomError::Signaling { code, message }));
            }
        };
        self.signal = Some(signal);
        self.resume = welcome.resume;
        self.use_server_ice(welcome.ice_servers);
        let now = crate::clock::now();
        if let Some(host) = self.mesh.host() {
            // A restarted server numbers its hosts from 1 again: its word wins.
            host.forget_epoch();
        }
        // Peers that joined while we were away; those we are linked to stay as they are.
        for PeerSummary {
            peer,
            name,
            publish,
            role,
        } in welcome.peers
        {
            self.core.set_publisher(&peer, publish);
            if peer != self.me && !self.core.is_member(&peer) {
                self.core.add_member(peer.clone(), name);
                self.core.set_role(peer.clone(), role);
                if self.config.role.links_with(role) {
                    self.mesh.handle_input(Input::PeerAppeared {
                        peer,
                        origin: Appearance::Roster,
                        now,
                    });
                }
            }
        }
        let held = self.backlog.len();
        self.flush_backlog();
        tracing::info!(held, "signaling resumed");
        self.emit(RoomEvent::SignalingResumed);
    }

    /// Perfect negotiation. The peer with the larger id is polite: when both sides offer at
    /// once, the polite one drops its own offer and answers; the impolite one ignores the
    /// colliding offer and waits for the answer to its own. Either way one link remains.
    /// Admitted negotiation, for the link to `from`.
    async fn on_negotiation(&mut self, from: PeerId, payload: SignalPayload) {
        match payload {
            SignalPayload::Offer { sdp, .. } => {
                let polite = negotiation::polite(&self.me, &from);
                let verdict = self
                    .links
                    .get(&from)
                    .map_or(OnOffer::Fresh, |l| l.negotiation.on_offer(polite, &sdp));
                match verdict {
                    OnOffer::Ignore => {
                        tracing::debug!(peer = from.short(), "offer collision; keeping ours");
                    }
                    OnOffer::Restart => self.renegotiate(from, sdp).await,
                    OnOffer::Fresh => self.on_fresh_offer(from, sdp).await,
                }
            }
            SignalPayload::Answer { sdp, .. } => {
                let Some(link) = self
                    .links
                    .get_mut(&from)
                    .filter(|l| l.negotiation.expects_answer())
                else {
                    tracing::debug!(peer = from.short(), "answer without an offer; ignored");
                    return;
                };
                match link.accept_answer(sdp).await {
                    Ok(()) => link.life.answered(crate::clock::now()),
                    Err(e) => self.link_failed(&from, format!("bad answer: {e}")).await,
                }
            }
            SignalPayload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                if let Some(link) = self.links.get_mut(&from) {
                    let init = RTCIceCandidateInit {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                        ..Default::default()
                    };
                    link.add_candidate(init).await;
                }
            }
            // Tree and relay messages go to their overlay before negotiation is looked at,
            // refusals to the room.
            SignalPayload::Tree { .. }
            | SignalPayload::RelayLink { .. }
            | SignalPayload::Refused { .. } => {}
        }
    }

    /// An offer for the connection we have (the far side restarts ICE): answered on it, so
    /// data and media carry on where they were. (Both restarting at once is glare, see
    /// `negotiation.rs`: the polite side makes a new link instead.)
    async fn renegotiate(&mut self, from: PeerId, sdp: String) {
        let me = self.me.clone();
        let Some(link) = self.links.get_mut(&from) else {
            return;
        };
        tracing::info!(peer = from.short(), "answering an ICE restart");
        link.life.answering_restart(crate::clock::now());
        match link.answer(&me, sdp).await {
            Ok(sdp) => self.send_answer(&from, sdp).await,
            Err(e) => {
                self.link_failed(&from, format!("cannot answer restart: {e}"))
                    .await
            }
        }
    }

    /// The number of our next signed description: higher than any before, also across
    /// runs (it starts from the clock in microseconds).
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Signs and sends our offer.
    async fn send_offer(&mut self, to: &PeerId, sdp: String) {
        self.send_signed(to, "offer", sdp).await;
    }

    /// Signs and sends our answer.
    async fn send_answer(&mut self, to: &PeerId, sdp: String) {
        self.send_signed(to, "answer", sdp).await;
    }

    /// Numbers and signs a description of ours (`kind` is `offer` or `answer`), sends it.
    async fn send_signed(&mut self, to: &PeerId, kind: &'static str, sdp: String) {
        let key = self.config.identity.public().encode();
        let seq = self.next_seq();
        let sig = match sign_link(&self.config.identity, kind, to, seq, &sdp) {
            Ok(sig) => sig,
            Err(e) => {
                return self
                    .link_failed(to, format!("cannot sign {kind}: {e}"))
                    .await;
            }
        };
        let credentials = self.config.credentials.clone();
        let payload = if kind == "offer" {
            SignalPayload::Offer {
                sdp,
                key,
                seq,
                sig,
                credentials,
            }
        } else {
            SignalPayload::Answer {
                sdp,
                key,
                seq,
                sig,
                credentials,
            }
        };
        self.signal(to, payload).await;
    }

    /// An offer that makes a new link (replacing any other).
    async fn on_fresh_offer(&mut self, from: PeerId, sdp: String) {
        let me = self.me.clone();
        let Some(link) = self.new_link(&from).await else {
            return;
        };
        match link.answer(&me, sdp).await {
            Ok(sdp) => self.send_answer(&from, sdp).await,
            Err(e) => {
                self.link_failed(&from, format!("cannot answer offer: {e}"))
                    .await
            }
        }
    }

    async fn on_link_event(&mut self, event: LinkEvent) {
        let LinkEvent {
            peer,
            generation,
            kind,
        } = event;
        let Some(link) = self
            .links
            .get_mut(&peer)
            .filter(|l| l.generation == generation)
        else {
            return;
        };
        let now = crate::clock::now();
        match kind {
            LinkEventKind::Candidate(init) => {
                link.candidates += 1;
                let payload = SignalPayload::Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                };
                self.signal(&peer, payload).await;
            }
            LinkEventKind::State(state) => {
                tracing::debug!(peer = peer.short(), %state, "connection state");
                let transport = match state {
                    RTCPeerConnectionState::Connected => Transport::Connected,
                    RTCPeerConnectionState::Disconnected => Transport::Disconnected,
                    RTCPeerConnectionState::Failed => Transport::Failed,
                    RTCPeerConnectionState::Closed => Transport::Closed,
                    _ => Transport::Connecting,
                };
                // One side starts restarts (the smaller id), the other answers.
                let we_start = self.me < peer;
                match link.life.transport(now, transport, we_start) {
                    Reaction::Nothing => {
                        if transport == Transport::Connected {
                            link.path = link.selected_path().await;
                            tracing::info!(peer = peer.short(), path = ?link.path, "link connected");
                        }
                    }
                    Reaction::Back => {
                        link.path = link.selected_path().await;
                        self.link_back(&peer).await;
                    }
                    Reaction::Down { first, restart } => {
                        if first {
                            tracing::info!(peer = peer.short(), %state, "link down");
                            self.emit(RoomEvent::LinkDown { peer: peer.clone() });
                        }
                        if restart {
                            self.restart(&peer).await;
                        }
                    }
                    Reaction::Failed => {
                        self.link_failed(&peer, format!("connection {state}")).await;
                    }
                }
            }
            LinkEventKind::Channel(channel) => {
                if channel.label().await.ok().as_deref() == Some(DATA_CHANNEL_LABEL) {
                    link.attach(&peer, channel, self.data_tx.clone(), self.link_tx.clone());
                } else {
                    tracing::debug!(peer = peer.short(), "unexpected data channel; ignored");
                }
            }
            LinkEventKind::Track(_) if link.tasks.len() >= MAX_TRACKS_PER_LINK => {
                // Our links carry three tracks each way (audio, camera, screen): more is a
                // peer growing our readers and decoders without bound. Left unread.
                tracing::warn!(
                    peer = peer.short(),
                    "track beyond the link's bound; ignored"
                );
                link.refused_tracks += 1;
                if link.refused_tracks == 1 {
                    self.emit(RoomEvent::Error(RoomError::Malformed {
                        peer,
                        reason: format!("more than {MAX_TRACKS_PER_LINK} media tracks on one link"),
                    }));
                }
            }
            LinkEventKind::Track(track) if self.core.is_viewer(&peer) => {
                tracing::info!(
                    peer = peer.short(),
                    "media from a peer not permitted to publish; dropped"
                );
                // Read and drop: an unread track fills webrtc-rs's queue and logs each packet.
                link.tasks.push(tokio::spawn(async move {
                    while track.poll().await.is_some() {}
                }));
            }
            LinkEventKind::Track(track) => {
                let task = if track.kind().await == RtpCodecKind::Video {
                    let sink = self.video.sink.clone();
                    let lane = if track.track_id().await.starts_with("screen-") {
                        plenum_media::Content::Screen
                    } else {
                        plenum_media::Content::Camera
                    };
                    let events = self.events.clone();
                    tokio::spawn(crate::video::read_track(peer, lane, track, sink, events))
                } else {
                    let audio = self.audio.clone();
                    let loss = self.config.audio_loss_percent;
                    tokio::spawn(read_track(audio, peer, track, loss))
                };
                link.tasks.push(task);
            }
            LinkEventKind::GatheringComplete => {
                let relay_only = self.config.ice_transport == crate::config::IceTransport::Relay;
                if relay_only && link.candidates == 0 {
                    let reason = if self
                        .config
                        .ice_servers
                        .iter()
                        .any(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
                    {
                        "no relay candidate: the TURN server refused our credentials or did not answer"
                    } else {
                        "no relay candidate: no TURN server is configured"
                    };
                    tracing::warn!(peer = peer.short(), reason, "relay-only link cannot start");
                    let error = RoomError::TurnFailed {
                        peer: peer.clone(),
                        reason: reason.into(),
                    };
                    self.emit(RoomEvent::Error(error));
                }
            }
            LinkEventKind::Open => {
                if link.life.channel_opened() {
                    self.link_opened(&peer).await;
                }
            }
            LinkEventKind::Closed => {
                link.life.channel_closed();
                self.mesh.handle_input(Input::LinkDown { peer, now });
            }
        }
    }

    /// Starts (or retries) an ICE restart of the link to `peer`: new ICE credentials on the
    /// same connection, the offer signed and sent through signaling (held until the server
    /// is back if it is away).
    async fn restart(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get_mut(peer) else {
            return;
        };
        let tries = link.life.restart_started(crate::clock::now());
        tracing::info!(peer = peer.short(), tries, "ICE restart");
        match link.restart_offer().await {
            Ok(sdp) => self.send_offer(peer, sdp).await,
            Err(e) => {
                self.link_failed(peer, format!("cannot restart ICE: {e}"))
                    .await
            }
        }
    }

    /// A link that was down is connected again: report it and send keyframes so that the
    /// far side's video resumes at once.
    async fn link_back(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get(peer) else {
            return;
        };
        for track in [&link.video, &link.screen].into_iter().flatten() {
            if self
                .video
                .keyframes
                .try_send((peer.clone(), track.ssrc))
                .is_err()
            {
                tracing::trace!("keyframe request already pending");
            }
        }
        tracing::info!(peer = peer.short(), path = ?link.path, "link back");
        self.emit(RoomEvent::LinkUp { peer: peer.clone() });
    }

    /// A viewer's publishers, for the core's watch over them (told every half second).
    fn watch_publishers(&mut self) {
        if self.config.role != Role::Viewer {
            return;
        }
        let linked: Vec<PeerId> = self
            .core
            .roster()
            .keys()
            .filter(|p| self.links_with(p))
            .cloned()
            .collect();
        let open = linked
            .iter()
            .any(|p| self.links.get(p).is_some_and(|l| l.life.is_open()));
        self.tell_core(room_core::Input::Publishers { linked, open });
    }

    /// Every half second: restarts that did not finish are retried (three tries, then the
    /// link is given up and made anew), and a change of our addresses restarts every link
    /// and the signaling connection at once instead of waiting for them to go silent.
    /// The core hears the time (queue overflows are reported) and, in a viewer, how its
    /// publishers are: one whose publishers are all gone tries them again every ping
    /// interval, so many times, then says so; after that the link layer's own backoff goes
    /// on trying, and a publisher that returns (or a new one) is linked.
    async fn maintain(&mut self) {
        let now = crate::clock::now();
        self.tell_core(room_core::Input::Tick);
        self.watch_publishers();
        for (peer, link) in &mut self.links {
            if let Some((queued, taken)) = link.writer.as_ref().map(|w| w.progress())
                && link.stall.check(now, queued, taken) == crate::outbox::Health::Stalled
            {
                self.stalled.insert(peer.clone());
            }
        }
        // A link whose restart the far side took part in is alive even while nothing
        // arrives: SCTP retransmits on its backed-off timer (up to several seconds after
        // the path returns). The heartbeat must not give it up meanwhile. A peer that died
        // answers no restart, and the heartbeat catches it as before.
        let mut due = Vec::new();
        for (peer, link) in &mut self.links {
            if link.life.shielded(now) {
                self.mesh.handle_input(Input::Heard {
                    peer: peer.clone(),
                    now,
                });
            }
            match link.life.tick(now) {
                Due::Nothing => {}
                due_now => due.push((peer.clone(), due_now)),
            }
        }
        for (peer, due) in due {
            match due {
                Due::GiveUp { tries } => {
                    let reason = format!("{tries} ICE restarts did not bring it back");
                    self.link_failed(&peer, reason).await;
                }
                _ => self.restart(&peer).await,
            }
        }
        if self.addresses.changed() {
            tracing::info!("local addresses changed; restarting links and signaling");
            // Signaling first: its connection may be bound to the address that went away,
            // and the restart offers must wait for the new one, not vanish into the old.
            if self.signal.take().is_some() {
                self.signaling_lost("local addresses changed".into()).await;
            }
            let open: Vec<PeerId> = self
                .links
                .iter()
                .filter(|(_, l)| l.life.is_open())
                .map(|(p, _)| p.clone())
                .collect();
            for peer in open {
                if let Some(link) = self.links.get_mut(&peer)
                    && link.life.addresses_changed()
                {
                    self.emit(RoomEvent::LinkDown { peer: peer.clone() });
                }
                self.restart(&peer).await;
            }
        }
    }

    /// The data channel is open: the peer joins (once per link), queued messages leave.
    async fn link_opened(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get_mut(peer) else {
            return;
        };
        let audio = link.audio.clone();
        let video = [
            (plenum_media::Content::Camera, link.video.clone()),
            (plenum_media::Content::Screen, link.screen.clone()),
        ];
        self.emit(RoomEvent::LinkUp { peer: peer.clone() });
        self.mesh.handle_input(Input::LinkUp {
            peer: peer.clone(),
            now: crate::clock::now(),
        });
        self.tell_core(room_core::Input::LinkOpened { peer: peer.clone() });
        if let Some(sender) = track_sender(audio, peer, "audio").await {
            let cmd = AudioCmd::LinkUp {
                peer: peer.clone(),
                sender,
            };
            self.tell_audio(cmd);
        }
        for (lane, track) in video {
            if let Some(sender) = track_sender(track, peer, "video").await {
                let cmd = VideoCmd::LinkUp {
                    peer: peer.clone(),
                    lane,
                    sender,
                };
                self.tell_video(cmd);
            }
        }
        self.flush_pending(peer);
    }

    async fn on_data(&mut self, data: LinkData) {
        let LinkData {
            peer,
            generation,
            bytes,
        } = data;
        let Some(link) = self
            .links
            .get_mut(&peer)
            .filter(|l| l.generation == generation)
        else {
            return;
        };
        // Data and the open event travel on different queues; data proves the channel
        // open, and the application must see the peer join before its first message.
        if link.life.channel_opened() {
            self.link_opened(&peer).await;
        }
        self.mesh.handle_input(Input::Heard {
            peer: peer.clone(),
            now: crate::clock::now(),
        });
        self.tell_core(room_core::Input::Envelope {
            peer,
            bytes: bytes.freeze(),
        });
    }

    /// A peer sent bytes that do not decode as `what`: dropped, logged and reported.
    fn malformed(&mut self, peer: PeerId, what: &str, reason: String) {
        tracing::warn!(peer = peer.short(), error = %reason, "malformed {what} dropped");
        let error = RoomError::Malformed { peer, reason };
        self.emit(RoomEvent::Error(error));
    }

    /// Queues an envelope for an open link without waiting; returns false when the link is
    /// not open. A link that holds more than it may is marked stalled, and closed once this
    /// step is done (`close_stalled`); a bulk sender waits on the outbox itself
    /// (`Command::Send`'s reply), never here.
    fn write(&mut self, peer: &PeerId, bytes: Bytes) -> bool {
        let Some(writer) = self.open_outbox(peer) else {
            return false;
        };
        if bytes.len() > crate::link::SCTP_MAX_MESSAGE as usize {
            // The channel would refuse it; refused here, where it is known whose it is.
            tracing::warn!(
                peer = peer.short(),
                bytes = bytes.len(),
                "envelope larger than a link carries; not sent"
            );
            return true;
        }
        match writer.push(bytes) {
            Ok(queued) => {
                if queued > crate::outbox::HARD_LIMIT {
                    self.stalled.insert(peer.clone());
                }
                true
            }
            Err(crate::outbox::OutboxClosed) => false,
        }
    }

    /// The outbox of our open link to `peer`.
    fn open_outbox(&self, peer: &PeerId) -> Option<&crate::outbox::Outbox> {
        self.links
            .get(peer)
            .filter(|l| l.life.is_open())
            .and_then(|l| l.writer.as_ref())
    }

    /// Closes the links found stalled: an error says so, the peer leaves, the topology
    /// links it again if it comes back. Everyone else carried on meanwhile.
    async fn close_stalled(&mut self) {
        for peer in std::mem::take(&mut self.stalled) {
            let Some(queued) = self
                .links
                .get(&peer)
                .and_then(|l| l.writer.as_ref())
                .map(|w| w.progress().0)
            else {
                continue;
            };
            tracing::warn!(peer = peer.short(), queued, "link stalled; closed");
            self.emit(RoomEvent::Error(RoomError::LinkStalled {
                peer: peer.clone(),
                queued,
            }));
            self.drop_link(&peer, DropReason::Failed).await;
            self.mesh.handle_input(Input::LinkDown {
                peer,
                now: crate::clock::now(),
            });
        }
    }

    /// Sends to `peer`, or queues for it while its link is not open (or what was queued for
    /// it has not all gone out yet: order is kept).
    fn deliver(&mut self, peer: &PeerId, bytes: Bytes) {
        if !self.core.is_behind(peer) && self.write(peer, bytes.clone()) {
            return;
        }
        self.core.queue(peer, bytes);
    }

    /// Moves what waits for `peer` into its open link's outbox, up to the outbox's soft
    /// limit: a link that opens with a long queue behind it (up to `queue_per_peer` of the
    /// largest messages) takes it as it drains, instead of all at once past the stall
    /// bound. The rest goes on the next step.
    fn flush_pending(&mut self, peer: &PeerId) {
        loop {
            let room = self
                .open_outbox(peer)
                .is_some_and(|w| w.progress().0 <= crate::outbox::SOFT_LIMIT);
            if !room {
                return;
            }
            let Some(bytes) = self.core.next_queued(peer) else {
                return;
            };
            if !self.write(peer, bytes.clone()) {
                self.core.requeue(peer, bytes);
                return;
            }
        }
    }

    /// Flushes what waits for every open link (see `flush_pending`); called every step, so
    /// it looks only at peers whose link is open.
    fn flush_all_pending(&mut self) {
        let ready: Vec<PeerId> = self
            .core
            .queued_for()
            .filter(|p| self.open_outbox(p).is_some())
            .cloned()
            .collect();
        for peer in ready {
            self.flush_pending(&peer);
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                channel,
                data,
                to,
                reply,
            } => {
                if let (Target::All, Some(host)) = (&to, self.mesh.host()) {
                    // Through the host, which relays it to everyone (queued while there
                    // is none).
                    host.post(channel, data.to_vec(), crate::clock::now());
                    let _ = reply.send(Ok(Vec::new()));
                    return;
                }
                let all = matches!(to, Target::All);
                let targets: Vec<PeerId> = match to {
                    Target::All => self
                        .core
                        .roster()
                        .keys()
                        .filter(|p| self.links_with(p))
                        .cloned()
                        .collect(),
                    Target::One(peer) => vec![peer],
                    Target::Many(peers) => peers
                        .into_iter()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                };
                if let Some(unknown) = targets.iter().find(|p| !self.core.is_member(p)) {
                    let _ = reply.send(Err(SendError::UnknownPeer(unknown.clone())));
                    return;
                }
                let id = self.core.next_id();
                let bytes = Bytes::from(Envelope::data(channel, id, data.to_vec()).encode());
                for peer in &targets {
                    self.deliver(peer, bytes.clone());
                }
                if all && targets.is_empty() {
                    // Nobody to send to yet: kept for the first peer whose link opens.
                    self.core.hold_for_first(bytes);
                    self.drain_core();
                }
                self.flush_all_pending();
                let full = targets
                    .iter()
                    .filter_map(|p| self.open_outbox(p))
                    .filter(|w| w.progress().0 > crate::outbox::SOFT_LIMIT)
                    .cloned()
                    .collect();
                let _ = reply.send(Ok(full));
            }
            Command::Peers { reply } => {
                let peers = self
                    .core
                    .roster()
                    .iter()
                    .map(|(peer, name)| {
                        let state = self.link_state(peer);
                        let mine = self.config.identity.public();
                        PeerInfo {
                            peer: peer.clone(),
                            name: name.clone(),
                            state,
                            path: self.links.get(peer).and_then(|l| l.path),
                            safety_code: self.core.key(peer).map(|k| safety_code(&mine, k)),
                            role: self.core.role(peer),
                            refused: self.core.is_refused(peer),
                        }
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Ping { peer, reply } => {
                let (id, bytes) = self.core.ping();
                if self.write(&peer, bytes) {
                    self.core.ping_sent(id, crate::clock::now());
                    self.ping_replies.insert(id, reply);
                    // Its expiry is a new deadline.
                    self.drain_core();
                } else {
                    let _ = reply.send(Err(PingError::NotConnected(peer)));
                }
            }
            Command::Leave { .. } => {}
            Command::SetState { state, merge } => {
                self.tell_core(room_core::Input::State { state, merge });
            }
            Command::MeshSend(data) => match (self.mesh.host(), ChannelName::new("mesh")) {
                // A host room's broadcast is a post through the host, on channel `mesh`.
                (Some(host), Ok(channel)) => host.post(channel, data.to_vec(), crate::clock::now()),
                _ => self.mesh.handle_input(Input::Broadcast {
                    data: data.to_vec(),
                    now: crate::clock::now(),
                }),
            },
            Command::TreeSend { to, data, reply } => {
                let sent = match self.mesh.tree() {
                    Some(tree) => tree.send(to, data.to_vec()).map_err(TreeSendError::from),
                    None => Err(TreeSendError::NotATree),
                };
                let _ = reply.send(sent);
            }
            Command::RelaySend { to, data, reply } => {
                let sent = match self.mesh.relay() {
                    Some(relay) => relay.send(to, data.to_vec()).map(|_| ()),
                    None => Err(plenum_overlay::RelaySendError::NotARelay),
                };
                let _ = reply.send(sent);
            }
            Command::RelayLink { peer, up } => {
                if let Some(relay) = self.mesh.relay() {
                    if up {
                        relay.connect(peer);
                    } else {
                        relay.disconnect(&peer);
                    }
                }
            }
            Command::Links { reply } => {
                let mut links: Vec<(PeerId, LinkState)> = self
                    .links
                    .keys()
                    .map(|p| (p.clone(), self.link_state(p)))
                    .collect();
                links.sort_by(|a, b| a.0.cmp(&b.0));
                let _ = reply.send(links);
            }
            Command::Raw { peer, bytes } => {
                self.write(&peer, bytes);
            }
            Command::Stream(announcement) => {
                self.tell_core(room_core::Input::Stream(announcement));
            }
        }
    }

    /// Writes to every open link.
    fn write_to_open(&mut self, bytes: Bytes) {
        let open: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.life.is_open())
            .map(|(p, _)| p.clone())
            .collect();
        for peer in open {
            self.write(&peer, bytes.clone());
        }
    }

    /// The state of our link to `peer`.
    fn link_state(&self, peer: &PeerId) -> LinkState {
        match self.links.get(peer) {
            None => LinkState::Waiting,
            Some(l) => l.life.state(),
        }
    }

    async fn drop_link(&mut self, peer: &PeerId, reason: DropReason) {
        if let Some(link) = self.links.remove(peer) {
            if link.life.is_up() {
                self.emit(RoomEvent::LinkDown { peer: peer.clone() });
            }
            link.close();
            self.audio_down(peer);
        }
        if self.sparse && reason == DropReason::Left {
            // No longer in our plan or tree: another peer of the room, not one of ours.
            self.core.remove_member(peer);
            self.core.forget_queued(peer);
        }
        if self.server_gone.remove(peer) {
            // The server told us it left; with the link gone too, it is gone.
            self.core.remove_member(peer);
            self.core.forget_queued(peer);
            self.mesh.handle_input(Input::PeerGone {
                peer: peer.clone(),
                now: crate::clock::now(),
            });
        }
        if reason != DropReason::Left && reason != DropReason::Failed {
            let reason = match reason {
                DropReason::ConnectTimeout => "link did not open in time",
                _ => "nothing heard from the peer",
            };
            self.emit(RoomEvent::Error(RoomError::LinkFailed {
                peer: peer.clone(),
                reason: reason.into(),
            }));
        }
        tracing::debug!(peer = peer.short(), ?reason, "link dropped");
        self.tell_core(room_core::Input::LinkClosed { peer: peer.clone() });
    }

    async fn leave(&mut self) {
        let bye = Bytes::from(Envelope::control(EnvelopeKind::Bye, 0).encode());
        let peers: Vec<PeerId> = self.links.keys().cloned().collect();
        for peer in &peers {
            self.write(peer, bye.clone());
        }
        self.stop_reconnecting();
        if let Some(signal) = &self.signal {
            let _ = signal.tx.send(ClientToServer::Leave {}).await;
        }
        // Let the goodbyes leave before the connections close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.close_all();
        self.stop_media().await;
        self.emit(RoomEvent::Closed);
        tracing::info!("left the room");
    }

    fn close_all(&mut self) {
        for (_, link) in self.links.drain() {
            link.close();
        }
    }
}

async fn next_signal(signal: &mut Option<SignalConnection>) -> Option<SignalEvent> {
    match signal {
        Some(signal) => signal.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A link's track ready to write to, once its payload type is negotiated.
async fn track_sender(
    track: Option<crate::link::LinkTrack>,
    peer: &PeerId,
    what: &str,
) -> Option<TrackSender> {
    let track = track?;
    let Some(payload_type) = track.payload_type().await else {
        tracing::warn!(peer = peer.short(), "no {what} codec negotiated");
        return None;
    };
    Some(TrackSender {
        track: track.track,
        ssrc: track.ssrc,
        payload_type,
    })
}

/// Reads a peer's Opus track and hands its packets to the audio task.
async fn read_track(
    audio: AudioHandle,
    peer: PeerId,
    track: std::sync::Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    loss_percent: u8,
) {
    use rand::{Rng, SeedableRng};
    use webrtc::media_stream::track_remote::TrackRemoteEvent;
    let mut dropped = 0u64;
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) if rng.random_range(0..100u8) < loss_percent => {
                dropped += 1;
            }
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let rtp = RtpIn {
                    peer: peer.clone(),
                    seq: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    payload: packet.payload,
                };
                if !audio.packet(rtp) {
                    dropped += 1;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(peer = peer.short(), dropped, "audio track ended");
}
