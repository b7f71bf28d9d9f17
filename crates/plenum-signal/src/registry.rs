//! The room registry: who is in which room and what may be relayed to whom. Sans-IO.
//!
//! # Design
//! Inputs ([`Input`]) are connection lifecycle events and raw text frames, each with `now`;
//! outputs ([`Output`]) are frames to send, connections to close, and finally a
//! [`Output::Timeout`]. The registry owns every rule the server enforces (limits, passwords,
//! addressing, sender identity); the I/O shell around it only moves bytes. Every refusal is
//! an error frame to the offending connection alone: nothing one client sends can disturb
//! another client's room. No input panics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use plenum_overlay::{
    CellDirectory, CellDirectoryConfig, HostSeat, RelayConfig, STAGE_SEATS, StageBoard, TreeConfig,
};
use plenum_proto::identity::{PublicKey, join_message};
use plenum_proto::overlay::TopologySpec;
use plenum_proto::signal::{
    ClientToServer, ErrorCode, Limits, PeerSummary, Role, ServerToClient, SignalPayload,
};
use plenum_proto::token::{Claims, Grants, TokenError};
use plenum_proto::{DisplayName, PROTOCOL_VERSION, PeerId, RoomName};
use sha2::Digest as _;
use stage::Told;
use subtle::ConstantTimeEq;

mod host_seat;
mod stage;
mod tree_root;
mod turn;
pub use turn::TurnConfig;

/// A connection's id, chosen by the I/O shell.
pub type ConnId = u64;

/// Limits the registry enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Largest frame accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Sustained frames per second per connection (default 50; bursts of twice that pass).
    pub max_frames_per_sec: u32,
    /// Peers per full-mesh room (default 256; every peer links to every other).
    pub max_peers_per_room: usize,
    /// Peers per room of an overlay topology, cells or tree (default 10,000; each peer
    /// links to a few others).
    pub max_peers_per_cellular_room: usize,
    /// Rooms per server (default 10,000).
    pub max_rooms: usize,
    /// Most peers listed in a `welcome` (default 64): a big room hands out a sample.
    pub roster_sample: usize,
    /// Time a connection has to send `join` (default 10 s).
    pub join_timeout: Duration,
    /// How long a peer whose connection dropped stays in its room, able to resume its
    /// session, before the others are told it left (default 15 s).
    pub resume_grace: Duration,
    /// If set, every join needs a room token minted with this secret.
    pub token_secret: Option<Vec<u8>>,
    /// If set, every admitted peer gets credentials for this TURN server.
    pub turn: Option<TurnConfig>,
    /// STUN servers handed to every peer.
    pub stun_urls: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_frames_per_sec: 50,
            max_peers_per_room: 256,
            max_peers_per_cellular_room: 10_000,
            max_rooms: 10_000,
            roster_sample: 64,
            join_timeout: Duration::from_secs(10),
            resume_grace: Duration::from_secs(15),
            token_secret: None,
            turn: None,
            stun_urls: Vec::new(),
        }
    }
}

/// What the registry is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A connection was accepted.
    Opened {
        /// Its id.
        conn: ConnId,
        /// The current time.
        now: Instant,
    },
    /// A connection accepted by another server of a cluster (the `--nats` federation),
    /// which already sent it `hello` with `challenge`: no `hello` is sent again.
    Forwarded {
        /// Its id.
        conn: ConnId,
        /// The challenge its `join` must sign.
        challenge: String,
        /// The current time.
        now: Instant,
    },
    /// A text frame arrived.
    Frame {
        /// From which connection.
        conn: ConnId,
        /// The frame.
        text: String,
        /// The current time.
        now: Instant,
    },
    /// A frame arrived that the shell did not keep: too large, or not text.
    Refused {
        /// From which connection.
        conn: ConnId,
        /// Its length in bytes.
        len: usize,
        /// Whether it was a binary frame.
        binary: bool,
        /// The current time.
        now: Instant,
    },
    /// A connection ended.
    Closed {
        /// Its id.
        conn: ConnId,
        /// The current time.
        now: Instant,
    },
    /// Time passed.
    Tick {
        /// The current time.
        now: Instant,
    },
}

