//! One call: a task that owns the room, the whiteboard and the roster, fed by commands from
//! the view and by the room's events, and pushing [`UiEvent`]s back. Nothing here knows
//! about Tauri, so tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use plenum::{Channel, Invite, PeerId, Room, RoomConfig, RoomError, RoomEvent, RoomEvents, Target};
use plenum_collab::{
    BOARD, Board, BoardChange, BoardMsg, CHAT, CURSOR, ChatMsg, Colour, CursorLimiter, CursorMsg,
    Point, Stroke,
};
use plenum_proto::signal::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::stage::{TreeStage, tree_error};
use crate::types::{
    ChatLine, CommandError, ErrorKind, JoinRequest, Joined, PeerState, PeerView, Role, RoomShape,
    StrokeStart, StrokeStarted, UiEvent,
};
use crate::types::{MicState, VideoState};
use crate::video::VideoTiles;

mod roster;
use plenum_media::{Content, VideoSource};

/// How often the roster is refreshed and every connected peer pinged.
const REFRESH: Duration = Duration::from_secs(1);
/// Board `sync` messages stay under this size (the room's limit is 256 KiB).
const SYNC_CHUNK_BYTES: usize = 192 * 1024;
/// A presentation in a room that grows is a tree under its presenter, who takes this many
/// viewers itself (as many as a call links everyone before it splits into cells: a mesh of
/// 8 sends each 640x360 stream 7 times, 5.1 Mbit/s, docs/benchmarks.md), so it is a star
/// until then.
const PRESENTER_VIEWERS: u16 = 8;
/// ... and each viewer beyond them passes the presentation on to at most this many more.
const VIEWER_PASSES_ON: u16 = 3;

/// A handle to the call's task. Dropping it leaves the room.
#[derive(Debug)]
pub struct Session {
    cmds: mpsc::Sender<Cmd>,
    joined: Joined,
}

type Reply<T> = oneshot::Sender<T>;

#[derive(Debug)]
enum Cmd {
    Chat(String, Reply<Result<ChatLine, CommandError>>),
    Cursor(Option<(f32, f32)>),
    Begin(StrokeStart, Reply<Result<StrokeStarted, CommandError>>),
    Points(u32, Vec<Point>, Reply<Result<BoardChange, CommandError>>),
    End(u32, Reply<Result<BoardChange, CommandError>>),
    Undo(Reply<Option<BoardChange>>),
    Clear(Reply<BoardChange>),
    Snapshot(Reply<Vec<Stroke>>),
    Mic(bool, Reply<Result<MicState, CommandError>>),
    Level(Reply<f32>),
    Devices(
        Option<String>,
        Option<String>,
        Reply<Result<MicState, CommandError>>,
    ),
    Camera(Option<String>, Reply<Result<VideoState, CommandError>>),
    Screen(Option<String>, Reply<Result<VideoState, CommandError>>),
    Hand(bool, Reply<Result<bool, CommandError>>),
    Stage(Option<String>, Reply<Result<(), CommandError>>),
    /// The verified peers changed: show it.
    Refresh,
    Leave(Reply<()>),
}

/// The ids of the peers the user verified, shared between the app and its session.
pub type Verified = std::sync::Arc<std::sync::RwLock<BTreeSet<String>>>;

/// A stable colour for a peer, the same on every peer: a hue from a hash of its id.
/// A participant as its tile first shows it.
fn peer_view(peer: &PeerId, name: &str, role: Role) -> PeerView {
    PeerView {
        id: peer.as_str().to_owned(),
        name: name.to_owned(),
        state: PeerState::Connecting,
        rtt_ms: None,
        colour: colour_of(peer.as_str()),
        speaking: false,
        muted: None,
        video: false,
        screen: false,
        path: None,
        safety_code: None,
        verified: false,
        role,
        hand: false,
        quality: None,
    }
}

pub fn colour_of(peer: &str) -> String {
    // FNV-1a: tiny, and the same everywhere.
    let hash = peer.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("hsl({}, 70%, 45%)", hash % 360)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A publication refused: a viewer token, or the room gone.
fn publish_failed(e: plenum::PublishError) -> CommandError {
    match e {
        plenum::PublishError::NotPermitted => CommandError::new(ErrorKind::Refused, e),
        plenum::PublishError::Closed => CommandError::not_in_room(),
    }
}

fn send_failed(e: impl ToString) -> CommandError {
    CommandError::new(ErrorKind::SendFailed, e)
}

/// An access code as credentials: `{"code": CODE}` (none when empty).
fn access_code(code: Option<&str>) -> Option<serde_json::Value> {
    code.map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::json!({ "code": c }))
}

/// A presenter's code: what everyone who links to us must present.
fn presenters_code(req: &JoinRequest) -> Option<serde_json::Value> {
    access_code(req.viewer_code.as_deref()).filter(|_| req.role == Role::Publisher)
}

/// A presentation in a room that grows: viewers beyond the presenter's own pass it on.
fn grows_as_a_presentation(req: &JoinRequest) -> bool {
    req.role != Role::Both && req.shape == RoomShape::Cells
}

