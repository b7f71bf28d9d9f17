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

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_proto::identity::safety_code;
use plenum_proto::signal::ClientToServer;
use plenum_proto::{ChannelName, Envelope, EnvelopeKind, PeerId, StreamAnnouncement};
use plenum_signal::{SignalConnection, SignalEvent};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState};

use crate::audio::{AudioCmd, AudioHandle, RtpIn};
use crate::backlog::Backlog;
use crate::config::RoomConfig;
use crate::lifecycle::Transport;
use crate::link::{DATA_CHANNEL_LABEL, Link, LinkData, LinkEvent, LinkEventKind};
use crate::negotiation::Candidate;
use crate::outbound::TrackSender;
use crate::overlay::Overlay;
use crate::room_core::{self, Description, Input, Output, RoomCore};
use crate::session::{Reconnected, Welcome};
use crate::types::{
    LinkState, PeerInfo, PingError, RoomError, RoomEvent, SendError, Target, TreeSendError,
};
use crate::video::{VideoCmd, VideoHandle};
use plenum_overlay::TreeTarget;

const LINK_EVENT_QUEUE: usize = 1024;
const LINK_DATA_QUEUE: usize = 1024;
/// How often links' outboxes and our addresses are looked at.
const MAINTAIN_EVERY: Duration = Duration::from_millis(500);

/// Commands held for a media task that lags (a link going up or down is one or two).
const MEDIA_BACKLOG: usize = 1024;
/// How long a media task may take to drop its devices when the room ends.
const MEDIA_STOP: Duration = Duration::from_secs(5);

/// Remote tracks read per link: audio, camera and screen, as every link negotiates.
const MAX_TRACKS_PER_LINK: usize = 3;

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
    /// Links found stalled in this step, told to the core at its end.
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
        for peer in std::mem::take(&mut self.stalled) {
            let queued = self
                .links
                .get(&peer)
                .and_then(|l| l.writer.as_ref())
                .map_or(0, |w| w.progress().0);
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
            Output::Event(event) => self.emit(event),
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
            Output::MediaUp { peer } => self.media_up(&peer).await,
            Output::Keyframes { peer } => self.keyframes(&peer),
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
            Ok(link) => {
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
                let candidate = Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
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
            LinkEventKind::Open => self.tell(Input::ChannelOpen { peer }),
            LinkEventKind::Closed => self.tell(Input::ChannelClosed { peer }),
        }
    }

    /// Sends keyframes on the link to `peer`, so that the far side's video resumes at once.
    fn keyframes(&mut self, peer: &PeerId) {
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
                self.stalled.insert(peer.clone());
            }
        }
        if self.addresses.changed() {
            self.tell(Input::AddressesChanged);
        }
        self.tell(Input::Tick);
    }

    /// The link to `peer` is open: its tracks go to the media tasks, queued messages leave.
    async fn media_up(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get(peer) else {
            return;
        };
        let audio = link.audio.clone();
        let video = [
            (plenum_media::Content::Camera, link.video.clone()),
            (plenum_media::Content::Screen, link.screen.clone()),
        ];
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
        if !self.core.is_open(peer) {
            return None;
        }
        self.links.get(peer).and_then(|l| l.writer.as_ref())
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

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                channel,
                data,
                to,
                reply,
            } => {
                let sent = self.send(channel, data, to);
                let _ = reply.send(sent);
            }
            Command::Peers { reply } => {
                let mine = self.config.identity.public();
                let peers = self
                    .core
                    .roster()
                    .iter()
                    .map(|(peer, name)| PeerInfo {
                        peer: peer.clone(),
                        name: name.clone(),
                        state: self.core.link_state(peer),
                        path: self.links.get(peer).and_then(|l| l.path),
                        safety_code: self.core.key(peer).map(|k| safety_code(&mine, k)),
                        role: self.core.role(peer),
                        refused: self.core.is_refused(peer),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Ping { peer, reply } => {
                let (id, bytes) = self.core.ping();
                if self.write(&peer, bytes) {
                    self.core.ping_sent(id, crate::clock::now());
                    self.ping_replies.insert(id, reply);
                } else {
                    let _ = reply.send(Err(PingError::NotConnected(peer)));
                }
            }
            Command::Leave { .. } => {}
            Command::SetState { state, merge } => self.tell(Input::State { state, merge }),
            Command::Stream(announcement) => self.tell(Input::Stream(announcement)),
            Command::MeshSend(data) => self.core.broadcast(data.to_vec()),
            Command::TreeSend { to, data, reply } => {
                let _ = reply.send(self.core.tree_send(to, data.to_vec()));
            }
            Command::RelaySend { to, data, reply } => {
                let _ = reply.send(self.core.relay_send(to, data.to_vec()));
            }
            Command::RelayLink { peer, up } => self.core.relay_link(peer, up),
            Command::Links { reply } => {
                let _ = reply.send(self.core.links());
            }
            Command::Raw { peer, bytes } => {
                self.write(&peer, bytes);
            }
        }
    }

    /// A message on `channel` for `to`: written to open links, queued for the others; Ok
    /// with the outboxes that hold more than a sender should add to.
    fn send(
        &mut self,
        channel: ChannelName,
        data: Bytes,
        to: Target,
    ) -> Result<Vec<crate::outbox::Outbox>, SendError> {
        let all = matches!(to, Target::All);
        if all && self.core.post_to_host(channel.clone(), data.to_vec()) {
            // Through the host, which relays it to everyone (queued while there is none).
            return Ok(Vec::new());
        }
        let targets: Vec<PeerId> = match to {
            Target::All => self
                .core
                .roster()
                .keys()
                .filter(|p| self.core.links_with(p))
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
            return Err(SendError::UnknownPeer(unknown.clone()));
        }
        let id = self.core.next_id();
        let bytes = Bytes::from(Envelope::data(channel, id, data.to_vec()).encode());
        for peer in &targets {
            self.deliver(peer, bytes.clone());
        }
        if all && targets.is_empty() {
            // Nobody to send to yet: kept for the first peer whose link opens.
            self.core.hold_for_first(bytes);
        }
        self.flush_all_pending();
        Ok(targets
            .iter()
            .filter_map(|p| self.open_outbox(p))
            .filter(|w| w.progress().0 > crate::outbox::SOFT_LIMIT)
            .cloned()
            .collect())
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