/// What the registry asks of its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a frame on a connection.
    Send {
        /// To which connection.
        conn: ConnId,
        /// The frame.
        frame: ServerToClient,
    },
    /// Close a connection (after sending what was queued for it).
    Close {
        /// Which connection.
        conn: ConnId,
    },
    /// Nothing more until this instant.
    Timeout(Instant),
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    refusing: bool,
}

#[derive(Debug)]
struct Conn {
    opened: Instant,
    bucket: Bucket,
    member: Option<(RoomName, PeerId)>,
    challenge: String,
    /// Being closed (left, refused, or replaced by a resumed session): no join deadline.
    closing: bool,
}

#[derive(Debug)]
struct Member {
    /// Its connection; `None` while it is away (dropped, within the resume grace).
    conn: Option<ConnId>,
    name: DisplayName,
    grants: Grants,
    role: Role,
    /// The token that resumes this session.
    resume: String,
    /// When an away member is given up.
    away_until: Option<Instant>,
    /// When its TURN credentials are renewed (half their lifetime after issue).
    renew_ice_at: Option<Instant>,
    /// It links only in a full mesh (a browser guest): a cells room stays one cell while
    /// it is there.
    mesh_only: bool,
}

#[derive(Debug)]
struct Room {
    password: Option<String>,
    members: BTreeMap<PeerId, Member>,
    /// The overlay the room was created with.
    topology: TopologySpec,
    /// The cell plan of a cellular room: its members learn their cell and bridges from
    /// it, not the whole roster.
    cells: Option<CellDirectory>,
    /// A cellular room's stage, and what its members were last told of it.
    stage: Option<(StageBoard, Told)>,
    /// Who is root of a tree room, and who stands by.
    tree: Option<TreeRoot>,
    /// Who hosts a host room.
    seat: Option<HostSeat>,
}

/// Join requests held for a tree room that has no root at the moment.
const HELD_FOR_ROOT: usize = 1024;

/// The root of a tree room. The server knows nothing else of the tree: join requests reach
/// the root through it, and travel on over the tree's links.
#[derive(Debug, Default)]
struct TreeRoot {
    /// The secret a root claim must present; the first claim sets it.
    secret: Option<String>,
    /// The root, once a claimant joined.
    root: Option<PeerId>,
    /// Claimants that joined while a root was there, first first.
    standby: VecDeque<PeerId>,
    /// Frames for the root while there is none (or it is away), oldest first.
    held: VecDeque<(PeerId, SignalPayload)>,
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Open connections.
    pub connections: usize,
    /// Rooms with at least one peer.
    pub rooms: usize,
    /// Peers in rooms.
    pub peers: usize,
    /// Frames refused with an error since start.
    pub refused: u64,
}

/// The registry state machine.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    now: Instant,
    /// `now` as Unix seconds at one instant, for token and TURN expiry.
    wall: (Instant, u64),
    /// Secret seed of challenges and resume tokens.
    secret: [u8; 32],
    counter: u64,
    conns: HashMap<ConnId, Conn>,
    rooms: BTreeMap<RoomName, Room>,
    outputs: VecDeque<Output>,
    refused: u64,
}