/// The room `req` asks for, claiming a tree's root (with a secret only `identity` can
/// make) when `claim` says so.
fn room_config(
    req: &JoinRequest,
    identity: &plenum::Identity,
    claim: bool,
) -> Result<RoomConfig, CommandError> {
    use plenum_proto::overlay::TopologySpec;
    RoomConfig::builder(req.room.trim(), req.name.trim())
        .server(req.server.trim())
        .identity(identity.clone())
        .password(req.password.clone().filter(|p| !p.is_empty()))
        // A late cursor position is worth nothing: dropped while the view lags.
        .lossy_channel(CURSOR)
        .topology(match req.shape {
            RoomShape::Mesh => TopologySpec::Mesh,
            RoomShape::Cells if grows_as_a_presentation(req) => {
                TopologySpec::presentation(PRESENTER_VIEWERS, VIEWER_PASSES_ON)
            }
            RoomShape::Cells => TopologySpec::cells(None),
            RoomShape::Tree => TopologySpec::tree(10),
            RoomShape::Relay => TopologySpec::relay(20),
        })
        .root_secret(
            claim.then(|| identity.sign(format!("tree root of {}", req.room.trim()).as_bytes())),
        )
        .role(req.role.into())
        .credentials(access_code(req.access_code.as_deref()))
        .verify(presenters_code(req).map(plenum::Verify::exactly))
        .build()
        .map_err(CommandError::bad_input)
}

impl Session {
    /// Joins a room; `hosting` is true when the server runs inside this app (its invite then
    /// names `public_server`, the address others reach it at).
    pub async fn join(
        req: &JoinRequest,
        public_server: Option<&str>,
        devices: (Option<String>, Option<String>),
        ui: mpsc::Sender<UiEvent>,
        tiles: VideoTiles,
        (identity, verified): (&plenum::Identity, Verified),
    ) -> Result<Self, CommandError> {
        let asks_code = presenters_code(req).is_some();
        let presentation = grows_as_a_presentation(req);
        // The root of a tree: the host of a tree room, or the presenter of a presentation,
        // with a secret only it can make.
        let root = (req.shape == RoomShape::Tree && public_server.is_some())
            || (presentation && req.role == Role::Publisher);
        let config = |claim: bool| room_config(req, identity, claim);
        let first = config(root)?;
        let room_name = first.room().clone();
        // A browser links only in a full mesh: no browser link for a tree or relay network
        // (asked for here; a room that exists says so when the view learns it).
        let mut overlay = matches!(req.shape, RoomShape::Tree | RoomShape::Relay) || root;
        let (room, events) = match Room::join(first).await {
            // A presenter who finds a call going on there presents in it as it is (a mesh,
            // or cells), claiming nothing.
            Err(plenum::JoinError::Refused {
                code: ErrorCode::BadTopology,
                ..
            }) if presentation && root => {
                info!(room = %room_name.as_str(), "the room is a call; presenting in it as it is");
                overlay = false;
                Room::join(config(false)?).await
            }
            // Another's presentation: its tree has one presenter, whose viewers see them
            // alone. Said plainly, rather than joining it as a viewer who thinks it presents.
            Err(plenum::JoinError::Refused {
                code: ErrorCode::BadRootSecret,
                ..
            }) if presentation && root => {
                let text = format!(
                    "someone else presents in {} already: join it to watch (a raised hand can be invited to speak)",
                    room_name.as_str()
                );
                return Err(CommandError::new(ErrorKind::Refused, text));
            }
            joined => joined,
        }
        .map_err(|e| match e {
            plenum::JoinError::Refused { .. } => CommandError::new(ErrorKind::Refused, e),
            _ => CommandError::new(ErrorKind::Unreachable, e),
        })?;
        let server = public_server.unwrap_or(req.server.trim()).to_owned();
        // A presenter's invite makes viewers, and says whether they need the code.
        let presenting = req.role == Role::Publisher;
        let invite = Invite {
            server: server.clone(),
            room: room_name.clone(),
            role: presenting.then_some(plenum::Role::Viewer),
            credentials: asks_code,
        };
        let web_invite = invite.web_link().filter(|_| !overlay);
        let invite = invite.to_string();
        let me = PeerView {
            state: PeerState::Me,
            ..peer_view(room.id(), req.name.trim(), req.role)
        };
        let joined = Joined {
            me: me.clone(),
            room: room_name.as_str().to_owned(),
            server,
            invite,
            web_invite,
            hosting: public_server.is_some(),
            role: req.role,
        };
        info!(room = %room_name.as_str(), peer = %me.id, "joined");
        let (cmds, cmd_rx) = mpsc::channel(256);
        room.set_video_sink(Some(tiles.sink()));
        let mut task = Task::new(room, me, ui, tiles)?;
        task.verified = verified;
        task.tree = req.shape == RoomShape::Tree;
        (task.microphone, task.speaker) = devices;
        tokio::spawn(task.run(events, cmd_rx));
        Ok(Self { cmds, joined })
    }

