//! The room driver: one task that does the room's IO. It feeds the room's engine
//! ([`RoomCore`], sans IO) what happened, with the time, and carries out what the engine
//! says: links made, described and closed with webrtc-rs, envelopes written to their
//! outboxes, frames to the server, events to the application, media handed to the media
//! threads. It never waits for a queue that belongs to one peer or to the application:
//! a full outbox comes back to the engine as [`room_core::Input::Stalled`], a lagging
//! application gets `events_lagged` (see `events.rs`).
//!
//! [`Room`](crate::Room) handles talk to it over a bounded command channel; webrtc-rs
//! callbacks and data-channel readers forward into it over bounded channels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_proto::signal::ClientToServer;
use plenum_proto::{Envelope, EnvelopeKind, PeerId};
use plenum_signal::{SignalConnection, SignalEvent};
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState};

use crate::audio::{AudioCmd, AudioHandle};
use crate::backlog::Backlog;
use crate::config::RoomConfig;
use crate::lifecycle::Transport;
use crate::link::{DATA_CHANNEL_LABEL, Link, LinkData, LinkEvent, LinkEventKind};
use crate::negotiation::Candidate;
use crate::overlay::Overlay;
use crate::room_core::{self, Description, Input, Output, RoomCore};
use crate::session::{Reconnected, Welcome};
use crate::types::{PingError, RoomError, RoomEvent};
use crate::video::{VideoCmd, VideoHandle};

mod commands;
mod media;

pub(crate) use commands::Command;

const LINK_EVENT_QUEUE: usize = 1024;
const LINK_DATA_QUEUE: usize = 1024;
/// How often links' outboxes and our addresses are looked at.
const MAINTAIN_EVERY: Duration = Duration::from_millis(500);

/// Commands held for a media task that lags (a link going up or down is one or two).
const MEDIA_BACKLOG: usize = 1024;
/// How long a media task may take to drop its devices when the room ends.
const MEDIA_STOP: Duration = Duration::from_secs(5);

/// Remote tracks read per link: audio, camera and screen, as every link negotiates, and
/// the stage in a tree room.
const MAX_TRACKS_PER_LINK: usize = 3;
const MAX_TRACKS_PER_TREE_LINK: usize = 4;
/// And a cells room's: a track per lane of the stage besides (each seat's voice, the
/// presenter's camera and screen).
const MAX_TRACKS_PER_CELLS_LINK: usize = 3 + crate::cell_stage::LANES;
/// Words about the stage's voices waiting to be written to neighbours.
const STAGE_WORDS_QUEUE: usize = 256;