impl Registry {
    /// An empty registry. `seed` is the secret its challenges and resume tokens derive
    /// from: give it 32 bytes of OS randomness (tests give fixed bytes to replay).
    pub fn new(config: RegistryConfig, now: Instant, seed: [u8; 32]) -> Self {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            config,
            now,
            wall: (now, unix),
            secret: seed,
            counter: 0,
            conns: HashMap::new(),
            rooms: BTreeMap::new(),
            outputs: VecDeque::new(),
            refused: 0,
        }
    }

    /// Sets the wall clock: `unix` seconds at `at`.
    pub fn set_wall_clock(&mut self, at: Instant, unix: u64) {
        self.wall = (at, unix);
    }

    fn unix_now(&self) -> u64 {
        let (at, unix) = self.wall;
        unix + self.now.saturating_duration_since(at).as_secs()
    }

    /// 32 unpredictable bytes as base64url: SHA-256 of the secret seed and a counter.
    fn random_token(&mut self, label: &str) -> String {
        self.counter += 1;
        let mut hasher = sha2::Sha256::new();
        hasher.update(label.as_bytes());
        hasher.update(self.secret);
        hasher.update(self.counter.to_le_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize())
    }

    /// The limits as announced to clients.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.config.max_frame_bytes,
            max_frames_per_sec: self.config.max_frames_per_sec,
            max_peers_per_room: self.config.max_peers_per_room,
        }
    }

    /// Current counters.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            connections: self.conns.len(),
            rooms: self.rooms.len(),
            peers: self.rooms.values().map(|r| r.members.len()).sum(),
            refused: self.refused,
        }
    }

    /// A new connection: `hello` with a fresh challenge, or none when another server
    /// of the cluster sent one already (`forwarded`).
    fn open(&mut self, conn: ConnId, forwarded: Option<String>, now: Instant) {
        self.now = self.now.max(now);
        // A reused id ends whatever the old connection held.
        self.handle_input(Input::Closed { conn, now });
        let burst = f64::from(self.config.max_frames_per_sec) * 2.0;
        let bucket = Bucket {
            tokens: burst,
            last: now,
            refusing: false,
        };
        let challenge = match &forwarded {
            Some(challenge) => challenge.clone(),
            None => self.random_token("challenge"),
        };
        self.conns.insert(
            conn,
            Conn {
                opened: now,
                bucket,
                member: None,
                challenge: challenge.clone(),
                closing: false,
            },
        );
        if forwarded.is_none() {
            self.send(
                conn,
                ServerToClient::Hello {
                    version: PROTOCOL_VERSION,
                    challenge,
                },
            );
        }
    }

    /// Consumes one input.
    pub fn handle_input(&mut self, input: Input) {
        match input {
            Input::Opened { conn, now } => self.open(conn, None, now),
            Input::Forwarded {
                conn,
                challenge,
                now,
            } => self.open(conn, Some(challenge), now),
            Input::Frame { conn, text, now } => {
                self.now = self.now.max(now);
                self.on_frame(conn, &text);
            }
            Input::Refused {
                conn,
                len,
                binary,
                now,
            } => {
                self.now = self.now.max(now);
                if self.admit(conn) {
                    if binary {
                        self.refuse(
                            conn,
                            ErrorCode::Malformed,
                            "binary frames are not accepted; send JSON text".into(),
                            false,
                        );
                    } else {
                        let max = self.config.max_frame_bytes;
                        self.refuse(
                            conn,
                            ErrorCode::FrameTooLarge,
                            format!("frame of {len} bytes; at most {max} are accepted"),
                            false,
                        );
                    }
                }
            }
            Input::Closed { conn, now } => {
                self.now = self.now.max(now);
                if let Some(c) = self.conns.remove(&conn)
                    && let Some((room, peer)) = c.member
                {
                    self.member_away(&room, &peer);
                }
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                let deadline = self.config.join_timeout;
                let late: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.member.is_none() && !c.closing && now >= c.opened + deadline)
                    .map(|(id, _)| *id)
                    .collect();
                for conn in late {
                    self.refuse(
                        conn,
                        ErrorCode::NotJoined,
                        "no join within the join timeout".into(),
                        true,
                    );
                }
                let gone: Vec<(RoomName, PeerId)> = self
                    .rooms
                    .iter()
                    .flat_map(|(name, room)| {
                        room.members
                            .iter()
                            .filter(|(_, m)| m.away_until.is_some_and(|t| now >= t))
                            .map(move |(peer, _)| (name.clone(), peer.clone()))
                    })
                    .collect();
                for (room, peer) in gone {
                    tracing::info!(room = %room, peer = peer.short(), "did not resume in time");
                    self.remove_member(&room, &peer);
                }
                self.renew_ice(now);
            }
        }
    }

    /// Produces the next output; a drain always ends in [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        let joins = self
            .conns
            .values()
            .filter(|c| c.member.is_none() && !c.closing)
            .map(|c| c.opened + self.config.join_timeout);
        let resumes = self.rooms.values().flat_map(|r| {
            r.members
                .values()
                .filter_map(|m| m.away_until.or(m.conn.and(m.renew_ice_at)))
        });
        let next = joins
            .chain(resumes)
            .min()
            .unwrap_or(self.now + Duration::from_secs(60));
        Output::Timeout(next.max(self.now))
    }

    fn send(&mut self, conn: ConnId, frame: ServerToClient) {
        self.outputs.push_back(Output::Send { conn, frame });
    }

    fn refuse(&mut self, conn: ConnId, code: ErrorCode, message: String, fatal: bool) {
        self.refused += 1;
        tracing::debug!(conn, code = code.as_str(), %message, fatal, "refused frame");
        self.send(conn, ServerToClient::error(code, message, fatal));
        if fatal {
            self.outputs.push_back(Output::Close { conn });
            if let Some(c) = self.conns.get_mut(&conn) {
                c.closing = true;
            }
            // The shell reports Closed when the socket is gone; membership ends now.
            if let Some(c) = self.conns.get_mut(&conn)
                && let Some((room, peer)) = c.member.take()
            {
                self.remove_member(&room, &peer);
            }
        }
    }

    /// Token bucket per connection. One error frame per flood, not one per frame.
    fn admit(&mut self, conn: ConnId) -> bool {
        let rate = f64::from(self.config.max_frames_per_sec);
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let b = &mut c.bucket;
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate * 2.0);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refusing = false;
            return true;
        }
        let first = !b.refusing;
        b.refusing = true;
        self.refused += 1;
        if first {
            let msg = format!(
                "more than {} frames per second; frames are being dropped",
                self.config.max_frames_per_sec
            );
            self.send(
                conn,
                ServerToClient::error(ErrorCode::RateLimited, msg, false),
            );
        }
        false
    }

    fn on_frame(&mut self, conn: ConnId, text: &str) {
        if !self.admit(conn) {
            return;
        }
        if text.len() > self.config.max_frame_bytes {
            let msg = format!(
                "frame of {} bytes; at most {} are accepted",
                text.len(),
                self.config.max_frame_bytes
            );
            return self.refuse(conn, ErrorCode::FrameTooLarge, msg, false);
        }
        let frame = match ClientToServer::decode(text) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(conn, e.code(), e.to_string(), false),
        };
        let member = self.conns.get(&conn).and_then(|c| c.member.clone());
        match (frame, member) {
            (ClientToServer::Ping { nonce }, _) => self.send(conn, ServerToClient::Pong { nonce }),
            (join @ ClientToServer::Join { .. }, None) => self.on_join(conn, join),
            (ClientToServer::Join { .. }, Some(_)) => {
                self.refuse(
                    conn,
                    ErrorCode::AlreadyJoined,
                    "this connection is in a room already".into(),
                    false,
                );
            }
            (_, None) => self.refuse(conn, ErrorCode::NotJoined, "send join first".into(), false),
            (ClientToServer::Leave {}, Some((room, peer))) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.member = None;
                    c.closing = true;
                }
                self.remove_member(&room, &peer);
                self.outputs.push_back(Output::Close { conn });
            }
            (ClientToServer::SignalRoot { payload }, Some((room, me))) => {
                self.relay_to_root(conn, &room, me, payload)
            }
            (ClientToServer::ClaimHost { epoch }, Some((room, me))) => {
                self.claim_host(conn, &room, me, epoch)
            }
            (
                ClientToServer::Floor {
                    speaking,
                    hand,
                    presenting,
                },
                Some((room, me)),
            ) => {
                match self.rooms.get_mut(&room).and_then(|r| r.stage.as_mut()) {
                    Some((board, _)) => {
                        // A presenter's voice is on the stage too, speaking or not.
                        board.set_wants(&me, speaking || hand || presenting);
                        board.set_presenting(&me, presenting);
                        self.stage_changed(&room);
                    }
                    None => self.refuse(
                        conn,
                        ErrorCode::BadTopology,
                        format!("room {room} is not a cells room: it has no stage"),
                        false,
                    ),
                }
            }
            (ClientToServer::Signal { to, from, payload }, Some((room, me))) => {
                if from.as_ref().is_some_and(|f| *f != me) {
                    return self.refuse(
                        conn,
                        ErrorCode::SpoofedSender,
                        format!("you are {me}, not {}", from.unwrap_or(me.clone())),
                        false,
                    );
                }
                let target = self
                    .rooms
                    .get(&room)
                    .and_then(|r| r.members.get(&to))
                    .filter(|_| to != me)
                    .map(|m| m.conn);
                match target {
                    Some(Some(target)) => self.relay(target, &room, me, payload),
                    // Away, within its resume grace: its links need nothing from us now.
                    Some(None) => {
                        tracing::debug!(peer = to.short(), "signal to an away peer dropped")
                    }
                    None => self.refuse(
                        conn,
                        ErrorCode::UnknownPeer,
                        format!("no peer {to} in room {room}"),
                        false,
                    ),
                }
            }
        }
    }

    fn on_join(&mut self, conn: ConnId, join: ClientToServer) {
        let ClientToServer::Join {
            version,
            room: room_name,
            name,
            password,
            key,
            proof,
            token,
            resume,
            topology,
            root,
            role,
            mesh_only,
        } = join
        else {
            return;
        };
        if version != PROTOCOL_VERSION {
            let msg = format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            return self.refuse(conn, ErrorCode::UnsupportedVersion, msg, true);
        }
        let challenge = self
            .conns
            .get(&conn)
            .map(|c| c.challenge.clone())
            .unwrap_or_default();
        let peer = match PublicKey::parse(&key).and_then(|k| {
            k.verify(&join_message(&challenge, room_name.as_str()), &proof)
                .map(|()| k.peer_id())
        }) {
            Ok(peer) => peer,
            Err(e) => {
                let msg = format!("identity not proven: {e}");
                return self.refuse(conn, ErrorCode::BadIdentity, msg, true);
            }
        };
        // A session resumed by its token, or one whose connection dropped (its key just
        // proved it is the same peer), was admitted before: it takes its own place back.
        if self.take_place(conn, &room_name, &peer, resume.as_deref()) {
            return;
        }
        let (name, grants) = match self.check_token(token.as_deref(), &room_name, name) {
            Ok(admitted) => admitted,
            Err((code, msg)) => return self.refuse(conn, code, msg, true),
        };
        match self.rooms.get(&room_name) {
            Some(room) => {
                let given = password.as_deref().unwrap_or("").as_bytes();
                let wanted = room.password.as_deref().unwrap_or("").as_bytes();
                if room.password.is_some() != password.is_some() || !bool::from(given.ct_eq(wanted))
                {
                    return self.refuse(
                        conn,
                        ErrorCode::BadPassword,
                        format!("wrong password for room {room_name}"),
                        true,
                    );
                }
                if room.members.contains_key(&peer) {
                    return self.refuse(
                        conn,
                        ErrorCode::PeerIdTaken,
                        "this identity is in the room already (resume with its token)".into(),
                        true,
                    );
                }
                if let Err((code, msg)) = check_root_claim(room, &room_name, root.as_deref()) {
                    return self.refuse(conn, code, msg, true);
                }
                if mesh_only
                    && matches!(
                        room.topology,
                        TopologySpec::Tree { .. } | TopologySpec::Relay { .. }
                    )
                {
                    // Nobody would ever link it: its links are the tree's or the network's.
                    let msg = format!(
                        "room {room_name} is a broadcast tree or a relay network, and a browser \
                         links only in a full mesh: join it with the Plenum app"
                    );
                    return self.refuse(conn, ErrorCode::BadTopology, msg, true);
                }
                if mesh_only
                    && let Some(cells) = room.cells.as_ref()
                    && cells.layout().cell_count() > 1
                {
                    let msg = format!(
                        "room {room_name} has grown into cells of peers, and a browser links \
                         only in a full mesh: join it with the Plenum app"
                    );
                    return self.refuse(conn, ErrorCode::BadTopology, msg, true);
                }
                // A room held in one cell is a full mesh, and holds what a mesh room does.
                let held = mesh_only || room.cells.as_ref().is_some_and(CellDirectory::held);
                let most = if room.topology.is_overlay() && !held {
                    self.config.max_peers_per_cellular_room
                } else {
                    self.config.max_peers_per_room
                };
                if room.members.len() >= most {
                    let why = if held && room.topology.is_overlay() {
                        " while it is one full mesh (a browser guest is in it, or would be)"
                    } else {
                        ""
                    };
                    let msg = format!("room {room_name} holds its maximum of {most} peers{why}");
                    return self.refuse(conn, ErrorCode::RoomFull, msg, true);
                }
            }
            None if self.rooms.len() >= self.config.max_rooms => {
                let msg = format!(
                    "this server holds its maximum of {} rooms",
                    self.config.max_rooms
                );
                return self.refuse(conn, ErrorCode::ServerFull, msg, true);
            }
            None => {
                let topology = topology.unwrap_or(TopologySpec::Mesh);
                let (cells, tree) = match (
                    CellDirectoryConfig::from_spec(&topology),
                    TreeConfig::from_spec(&topology),
                    RelayConfig::from_spec(&topology),
                ) {
                    (Ok(cells), Ok(tree), Ok(_)) => (
                        cells.map(|c| CellDirectory::new(c, self.counter)),
                        tree.map(|_| TreeRoot::default()),
                    ),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        let msg = format!("topology refused: {e}");
                        return self.refuse(conn, ErrorCode::BadTopology, msg, true);
                    }
                };
                let seat = matches!(topology, TopologySpec::Host {}).then(HostSeat::new);
                let stage = cells
                    .is_some()
                    .then(|| (StageBoard::new(STAGE_SEATS), Told::empty()));
                let room = Room {
                    password,
                    members: BTreeMap::new(),
                    topology,
                    cells,
                    stage,
                    tree,
                    seat,
                };
                if let Err((code, msg)) = check_root_claim(&room, &room_name, root.as_deref()) {
                    return self.refuse(conn, code, msg, true);
                }
                self.rooms.insert(room_name.clone(), room);
            }
        }
        let resume = self.random_token("resume");
        let publish = grants.publish;
        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        let others: Vec<ConnId> = room.members.values().filter_map(|m| m.conn).collect();
        room.members.insert(
            peer.clone(),
            Member {
                conn: Some(conn),
                name: name.clone(),
                grants,
                role,
                resume: resume.clone(),
                away_until: None,
                renew_ice_at: None,
                mesh_only,
            },
        );
        tracing::info!(room = %room_name, peer = peer.short(), "peer joined");
        if let Some(cells) = room.cells.as_mut() {
            if mesh_only {
                cells.hold_one_cell(true);
            }
            cells.handle_join(PeerSummary {
                peer: peer.clone(),
                name,
                publish,
                role,
            });
            self.welcome(conn, &room_name, &peer, grants, resume);
            if !self.send_plans(&room_name) {
                self.tell_stage(&room_name, conn);
            }
            return;
        }
        if let Some(tree) = room.tree.as_mut() {
            // A tree's peers learn whom to link from the tree: nobody else hears of a join.
            let claims = root.is_some();
            if claims {
                tree.secret = tree.secret.take().or(root);
                if tree.root.is_some() {
                    tracing::info!(room = %room_name, peer = peer.short(), "standby root");
                    tree.standby.push_back(peer.clone());
                }
            }
            let crowned = claims && tree.root.is_none();
            self.welcome(conn, &room_name, &peer, grants, resume);
            if crowned {
                self.crown(&room_name, &peer);
            }
            return;
        }
        let overlay = room.topology.is_overlay();
        if let Some(seat) = room.seat.as_mut()
            && seat.joined(&peer).is_some()
        {
            tracing::info!(room = %room_name, peer = peer.short(), "host (the first peer)");
        }
        self.welcome(conn, &room_name, &peer, grants, resume);
        self.tell_seat(&room_name, conn);
        if overlay {
            // A relay network's peers learn of each other through it.
            return;
        }
        for other in others {
            self.send(
                other,
                ServerToClient::PeerJoined {
                    peer: peer.clone(),
                    name: name.clone(),
                    publish,
                    role,
                },
            );
        }
    }

    /// Checks the join's token when the server requires one; returns the name to admit the
    /// peer under and its grants.
    fn check_token(
        &self,
        token: Option<&str>,
        room: &RoomName,
        name: DisplayName,
    ) -> Result<(DisplayName, Grants), (ErrorCode, String)> {
        let Some(secret) = &self.config.token_secret else {
            return Ok((name, Grants::PARTICIPANT));
        };
        let Some(token) = token else {
            return Err((
                ErrorCode::TokenRequired,
                "this server admits only peers with a room token".into(),
            ));
        };
        match Claims::verify(token, secret, room, self.unix_now()) {
            // The token's name is the one the minter vouched for.
            Ok(claims) => Ok((claims.name, claims.grants)),
            Err(e) => {
                let code = match e {
                    TokenError::Malformed(_) => ErrorCode::TokenInvalid,
                    TokenError::Forged => ErrorCode::TokenForged,
                    TokenError::Expired(_) => ErrorCode::TokenExpired,
                    TokenError::WrongRoom(_) => ErrorCode::TokenWrongRoom,
                };
                Err((code, e.to_string()))
            }
        }
    }

    /// Puts `conn` in the place of `peer`'s session if that session is away (its connection
    /// dropped) or `resume` is its token (its connection may be half-open: it is closed).
    /// The others see nothing. The caller has checked the key.
    fn take_place(
        &mut self,
        conn: ConnId,
        room_name: &RoomName,
        peer: &PeerId,
        resume: Option<&str>,
    ) -> bool {
        let takes_place = self
            .rooms
            .get(room_name)
            .and_then(|r| r.members.get(peer))
            .is_some_and(|m| {
                m.conn.is_none()
                    || resume.is_some_and(|r| bool::from(m.resume.as_bytes().ct_eq(r.as_bytes())))
            });
        if !takes_place {
            return false;
        }
        let fresh = self.random_token("resume");
        let Some(m) = self
            .rooms
            .get_mut(room_name)
            .and_then(|r| r.members.get_mut(peer))
        else {
            return false;
        };
        let old = m.conn.replace(conn);
        m.away_until = None;
        m.resume = fresh.clone();
        let grants = m.grants;
        if let Some(old) = old.filter(|o| *o != conn) {
            if let Some(c) = self.conns.get_mut(&old) {
                c.member = None;
                c.closing = true;
            }
            self.outputs.push_back(Output::Close { conn: old });
        }
        tracing::info!(room = %room_name, peer = peer.short(), "session resumed");
        self.welcome(conn, room_name, peer, grants, fresh);
        let plan = self
            .rooms
            .get(room_name)
            .and_then(|r| r.cells.as_ref())
            .and_then(|c| c.plan(peer));
        if let Some(plan) = plan {
            self.send(conn, ServerToClient::Cell { plan });
            self.tell_stage(room_name, conn);
        }
        self.tell_seat(room_name, conn);
        let is_root = self
            .rooms
            .get(room_name)
            .and_then(|r| r.tree.as_ref())
            .is_some_and(|t| t.root.as_ref() == Some(peer));
        if is_root {
            self.crown(room_name, peer);
        }
        true
    }

    /// Relays `payload` from `from` to `conn`, with the name `from` joined `room` under.
    pub(super) fn relay(
        &mut self,
        conn: ConnId,
        room: &RoomName,
        from: PeerId,
        payload: SignalPayload,
    ) {
        let member = self.rooms.get(room).and_then(|r| r.members.get(&from));
        let name = member.map(|m| m.name.clone());
        let role = member.map(|m| m.role).filter(|r| !r.is_both());
        self.send(
            conn,
            ServerToClient::Signal {
                from,
                name,
                role,
                payload,
            },
        );
    }

    fn welcome(
        &mut self,
        conn: ConnId,
        room_name: &RoomName,
        peer: &PeerId,
        grants: Grants,
        resume: String,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some((room_name.clone(), peer.clone()));
        }
        let Some(room) = self.rooms.get(room_name) else {
            return;
        };
        // An overlay's peers learn whom to link from it (a plan, or the tree).
        let sample = if room.topology.is_overlay() {
            0
        } else {
            self.config.roster_sample
        };
        let topology = room.topology.clone();
        let summary = |p: &PeerId, m: &Member| PeerSummary {
            peer: p.clone(),
            name: m.name.clone(),
            publish: m.grants.publish,
            role: m.role,
        };
        let peers: Vec<PeerSummary> = if let TopologySpec::Relay { .. } = topology {
            // A relay newcomer needs peers to link: those beside it in id order (they share
            // its longest prefixes) and some spread over the rest.
            plenum_overlay::relay::welcome_sample(room.members.keys(), peer, 8, 8, self.counter)
                .into_iter()
                .filter_map(|p| room.members.get(&p).map(|m| summary(&p, m)))
                .collect()
        } else {
            room.members
                .iter()
                .filter(|(p, _)| *p != peer)
                .take(sample)
                .map(|(p, m)| summary(p, m))
                .collect()
        };
        let peer_count = room.members.len().saturating_sub(1);
        let ice_servers = self.ice_servers_for(room_name, peer);
        let limits = self.limits();
        self.send(
            conn,
            ServerToClient::Welcome {
                version: PROTOCOL_VERSION,
                room: room_name.clone(),
                peer: peer.clone(),
                peers,
                peer_count,
                limits,
                grants,
                ice_servers,
                resume,
                topology,
            },
        );
    }

    /// Sends every plan the room's cell directory has changed to its peer. Returns whether
    /// the stage went to every member too (a seated peer's cell moved).
    fn send_plans(&mut self, room_name: &RoomName) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        let mut frames = Vec::new();
        if let Some(cells) = room.cells.as_mut() {
            while let Some((peer, plan)) = cells.poll_plan() {
                // An away member gets its plan when it resumes.
                if let Some(conn) = room.members.get(&peer).and_then(|m| m.conn) {
                    frames.push((conn, plan));
                }
            }
        }
        for (conn, plan) in frames {
            self.send(conn, ServerToClient::Cell { plan });
        }
        // A seated peer's cell may have moved with the plans.
        self.stage_changed(room_name)
    }

    /// A member's connection ended without `leave`: it may resume within the grace.
    fn member_away(&mut self, room_name: &RoomName, peer: &PeerId) {
        self.vacate_seat(room_name, peer);
        let until = self.now + self.config.resume_grace;
        match self
            .rooms
            .get_mut(room_name)
            .and_then(|r| r.members.get_mut(peer))
        {
            Some(m) if !self.config.resume_grace.is_zero() => {
                tracing::info!(room = %room_name, peer = peer.short(), "peer away; may resume");
                m.conn = None;
                m.away_until = Some(until);
            }
            _ => self.remove_member(room_name, peer),
        }
    }

    fn remove_member(&mut self, room_name: &RoomName, peer: &PeerId) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        if room.members.remove(peer).is_none() {
            return;
        }
        tracing::info!(room = %room_name, peer = peer.short(), "peer left");
        self.vacate_seat(room_name, peer);
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        if let Some((board, _)) = room.stage.as_mut() {
            board.handle_leave(peer);
        }
        if let Some(cells) = room.cells.as_mut() {
            cells.handle_leave(peer);
            // The last member that links only in a full mesh gone, the room may split.
            cells.hold_one_cell(room.members.values().any(|m| m.mesh_only));
            if room.members.is_empty() {
                self.rooms.remove(room_name);
                return;
            }
            self.send_plans(room_name);
            return;
        }
        if let Some(tree) = room.tree.as_mut() {
            tree.standby.retain(|p| p != peer);
            let heir = if tree.root.as_ref() == Some(peer) {
                tree.root = None;
                // The first standby still connected takes over; the orphans' rejoin
                // requests wait for it.
                tree.standby
                    .iter()
                    .find(|p| room.members.get(*p).is_some_and(|m| m.conn.is_some()))
                    .cloned()
            } else {
                None
            };
            if room.members.is_empty() {
                self.rooms.remove(room_name);
            } else if let Some(heir) = heir {
                self.crown(room_name, &heir);
            }
            return;
        }
        let others: Vec<ConnId> = room.members.values().filter_map(|m| m.conn).collect();
        let overlay = room.topology.is_overlay();
        if room.members.is_empty() {
            self.rooms.remove(room_name);
        }
        if overlay {
            return;
        }
        for other in others {
            self.send(other, ServerToClient::PeerLeft { peer: peer.clone() });
        }
    }
}

/// Whether a join's root claim (`secret`) fits the room: only a tree has a root, and a
/// claim must present the secret of the first.
fn check_root_claim(
    room: &Room,
    room_name: &RoomName,
    secret: Option<&str>,
) -> Result<(), (ErrorCode, String)> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let Some(tree) = &room.tree else {
        return Err((
            ErrorCode::BadTopology,
            format!("room {room_name} is not a tree: it has no root to claim"),
        ));
    };
    match &tree.secret {
        Some(wanted) if !bool::from(wanted.as_bytes().ct_eq(secret.as_bytes())) => {
            tracing::warn!(room = %room_name, "root claim with a wrong secret refused");
            Err((
                ErrorCode::BadRootSecret,
                format!("wrong root secret for room {room_name}"),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