    /// The room we are in.
    pub fn joined(&self) -> &Joined {
        &self.joined
    }

    async fn call<T>(&self, cmd: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(cmd(tx))
            .await
            .map_err(|_| CommandError::not_in_room())?;
        rx.await.map_err(|_| CommandError::not_in_room())
    }

    /// Sends a chat message to everyone.
    pub async fn chat(&self, text: String) -> Result<ChatLine, CommandError> {
        self.call(|r| Cmd::Chat(text, r)).await?
    }

    /// Our pointer is at (`x`, `y`) over the shared area, or (`None`) left it. Sent at a
    /// bounded rate; the latest position always goes out.
    pub async fn cursor(&self, at: Option<(f32, f32)>) -> Result<(), CommandError> {
        // A full queue means the task is busy: this position is dropped, the next one goes.
        match self.cmds.try_send(Cmd::Cursor(at)) {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(CommandError::not_in_room()),
            _ => Ok(()),
        }
    }

    /// Starts one of our strokes.
    pub async fn board_begin(&self, start: StrokeStart) -> Result<StrokeStarted, CommandError> {
        self.call(|r| Cmd::Begin(start, r)).await?
    }

    /// Adds points to our stroke `seq`.
    pub async fn board_points(
        &self,
        seq: u32,
        points: Vec<Point>,
    ) -> Result<BoardChange, CommandError> {
        self.call(|r| Cmd::Points(seq, points, r)).await?
    }

    /// Ends our stroke `seq`.
    pub async fn board_end(&self, seq: u32) -> Result<BoardChange, CommandError> {
        self.call(|r| Cmd::End(seq, r)).await?
    }

    /// Takes back our latest stroke on the board, if any.
    pub async fn board_undo(&self) -> Result<Option<BoardChange>, CommandError> {
        self.call(Cmd::Undo).await
    }

    /// Clears the board for everyone.
    pub async fn board_clear(&self) -> Result<BoardChange, CommandError> {
        self.call(Cmd::Clear).await
    }

    /// The board's strokes in drawing order.
    pub async fn board_snapshot(&self) -> Result<Vec<Stroke>, CommandError> {
        self.call(Cmd::Snapshot).await
    }

    /// Turns our microphone on (opening the chosen device and publishing it, or unmuting) or
    /// off (muting: peers see a muted microphone).
    pub async fn set_mic(&self, on: bool) -> Result<MicState, CommandError> {
        self.call(|r| Cmd::Mic(on, r)).await?
    }

    /// The level our microphone captures now, dBFS (-inf when it is off).
    pub async fn mic_level(&self) -> Result<f32, CommandError> {
        self.call(Cmd::Level).await
    }

    /// Chooses the microphone and speaker (`None`: the default); applied at once.
    pub async fn set_devices(
        &self,
        microphone: Option<String>,
        speaker: Option<String>,
    ) -> Result<MicState, CommandError> {
        self.call(|r| Cmd::Devices(microphone, speaker, r)).await?
    }

    /// Turns our camera on (`Some(camera)`: a camera id or name, `default`, or `testsrc`)
    /// or off (`None`).
    pub async fn set_camera(&self, camera: Option<String>) -> Result<VideoState, CommandError> {
        self.call(|r| Cmd::Camera(camera, r)).await?
    }

    /// Shares a screen (`Some(target)`: a monitor or `window:ID`, or `default`) or stops
    /// sharing (`None`).
    pub async fn share_screen(&self, target: Option<String>) -> Result<VideoState, CommandError> {
        self.call(|r| Cmd::Screen(target, r)).await?
    }

    /// Raises or lowers our hand (shared with the peers we link to as `{"hand": BOOL}`).
    pub async fn raise_hand(&self, raised: bool) -> Result<bool, CommandError> {
        self.call(|r| Cmd::Hand(raised, r)).await?
    }

    /// In a tree room, at its root (the presenter): puts a viewer on stage, its voice to
    /// every viewer (`None`: nobody).
    pub async fn set_stage(&self, peer: Option<String>) -> Result<(), CommandError> {
        self.call(|r| Cmd::Stage(peer, r)).await?
    }

    /// Shows the verified peers again (after the user marked one).
    pub async fn refresh(&self) {
        // A session that ended has nothing to show.
        let _ = self.cmds.send(Cmd::Refresh).await;
    }

    /// Leaves the room: says goodbye to every peer and the server.
    pub async fn leave(self) {
        // Already gone is as good as left.
        let _ = self.call(Cmd::Leave).await;
    }
}