pub(crate) struct Driver {
    config: RoomConfig,
    me: PeerId,
    /// Whether room messages flow (see `Room::wait_to_sync`).
    synced: tokio::sync::watch::Sender<bool>,
    /// The room's engine.
    core: RoomCore,
    /// When the core wants to be told the time next.
    deadline: Instant,
    /// Our verify hook at work, one task per peer it is asked about (aborted with the room).
    verifying: tokio::task::JoinSet<(PeerId, bool)>,
    /// The server connection; `None` while it is away and being reconnected.
    signal: Option<SignalConnection>,
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
    /// Our network addresses as last seen, to notice a network change.
    addresses: crate::netwatch::Addresses,
    commands: mpsc::Receiver<Command>,
    events: crate::events::EventSender,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    data_tx: mpsc::Sender<LinkData>,
    data_rx: mpsc::Receiver<LinkData>,
    /// Each link's WebRTC side (its state is the core's).
    links: HashMap<PeerId, Link>,
    /// Links found stalled in this step (by generation), told to the core at its end if
    /// they are still the peer's link then.
    stalled: BTreeMap<PeerId, u64>,
    /// Who waits for the pong of each ping in flight.
    ping_replies: HashMap<u64, oneshot::Sender<Result<Duration, PingError>>>,
    next_generation: u64,
    audio: AudioHandle,
    video: VideoHandle,
    /// The audio and video threads, joined when the room ends.
    media: Vec<crate::media_thread::MediaThread>,
    /// A tree room: links carry the stage too, and media is forwarded down the tree.
    tree_room: bool,
    /// A cells room: links carry the stage's seats too, and seated voices are forwarded
    /// from cell to cell.
    cells_room: bool,
    /// Bridge partners: their links carry the stage, not our own media.
    bridges: BTreeSet<PeerId>,
    /// The server made us a cells room's presenter: our camera and screen go on every
    /// link's presenter tracks.
    presenting: bool,
    /// We asked to present ([`crate::Room::present`]), or share a screen, which presents.
    present_asked: bool,
    screen_shared: bool,
    /// Words about the stage's voices from the track readers, for our neighbours.
    stage_words_tx: mpsc::Sender<(PeerId, crate::cell_stage::Control)>,
    stage_words_rx: mpsc::Receiver<(PeerId, crate::cell_stage::Control)>,
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
            peers,
            ice_servers,
            resume,
            topology,
            ..
        } = welcome;
        let now = crate::clock::now();
        let seed = me.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let clock_seq = crate::clock::wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let overlay = Overlay::for_room(&me, &topology, &config, now, seed, clock_seq);
        let host_room = matches!(overlay, Overlay::Host(_));
        let tree_room = matches!(overlay, Overlay::Tree(_));
        let cells_room = matches!(topology, plenum_proto::overlay::TopologySpec::Cells { .. });
        let core_config = room_core::CoreConfig {
            me: me.clone(),
            identity: config.identity.clone(),
            credentials: config.credentials.clone(),
            seq: clock_seq,
            role: config.role,
            sparse: topology.is_overlay(),
            lossy: config.lossy_channels.clone(),
            ping_interval: config.ping_interval,
            ping_attempts: config.ping_attempts,
            queues: room_core::Queues {
                per_peer: config.queue_per_peer,
                first_peer: config.queue_size,
            },
            verify: config.verify.is_some(),
        };
        let mut core = RoomCore::new(core_config, overlay, now);
        core.welcome(peers);
        let (link_tx, link_rx) = mpsc::channel(LINK_EVENT_QUEUE);
        let (data_tx, data_rx) = mpsc::channel(LINK_DATA_QUEUE);
        let (reconnect_tx, reconnect_rx) = mpsc::channel(1);
        let (stage_words_tx, stage_words_rx) = mpsc::channel(STAGE_WORDS_QUEUE);
        let base_ice = config.ice_servers.clone();
        let (synced, _) = tokio::sync::watch::channel(!host_room);
        let mut driver = Self {
            config,
            me,
            synced,
            core,
            deadline: now,
            verifying: tokio::task::JoinSet::new(),
            signal: Some(signal),
            audio_backlog: Backlog::with_capacity(MEDIA_BACKLOG),
            video_backlog: Backlog::with_capacity(MEDIA_BACKLOG),
            resume,
            reconnect_tx,
            reconnect_rx,
            reconnecting: None,
            base_ice,
            addresses: crate::netwatch::Addresses::now(),
            commands,
            events,
            link_tx,
            link_rx,
            data_tx,
            data_rx,
            links: HashMap::new(),
            stalled: BTreeMap::new(),
            ping_replies: HashMap::new(),
            next_generation: 1,
            audio,
            video,
            media,
            tree_room,
            cells_room,
            bridges: BTreeSet::new(),
            presenting: false,
            present_asked: false,
            screen_shared: false,
            stage_words_tx,
            stage_words_rx,
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

    pub(crate) async fn run(mut self) {
        self.after_step().await;
        let mut maintenance = tokio::time::interval(MAINTAIN_EVERY);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = maintenance.tick() => self.maintain(),
                command = self.commands.recv() => match command {
                    Some(Command::Leave { reply }) => {
                        self.leave().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    // Every handle is gone: end without goodbyes.
                    None => break,
                },
                Some(event) = self.link_rx.recv() => self.on_link_event(event).await,
                Some(data) = self.data_rx.recv() => self.on_data(data),
                event = next_signal(&mut self.signal) => self.on_signal(event),
                Some(back) = self.reconnect_rx.recv() => self.on_reconnected(back),
                Some((peer, word)) = self.stage_words_rx.recv() => self.say(&peer, &word),
                Ok(()) = self.audio.speaking.changed() => {
                    let speaking = *self.audio.speaking.borrow_and_update();
                    self.core.set_speaking(speaking);
                }
                Some(verdict) = self.verifying.join_next() => match verdict {
                    Ok((peer, ok)) => self.tell(Input::Verdict { peer, ok }),
                    Err(e) => tracing::warn!(error = %e, "the verify hook did not finish"),
                },
                () = tokio::time::sleep_until(self.deadline.into()) => self.tell(Input::Tick),
            }
            self.after_step().await;
        }
        self.stop_reconnecting();
        self.close_all();
        self.stop_media().await;
    }

    /// Tells the core what happened, now (what it says is carried out after the step).
    fn tell(&mut self, input: Input) {
        self.core.handle_input(crate::clock::now(), input);
    }

    /// The end of every step: what the core says is carried out; links found stalled go
    /// back to it, the server's queue is offered what waits; media commands and queued
    /// messages move on.
    async fn after_step(&mut self) {
        self.execute().await;
        for (peer, generation) in std::mem::take(&mut self.stalled) {
            // A link made anew meanwhile is not the one that stalled.
            let Some(queued) = self
                .links
                .get(&peer)
                .filter(|l| l.generation == generation)
                .and_then(|l| l.writer.as_ref())
                .map(|w| w.progress().0)
            else {
                continue;
            };
            self.tell(Input::Stalled { peer, queued });
        }
        if self.signal.is_some() && self.core.holds_for_server() {
            self.tell(Input::ServerReady);
        }
        self.execute().await;
        self.flush_media();
        self.flush_all_pending();
    }

    /// Carries out what the core says until it waits.
    async fn execute(&mut self) {
        loop {
            match self.core.poll_output() {
                Output::Timeout(at) => {
                    self.deadline = at;
                    return;
                }
                output => self.carry_out(output).await,
            }
        }
    }

    async fn carry_out(&mut self, output: Output) {
        match output {
            Output::Event(event) => {
                if let RoomEvent::TreeState {
                    parent,
                    children,
                    is_root,
                    root,
                    ..
                } = &event
                {
                    let place = crate::tree_media::Place {
                        parent: parent.clone(),
                        children: children.clone(),
                        is_root: *is_root,
                        root: root.clone(),
                    };
                    self.tree_moved(place).await;
                }
                if let RoomEvent::MeshState(state) = &event
                    && self.cells_room
                {
                    self.audio.cells.place(state);
                    self.cells_moved().await;
                }
                if let RoomEvent::Seats { seats, presenter } = &event {
                    self.stage_told(seats, presenter.as_ref()).await;
                }
                if let RoomEvent::Stage { speaker, .. } = &event {
                    let ours =
                        self.video
                            .tree
                            .set_stage(speaker.clone(), &self.me, crate::clock::now());
                    self.tell_audio(crate::audio::AudioCmd::Stage(ours));
                }
                self.emit(event);
            }
            Output::Lossy(event) => {
                self.events.send_lossy(event);
            }
            Output::Synced(in_sync) => {
                self.synced.send_replace(in_sync);
            }
            Output::Write { peer, bytes } => {
                self.write(&peer, bytes);
            }
            Output::Server(frame) => self.send_server(frame),
            Output::Offer { peer } => self.make_offer(peer).await,
            Output::Answer { peer, sdp, fresh } => self.make_answer(peer, sdp, fresh).await,
            Output::RestartIce { peer } => {
                let Some(link) = self.links.get_mut(&peer) else {
                    return;
                };
                let sdp = link.restart_offer().await;
                self.tell(made(peer, Description::Offer, sdp, "cannot restart ICE"));
            }
            Output::TakeAnswer { peer, sdp } => {
                let Some(link) = self.links.get_mut(&peer) else {
                    return;
                };
                if let Err(e) = link.accept_answer(sdp).await {
                    let reason = format!("bad answer: {e}");
                    self.tell(Input::LinkFailed { peer, reason });
                }
            }
            Output::AddCandidate { peer, candidate } => {
                if let Some(link) = self.links.get(&peer) {
                    let Candidate {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    } = candidate;
                    let init = RTCIceCandidateInit {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                        ..Default::default()
                    };
                    link.add_candidate(init).await;
                }
            }
            Output::Close { peer } => {
                if let Some(link) = self.links.remove(&peer) {
                    link.close();
                    self.audio_down(&peer);
                }
            }
            Output::MediaUp { peer } => {
                if let Some(link) = self.links.get_mut(&peer) {
                    link.opened = true;
                }
                self.media_up(&peer).await;
            }
            Output::Keyframes { peer } => self.keyframes(&peer),
            Output::StageWord { peer, word } => self.audio.cells.control(&peer, word),
            Output::Pong { id, rtt } => {
                if let Some(reply) = self.ping_replies.remove(&id) {
                    let _ = reply.send(Ok(rtt));
                }
            }
            Output::PingLost { id } => {
                if let Some(reply) = self.ping_replies.remove(&id) {
                    let _ = reply.send(Err(PingError::Timeout(room_core::PING_FORGET_AFTER)));
                }
            }
            Output::Verify { peer, credentials } => {
                if let Some(verify) = &self.config.verify {
                    let check = verify.check(peer.clone(), credentials);
                    self.verifying.spawn(async move { (peer, check.await) });
                }
            }
            Output::DropServer { reason } => {
                if self.signal.take().is_some() {
                    self.signaling_lost(reason);
                }
            }
            Output::Timeout(_) => {}
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

    /// Hands a frame to the server's connection; one its queue cannot take goes back to
    /// the core, which holds it (the driver never waits for the server).
    fn send_server(&mut self, frame: ClientToServer) {
        let frame = match &self.signal {
            Some(signal) => match signal.tx.try_send(frame) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(frame)
                    | mpsc::error::TrySendError::Closed(frame),
                ) => frame,
            },
            None => frame,
        };
        self.tell(Input::ServerFull(frame));
    }

    /// Makes a new link to `peer` (closing any other); the core hears if it cannot be.
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
            Ok(mut link) => {
                link.carries_stage = self.tree_room;
                link.carries_seats = self.cells_room;
                self.links.insert(peer.clone(), link);
                self.links.get_mut(peer)
            }
            Err(e) => {
                let reason = format!("cannot create peer connection: {e}");
                self.tell(Input::NoLink {
                    peer: peer.clone(),
                    reason,
                });
                None
            }
        }
    }

    async fn make_offer(&mut self, peer: PeerId) {
        let (data, events) = (self.data_tx.clone(), self.link_tx.clone());
        let me = self.me.clone();
        let Some(link) = self.new_link(&peer).await else {
            return;
        };
        let sdp = link.offer(&me, &peer, data, events).await;
        self.tell(made(peer, Description::Offer, sdp, "cannot create offer"));
    }

    /// Answers `peer`'s offer on a new link (`fresh`) or on the one we have (an ICE
    /// restart).
    async fn make_answer(&mut self, peer: PeerId, sdp: String, fresh: bool) {
        let me = self.me.clone();
        let link = if fresh {
            self.new_link(&peer).await
        } else {
            self.links.get_mut(&peer)
        };
        let Some(link) = link else {
            return;
        };
        let sdp = link.answer(&me, sdp).await;
        let what = if fresh {
            "cannot answer offer"
        } else {
            "cannot answer restart"
        };
        self.tell(made(peer, Description::Answer, sdp, what));
    }

    fn on_signal(&mut self, event: Option<SignalEvent>) {
        match event {
            Some(SignalEvent::Frame(plenum_proto::signal::ServerToClient::IceServers {
                ice_servers,
            })) => {
                tracing::debug!("fresh TURN credentials");
                self.use_server_ice(ice_servers);
            }
            Some(SignalEvent::Frame(frame)) => self.tell(Input::Server(frame)),
            Some(SignalEvent::Closed { reason }) => self.signaling_lost(reason),
            None => self.signaling_lost("driver stopped".into()),
        }
    }

    fn signaling_lost(&mut self, reason: String) {
        self.signal = None;
        tracing::warn!(%reason, "signaling connection lost; links go on, reconnecting");
        self.tell(Input::ServerLost { reason });
        self.stop_reconnecting();
        self.reconnecting = Some(crate::session::reconnect(
            self.config.clone(),
            self.resume.clone(),
            self.reconnect_tx.clone(),
        ));
    }

    /// The server is back (or refused us for good).
    fn on_reconnected(&mut self, back: Reconnected) {
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
        self.tell(Input::ServerBack {
            peers: welcome.peers,
        });
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
        match kind {
            LinkEventKind::Candidate(init) => {
                link.candidates += 1;
                // webrtc-rs names no section (`sdp_mid: ""`); a browser wants the real one.
                let (sdp_mid, sdp_mline_index) = match init.sdp_mid {
                    Some(mid) if !mid.is_empty() => (Some(mid), init.sdp_mline_index),
                    _ => (link.bundle_mid.clone(), Some(0)),
                };
                let candidate = Candidate {
                    candidate: init.candidate,
                    sdp_mid,
                    sdp_mline_index,
                };
                self.tell(Input::Gathered { peer, candidate });
            }
            LinkEventKind::State(state) => {
                tracing::debug!(peer = peer.short(), %state, "connection state");
                let state = match state {
                    RTCPeerConnectionState::Connected => Transport::Connected,
                    RTCPeerConnectionState::Disconnected => Transport::Disconnected,
                    RTCPeerConnectionState::Failed => Transport::Failed,
                    RTCPeerConnectionState::Closed => Transport::Closed,
                    _ => Transport::Connecting,
                };
                if state == Transport::Connected {
                    link.path = link.selected_path().await;
                    tracing::info!(peer = peer.short(), path = ?link.path, "link connected");
                }
                self.tell(Input::Transport { peer, state });
            }
            LinkEventKind::Channel(channel) => {
                if channel.label().await.ok().as_deref() == Some(DATA_CHANNEL_LABEL) {
                    link.attach(&peer, channel, self.data_tx.clone(), self.link_tx.clone());
                } else {
                    tracing::debug!(peer = peer.short(), "unexpected data channel; ignored");
                }
            }
            LinkEventKind::Track(track) => self.on_track(peer, track).await,
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
            LinkEventKind::Open => self.tell(Input::ChannelOpen { peer }),
            LinkEventKind::Closed => self.tell(Input::ChannelClosed { peer }),
        }
    }

    /// Every half second: links whose outbox makes no progress are stalled, and a change
    /// of our addresses goes to the core (which restarts every link and the signaling
    /// connection at once instead of waiting for them to go silent).
    fn maintain(&mut self) {
        let now = crate::clock::now();
        for (peer, link) in &mut self.links {
            if let Some((queued, taken)) = link.writer.as_ref().map(|w| w.progress())
                && link.stall.check(now, queued, taken) == crate::outbox::Health::Stalled
            {
                self.stalled.insert(peer.clone(), link.generation);
            }
        }
        if self.addresses.changed() {
            self.tell(Input::AddressesChanged);
        }
        if self.cells_room {
            for (peer, word) in self.audio.cells.tick(now) {
                self.say(&peer, &word);
            }
        }
        self.tell(Input::Tick);
    }

    /// Writes a word about the stage's voices to a neighbour.
    fn say(&mut self, peer: &PeerId, word: &crate::cell_stage::Control) {
        let envelope = Envelope {
            kind: EnvelopeKind::Stage,
            hops: 0,
            channel: None,
            id: 0,
            payload: word.encode(),
        };
        self.write(peer, Bytes::from(envelope.encode()));
    }

    fn on_data(&mut self, data: LinkData) {
        let LinkData {
            peer,
            generation,
            bytes,
        } = data;
        if self
            .links
            .get(&peer)
            .is_some_and(|l| l.generation == generation)
        {
            let bytes = bytes.freeze();
            self.tell(Input::Envelope { peer, bytes });
        }
    }

    /// Queues an envelope for an open link without waiting; returns false when the link is
    /// not open. A link that holds more than it may is marked stalled, and the core told at
    /// the end of this step; a bulk sender waits on the outbox itself (`Command::Send`'s
    /// reply), never here.
    fn write(&mut self, peer: &PeerId, bytes: Bytes) -> bool {
        let Some(writer) = self.open_outbox(peer) else {
            return false;
        };
        let generation = self.links.get(peer).map_or(0, |l| l.generation);
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
                    self.stalled.insert(peer.clone(), generation);
                }
                true
            }
            Err(crate::outbox::OutboxClosed) => false,
        }
    }

    /// The outbox of our open link to `peer`.
    fn open_outbox(&self, peer: &PeerId) -> Option<&crate::outbox::Outbox> {
        if !self.core.is_open(peer) {
            return None;
        }
        self.links.get(peer).and_then(|l| l.writer.as_ref())
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

/// What came of making our description for `peer`, as the core is told: the description,
/// or the link failed (`what` failed, and why).
fn made(peer: PeerId, kind: Description, sdp: webrtc::error::Result<String>, what: &str) -> Input {
    match sdp {
        Ok(sdp) => Input::Described { peer, kind, sdp },
        Err(e) => Input::LinkFailed {
            peer,
            reason: format!("{what}: {e}"),
        },
    }
}

async fn next_signal(signal: &mut Option<SignalConnection>) -> Option<SignalEvent> {
    match signal {
        Some(signal) => signal.rx.recv().await,
        None => std::future::pending().await,
    }
}