/// The call's state, owned by its task.
struct Task {
    room: Room,
    chat: Channel,
    cursor: Channel,
    board_channel: Channel,
    me: PeerView,
    ui: mpsc::Sender<UiEvent>,
    board: Board,
    limiter: CursorLimiter,
    peers: BTreeMap<PeerId, PeerView>,
    /// Peers whose link has opened at least once: when it is down they are reconnecting.
    linked: BTreeSet<PeerId>,
    /// Peers the user verified (shared with the app, which keeps them in the prefs).
    verified: Verified,
    signaling: bool,
    last_roster: Vec<PeerView>,
    /// (packets, concealed frames) of each heard peer's audio at the last refresh.
    heard: BTreeMap<PeerId, (u64, u64)>,
    last_status: (bool, Vec<String>),
    /// Peers' speaking state and microphones (muted or not), from the room's events.
    speaking: BTreeSet<PeerId>,
    /// Peers whose shared state says their hand is raised.
    hands: BTreeSet<PeerId>,
    /// Whether the room is a broadcast tree (hands go up it to the root, which alone puts a
    /// viewer on stage).
    tree: bool,
    /// Our place in a tree as last told (parent, children, root): a change of the size
    /// below us alone needs no refresh of the roster.
    tree_place: Option<(Option<PeerId>, Vec<PeerId>, bool)>,
    /// In a tree room: who is on stage, and at the root the hands waiting.
    stage: TreeStage,
    muted: BTreeMap<PeerId, bool>,
    mic: MicState,
    microphone: Option<String>,
    speaker: Option<String>,
    /// Peers' camera streams and shared screens, by peer; their pictures go to `tiles`.
    video: BTreeMap<PeerId, String>,
    screens: BTreeMap<PeerId, String>,
    tiles: VideoTiles,
    /// Our place in a cellular room and the cells of the peers we know of.
    network: Option<plenum::MeshState>,
    cells_known: BTreeMap<PeerId, u32>,
}

/// Peers whose cell the network panel is told of, at most.
const NETWORK_KNOWN_MAX: usize = 512;

impl Task {
    fn new(
        room: Room,
        me: PeerView,
        ui: mpsc::Sender<UiEvent>,
        tiles: VideoTiles,
    ) -> Result<Self, CommandError> {
        let channel = |name| room.channel(name).map_err(CommandError::bad_input);
        Ok(Self {
            chat: channel(CHAT)?,
            cursor: channel(CURSOR)?,
            board_channel: channel(BOARD)?,
            board: Board::new(room.id().clone()),
            room,
            me,
            ui,
            limiter: CursorLimiter::new(CursorLimiter::DEFAULT_INTERVAL),
            peers: BTreeMap::new(),
            linked: BTreeSet::new(),
            verified: Verified::default(),
            signaling: true,
            last_roster: Vec::new(),
            heard: BTreeMap::new(),
            last_status: (true, Vec::new()),
            speaking: BTreeSet::new(),
            hands: BTreeSet::new(),
            tree: false,
            tree_place: None,
            stage: TreeStage::default(),
            muted: BTreeMap::new(),
            mic: MicState::Off,
            microphone: None,
            speaker: None,
            video: BTreeMap::new(),
            screens: BTreeMap::new(),
            tiles,
            network: None,
            cells_known: BTreeMap::new(),
        })
    }

    /// Plays what we hear on the chosen speaker; without one the call goes on silently.
    async fn open_speaker(&mut self) {
        let sink = match plenum_media::Speaker::open(self.speaker.as_deref()) {
            Ok(speaker) => Some(Box::new(speaker) as Box<dyn plenum_media::AudioSink>),
            Err(e) => {
                warn!(error = %e, "no speaker");
                self.emit(UiEvent::AudioError {
                    device: "speaker".into(),
                    message: format!("No sound output: {e}"),
                })
                .await;
                None
            }
        };
        if self.room.set_audio_sink(sink).await.is_err() {
            debug!("room closed; speaker not set");
        }
    }

    /// Opens the chosen microphone and publishes it (replacing what we published).
    async fn publish_mic(&mut self) -> Result<MicState, CommandError> {
        let name = self.microphone.clone();
        let mic =
            tokio::task::spawn_blocking(move || plenum_media::Microphone::open(name.as_deref()))
                .await
                .map_err(|e| CommandError::new(ErrorKind::Device, e))?
                .map_err(|e| CommandError::new(ErrorKind::Device, e))?;
        let metadata =
            serde_json::json!({"device": self.microphone.as_deref().unwrap_or("default")});
        self.room
            .add_stream(Box::new(mic), metadata)
            .await
            .map_err(publish_failed)?;
        self.mic = MicState::On;
        Ok(self.mic)
    }

    /// Publishes our camera or a shared screen from the source `open` gives (opened on a
    /// blocking thread: devices take their time), or stops that stream (`None`).
    async fn set_video(
        &mut self,
        lane: Content,
        open: Option<impl FnOnce() -> Result<Box<dyn VideoSource>, CommandError> + Send + 'static>,
    ) -> Result<VideoState, CommandError> {
        let on = match open {
            Some(open) => {
                let source = tokio::task::spawn_blocking(open)
                    .await
                    .map_err(|e| CommandError::new(ErrorKind::Device, e))??;
                let kind = if lane == Content::Screen {
                    "screen"
                } else {
                    "camera"
                };
                self.room
                    .add_video_stream(
                        self.tiles.preview(&self.me.id, source),
                        serde_json::json!({ "type": kind }),
                    )
                    .await
                    .map_err(publish_failed)?;
                true
            }
            None => {
                let stream = match lane {
                    Content::Camera => self.room.video_stream(),
                    Content::Screen => self.room.screen_stream(),
                };
                if let Some(stream) = stream {
                    let _ = self.room.remove_stream(&stream).await;
                }
                self.tiles
                    .forget(&crate::video::tile_name(&self.me.id, lane));
                false
            }
        };
        match lane {
            Content::Camera => self.me.video = on,
            Content::Screen => self.me.screen = on,
        }
        Ok(self.video_state())
    }

    fn video_state(&self) -> VideoState {
        VideoState {
            camera: self.me.video,
            screen: self.me.screen,
        }
    }

    async fn set_mic(&mut self, on: bool) -> Result<MicState, CommandError> {
        let stream = self.room.audio_stream();
        match (on, stream) {
            (true, None) => self.publish_mic().await,
            (on, Some(stream)) => {
                self.room
                    .set_stream_muted(&stream, !on)
                    .await
                    .map_err(|_| CommandError::not_in_room())?;
                self.mic = if on { MicState::On } else { MicState::Muted };
                Ok(self.mic)
            }
            (false, None) => Ok(MicState::Off),
        }
    }

    async fn run(mut self, mut events: RoomEvents, mut cmds: mpsc::Receiver<Cmd>) {
        let (rtt_tx, mut rtt_rx) = mpsc::channel::<(PeerId, Duration)>(64);
        self.open_speaker().await;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.emit_roster().await;
        loop {
            let flush_at = self.limiter.poll_timeout();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Leave(reply)) => {
                        self.room.leave().await;
                        self.emit(UiEvent::Closed { reason: None }).await;
                        // The caller may have given up waiting; the room is left either way.
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.handle_cmd(cmd).await,
                    None => {
                        self.room.leave().await;
                        return;
                    }
                },
                event = events.recv() => match event {
                    Some(RoomEvent::Closed) | None => {
                        self.emit(UiEvent::Closed { reason: Some("the room ended".into()) }).await;
                        return;
                    }
                    Some(event) => self.handle_event(event).await,
                },
                Some((peer, rtt)) = rtt_rx.recv() => {
                    if let Some(view) = self.peers.get_mut(&peer) {
                        view.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                    }
                }
                _ = refresh.tick() => {
                    self.refresh().await;
                    for peer in self.peers.iter().filter(|(_, v)| v.state == PeerState::Connected).map(|(p, _)| p.clone()) {
                        let (room, tx) = (self.room.clone(), rtt_tx.clone());
                        tokio::spawn(async move {
                            if let Ok(rtt) = room.ping(&peer).await {
                                // A full queue drops one sample; the next ping replaces it.
                                let _ = tx.try_send((peer, rtt));
                            }
                        });
                    }
                }
                () = sleep_until(flush_at), if flush_at.is_some() => {
                    if let Some(msg) = self.limiter.poll(Instant::now()) {
                        self.send_cursor(msg).await;
                    }
                }
            }
        }
    }

    async fn emit(&self, event: UiEvent) {
        if self.ui.send(event).await.is_err() {
            debug!("view gone; event dropped");
        }
    }

    async fn handle_cmd(&mut self, cmd: Cmd) {
        // A dropped reply means the view stopped waiting; the command took effect anyway.
        match cmd {
            Cmd::Chat(text, reply) => {
                let _ = reply.send(self.send_chat(&text).await);
            }
            Cmd::Cursor(at) => {
                let msg = match at {
                    Some((x, y)) => match CursorMsg::at(x, y) {
                        Ok(msg) => msg,
                        Err(e) => return debug!(error = %e, "cursor position refused"),
                    },
                    None => CursorMsg::Gone {},
                };
                if let Some(msg) = self.limiter.handle_move(msg, Instant::now()) {
                    self.send_cursor(msg).await;
                }
            }
            Cmd::Begin(start, reply) => {
                let result = match Colour::new(&start.colour) {
                    Ok(colour) => self
                        .board
                        .begin(start.tool, colour, start.width, start.points),
                    Err(e) => Err(e),
                };
                let result = match result {
                    Ok((msg, change)) => {
                        let seq = match &msg {
                            BoardMsg::Begin { seq, .. } => *seq,
                            _ => 0,
                        };
                        self.send_board(msg, Target::All)
                            .await
                            .map(|()| StrokeStarted { seq, change })
                    }
                    Err(e) => Err(CommandError::bad_input(e)),
                };
                let _ = reply.send(result);
            }
            Cmd::Points(seq, points, reply) => {
                let result = self
                    .board
                    .extend(seq, points)
                    .map_err(CommandError::bad_input);
                let _ = reply.send(self.send_local(result).await);
            }
            Cmd::End(seq, reply) => {
                let result = self.board.end(seq).map_err(CommandError::bad_input);
                let _ = reply.send(self.send_local(result).await);
            }
            Cmd::Undo(reply) => {
                let change = match self.board.undo() {
                    Some((msg, change)) => {
                        self.log_send(self.send_board(msg, Target::All).await);
                        Some(change)
                    }
                    None => None,
                };
                let _ = reply.send(change);
            }
            Cmd::Clear(reply) => {
                let (msg, change) = self.board.clear();
                self.log_send(self.send_board(msg, Target::All).await);
                let _ = reply.send(change);
            }
            Cmd::Snapshot(reply) => {
                let _ = reply.send(self.board.strokes().cloned().collect());
            }
            Cmd::Level(reply) => {
                let level = self.room.audio_level().await.unwrap_or(f32::NEG_INFINITY);
                let _ = reply.send(level);
            }
            Cmd::Mic(on, reply) => {
                let result = self.set_mic(on).await;
                self.me.muted = match self.mic {
                    MicState::Off => None,
                    MicState::On => Some(false),
                    MicState::Muted => Some(true),
                };
                self.emit_roster().await;
                let _ = reply.send(result);
            }
            Cmd::Devices(microphone, speaker, reply) => {
                let speaker_changed = speaker != self.speaker;
                self.microphone = microphone;
                self.speaker = speaker;
                if speaker_changed {
                    self.open_speaker().await;
                }
                // A new microphone takes effect at once when we publish one.
                let result = if self.mic == MicState::On {
                    self.publish_mic().await
                } else {
                    Ok(self.mic)
                };
                let _ = reply.send(result);
            }
            Cmd::Camera(camera, reply) => {
                let open = camera.map(|name| move || open_camera(&name));
                let result = self.set_video(Content::Camera, open).await;
                self.emit_roster().await;
                let _ = reply.send(result);
            }
            Cmd::Refresh => self.refresh().await,
            Cmd::Hand(raised, reply) => {
                // In a tree the hand goes up to the root, which is linked to few of its
                // viewers; elsewhere it is our shared state, which the presenters see.
                let sent = if self.tree {
                    self.room.raise_hand(raised).await.map_err(tree_error)
                } else {
                    let state = serde_json::json!({ "hand": raised });
                    (self.room.set_state(state, true).await)
                        .map_err(|_| CommandError::not_in_room())
                };
                if sent.is_ok() {
                    self.me.hand = raised;
                    self.emit_roster().await;
                }
                let _ = reply.send(sent.map(|()| raised));
            }
            Cmd::Stage(peer, reply) => {
                let result = match peer.map(PeerId::new).transpose() {
                    Ok(speaker) => self.room.set_stage(speaker).await.map_err(tree_error),
                    Err(e) => Err(CommandError::bad_input(e)),
                };
                let _ = reply.send(result);
            }
            Cmd::Screen(target, reply) => {
                let open = target.map(|target| move || open_screen(target));
                let result = self.set_video(Content::Screen, open).await;
                self.emit_roster().await;
                let _ = reply.send(result);
            }
            Cmd::Leave(_) => {}
        }
    }

    fn log_send(&self, result: Result<(), CommandError>) {
        if let Err(e) = result {
            warn!(error = %e, "board message not sent");
        }
    }

    async fn send_local(
        &self,
        result: Result<(BoardMsg, BoardChange), CommandError>,
    ) -> Result<BoardChange, CommandError> {
        let (msg, change) = result?;
        self.send_board(msg, Target::All).await?;
        Ok(change)
    }

    async fn send_board(&self, msg: BoardMsg, to: Target) -> Result<(), CommandError> {
        self.board_channel
            .send(Bytes::from(msg.encode()), to)
            .await
            .map_err(send_failed)
    }

    async fn send_chat(&self, text: &str) -> Result<ChatLine, CommandError> {
        let msg = ChatMsg::new(text).map_err(CommandError::bad_input)?;
        self.chat
            .send(Bytes::from(msg.encode()), Target::All)
            .await
            .map_err(send_failed)?;
        Ok(ChatLine {
            from: self.me.id.clone(),
            name: self.me.name.clone(),
            text: msg.text,
            at_ms: now_ms(),
            own: true,
        })
    }

    async fn send_cursor(&self, msg: CursorMsg) {
        if let Err(e) = self
            .cursor
            .send(Bytes::from(msg.encode()), Target::All)
            .await
        {
            debug!(error = %e, "cursor not sent");
        }
    }

    async fn handle_event(&mut self, event: RoomEvent) {
        match event {
            RoomEvent::PeerJoin { peer, name } => {
                info!(peer = %peer.short(), name = %name.as_str(), "peer joined");
                self.linked.insert(peer.clone());
                // Every peer answers a newcomer with its board; merging is idempotent.
                for msg in self.board.sync_messages(SYNC_CHUNK_BYTES) {
                    if let Err(e) = self.send_board(msg, Target::One(peer.clone())).await {
                        warn!(peer = %peer.short(), error = %e, "board sync not sent");
                    }
                }
                self.refresh().await;
            }
            RoomEvent::PeerLeave { peer } => {
                info!(peer = %peer.short(), "peer left or link lost");
                self.video.remove(&peer);
                self.screens.remove(&peer);
                self.tiles.forget(peer.as_str());
                self.tiles
                    .forget(&crate::video::tile_name(peer.as_str(), Content::Screen));
                self.refresh().await;
            }
            RoomEvent::Message {
                channel,
                from,
                data,
            } => self.handle_message(channel.as_str(), from, &data).await,
            RoomEvent::Error(RoomError::SignalingLost(reason)) => {
                warn!(%reason, "signaling connection lost");
                self.signaling = false;
                self.emit_status().await;
            }
            RoomEvent::LinkDown { peer } | RoomEvent::LinkUp { peer } => {
                info!(peer = %peer.short(), "link down or back");
                self.refresh().await;
                self.emit_status().await;
            }
            RoomEvent::RelayState { neighbours } => {
                let neighbours = neighbours.iter().map(|p| p.as_str().to_owned()).collect();
                self.emit(UiEvent::Relay { neighbours }).await;
            }
            RoomEvent::TreeState {
                parent,
                children,
                depth,
                is_root,
                root,
                root_name,
                subtree,
            } => {
                // The room's creator chose its shape; whoever joins learns it here.
                self.tree = true;
                let root_id = root.as_ref().map(|r| r.as_str().to_owned());
                self.stage.set_root(is_root, root, root_name.as_ref());
                info!(
                    is_root,
                    ?depth,
                    children = children.len(),
                    "place in the tree"
                );
                let event = UiEvent::Tree {
                    parent: parent.as_ref().map(|p| p.as_str().to_owned()),
                    children: children.iter().map(|p| p.as_str().to_owned()).collect(),
                    depth,
                    is_root,
                    root: root_id,
                    subtree,
                };
                self.emit(event).await;
                let place = Some((parent, children, is_root));
                if place != self.tree_place {
                    self.tree_place = place;
                    self.refresh().await;
                }
            }
            RoomEvent::SignalingResumed => {
                info!("signaling connection back");
                self.signaling = true;
                self.emit_status().await;
            }
            RoomEvent::Speaking { peer, speaking } => {
                if speaking {
                    self.speaking.insert(peer);
                } else {
                    self.speaking.remove(&peer);
                }
                self.emit_roster().await;
            }
            RoomEvent::StreamAdded {
                peer,
                stream,
                kind,
                metadata,
                ..
            } if kind == "video" => {
                if metadata["type"] == "screen" {
                    self.screens.insert(peer, stream);
                } else {
                    self.video.insert(peer, stream);
                }
                self.emit_roster().await;
            }
            RoomEvent::StreamAdded { peer, muted, .. }
            | RoomEvent::StreamMuted { peer, muted, .. } => {
                self.muted.insert(peer, muted);
                self.emit_roster().await;
            }
            RoomEvent::StreamRemoved { peer, stream } => {
                if self.video.get(&peer) == Some(&stream) {
                    self.video.remove(&peer);
                    self.tiles.forget(peer.as_str());
                } else if self.screens.get(&peer) == Some(&stream) {
                    self.screens.remove(&peer);
                    self.tiles
                        .forget(&crate::video::tile_name(peer.as_str(), Content::Screen));
                } else {
                    self.muted.remove(&peer);
                    self.speaking.remove(&peer);
                }
                self.emit_roster().await;
            }
            RoomEvent::Error(RoomError::VideoSource(reason)) => {
                warn!(%reason, "video source failed");
                self.emit(UiEvent::VideoError {
                    message: format!("Video stopped: {reason}"),
                })
                .await;
            }
            RoomEvent::Error(RoomError::ScreenSource(reason)) => {
                warn!(%reason, "screen capture failed");
                self.emit(UiEvent::VideoError {
                    message: format!("Screen sharing stopped: {reason}"),
                })
                .await;
                self.emit_roster().await;
            }
            RoomEvent::Error(RoomError::AudioSource(reason)) => {
                warn!(%reason, "microphone failed");
                self.mic = MicState::Off;
                self.me.muted = None;
                self.emit(UiEvent::AudioError {
                    device: "microphone".into(),
                    message: reason,
                })
                .await;
                self.emit_roster().await;
            }
            RoomEvent::Hand { peer, name, raised } => {
                info!(peer = %peer.short(), raised, "a hand up the tree");
                self.stage.hand(&peer, &name, raised);
                self.emit(self.stage.event()).await;
            }
            RoomEvent::Stage { speaker, name } => {
                info!(speaker = ?speaker.as_ref().map(PeerId::short), "stage");
                self.stage.set(speaker.as_ref(), name.as_ref());
                self.emit(self.stage.event()).await;
            }
            RoomEvent::Seats { seats, presenter } => {
                // A presenter or a speaker in another cell gets a tile of its own.
                let told = self
                    .stage
                    .set_cells_stage(&seats, presenter.as_ref(), &self.me.id);
                self.emit(told).await;
                self.refresh().await;
            }
            RoomEvent::State { peer, state } => {
                // Only a boolean `true` raises a hand; anything else in the state is ignored.
                if state.get("hand") == Some(&serde_json::Value::Bool(true)) {
                    self.hands.insert(peer);
                } else {
                    self.hands.remove(&peer);
                }
                self.emit_roster().await;
            }
            RoomEvent::Error(RoomError::NotVerified { peer, reason }) => {
                // The roster first: the refusal can come before the first refresh.
                self.refresh().await;
                let name = self
                    .peers
                    .get(&peer)
                    .map_or_else(|| peer.short().to_owned(), |p| p.name.clone());
                warn!(peer = %peer.short(), %reason, "our access code was refused");
                self.emit(UiEvent::NotVerified { name, reason }).await;
            }
            RoomEvent::Error(RoomError::Malformed { peer, reason }) => {
                warn!(peer = %peer.short(), %reason, "malformed envelope ignored");
                self.emit(UiEvent::Ignored {
                    peer: peer.as_str().to_owned(),
                    channel: String::new(),
                    reason,
                })
                .await;
            }
            RoomEvent::MeshState(state) => {
                info!(cell = state.cell, cells = state.cells, "place in the room");
                // A new layout numbers the cells anew: what we knew is stale.
                if self
                    .network
                    .as_ref()
                    .is_some_and(|n| n.epoch != state.epoch)
                {
                    self.cells_known.clear();
                }
                self.network = Some(state);
                self.emit_network().await;
            }
            RoomEvent::MeshPeer { peer, cell }
                if self.cells_known.len() < NETWORK_KNOWN_MAX
                    || self.cells_known.contains_key(&peer) =>
            {
                self.cells_known.insert(peer, cell);
                self.emit_network().await;
            }
            RoomEvent::Error(e) => debug!(error = %e, "room error"),
            _ => {}
        }
    }

    async fn handle_message(&mut self, channel: &str, from: PeerId, data: &[u8]) {
        let result = match channel {
            CHAT => ChatMsg::decode(data)
                .map(|msg| {
                    let name = self
                        .peers
                        .get(&from)
                        .map_or_else(|| from.short().to_owned(), |p| p.name.clone());
                    let line = ChatLine {
                        from: from.as_str().to_owned(),
                        name,
                        text: msg.text,
                        at_ms: now_ms(),
                        own: false,
                    };
                    vec![UiEvent::Chat { line }]
                })
                .map_err(|e| e.to_string()),
            CURSOR => CursorMsg::decode(data)
                .map(|msg| {
                    let peer = from.as_str().to_owned();
                    vec![match msg {
                        CursorMsg::At { x, y } => UiEvent::Cursor { peer, x, y },
                        CursorMsg::Gone {} => UiEvent::CursorGone { peer },
                    }]
                })
                .map_err(|e| e.to_string()),
            BOARD => BoardMsg::decode(data)
                .and_then(|msg| self.board.handle(&from, msg))
                .map(|changes| {
                    if changes.is_empty() {
                        vec![]
                    } else {
                        vec![UiEvent::Board { changes }]
                    }
                })
                .map_err(|e| e.to_string()),
            other => {
                debug!(channel = other, "message on a channel the app does not use");
                Ok(vec![])
            }
        };
        match result {
            Ok(events) => {
                for event in events {
                    self.emit(event).await;
                }
            }
            Err(reason) => {
                warn!(peer = %from.short(), channel, %reason, "ignored a bad message");
                let peer = from.as_str().to_owned();
                self.emit(UiEvent::Ignored {
                    peer,
                    channel: channel.to_owned(),
                    reason,
                })
                .await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Opens a camera by id or name (`default`: the first), or the test pattern (`testsrc`).
pub(crate) fn open_camera(name: &str) -> Result<Box<dyn VideoSource>, CommandError> {
    if name == TEST_PATTERN {
        return Ok(Box::new(
            plenum_media::TestPattern::new(640, 360).with_fps(30),
        ));
    }
    let request = plenum_media::CameraRequest {
        name: (name != "default").then(|| name.to_owned()),
        ..Default::default()
    };
    plenum_media::Camera::open(&request)
        .map(|c| Box::new(c) as Box<dyn VideoSource>)
        .map_err(|e| CommandError::new(ErrorKind::Device, e))
}

/// Opens a monitor or `window:ID` (`default`: the primary monitor).
fn open_screen(target: String) -> Result<Box<dyn VideoSource>, CommandError> {
    let request = plenum_media::ScreenRequest {
        target: (target != "default").then_some(target),
        ..Default::default()
    };
    plenum_media::Screen::open(&request)
        .map(|s| Box::new(s) as Box<dyn VideoSource>)
        .map_err(|e| CommandError::new(ErrorKind::Device, e))
}

/// The camera id of the moving test pattern.
pub const TEST_PATTERN: &str = "testsrc";
