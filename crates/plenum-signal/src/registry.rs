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

use plenum_proto::signal::{ClientToServer, ErrorCode, Limits, PeerSummary, ServerToClient};
use plenum_proto::{DisplayName, PROTOCOL_VERSION, PeerId, RoomName};
use subtle::ConstantTimeEq;

/// A connection's id, chosen by the I/O shell.
pub type ConnId = u64;

/// Limits the registry enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Largest frame accepted, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Sustained frames per second per connection (default 50; bursts of twice that pass).
    pub max_frames_per_sec: u32,
    /// Peers per room (default 256).
    pub max_peers_per_room: usize,
    /// Rooms per server (default 10,000).
    pub max_rooms: usize,
    /// Most peers listed in a `welcome` (default 64): a big room hands out a sample.
    pub roster_sample: usize,
    /// Time a connection has to send `join` (default 10 s).
    pub join_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_frames_per_sec: 50,
            max_peers_per_room: 256,
            max_rooms: 10_000,
            roster_sample: 64,
            join_timeout: Duration::from_secs(10),
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
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    name: DisplayName,
}

#[derive(Debug)]
struct Room {
    password: Option<String>,
    members: BTreeMap<PeerId, Member>,
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
    rng: u64,
    conns: HashMap<ConnId, Conn>,
    rooms: BTreeMap<RoomName, Room>,
    outputs: VecDeque<Output>,
    refused: u64,
}

impl Registry {
    /// An empty registry. `seed` drives the peer ids it assigns.
    pub fn new(config: RegistryConfig, now: Instant, seed: u64) -> Self {
        Self {
            config,
            now,
            rng: seed,
            conns: HashMap::new(),
            rooms: BTreeMap::new(),
            outputs: VecDeque::new(),
            refused: 0,
        }
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

    /// Consumes one input.
    pub fn handle_input(&mut self, input: Input) {
        match input {
            Input::Opened { conn, now } => {
                self.now = self.now.max(now);
                // A reused id ends whatever the old connection held.
                self.handle_input(Input::Closed { conn, now });
                let burst = f64::from(self.config.max_frames_per_sec) * 2.0;
                let bucket = Bucket {
                    tokens: burst,
                    last: now,
                    refusing: false,
                };
                self.conns.insert(
                    conn,
                    Conn {
                        opened: now,
                        bucket,
                        member: None,
                    },
                );
            }
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
                    self.remove_member(&room, &peer);
                }
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                let deadline = self.config.join_timeout;
                let late: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.member.is_none() && now >= c.opened + deadline)
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
            }
        }
    }

    /// Produces the next output; a drain always ends in [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        let next = self
            .conns
            .values()
            .filter(|c| c.member.is_none())
            .map(|c| c.opened + self.config.join_timeout)
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
            (
                ClientToServer::Join {
                    version,
                    room,
                    name,
                    password,
                    peer,
                },
                None,
            ) => {
                self.on_join(conn, version, room, name, password, peer);
            }
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
                }
                self.remove_member(&room, &peer);
                self.outputs.push_back(Output::Close { conn });
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
                    Some(target) => self.send(target, ServerToClient::Signal { from: me, payload }),
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

    fn on_join(
        &mut self,
        conn: ConnId,
        version: u32,
        room_name: RoomName,
        name: DisplayName,
        password: Option<String>,
        requested: Option<PeerId>,
    ) {
        if version != PROTOCOL_VERSION {
            let msg = format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            return self.refuse(conn, ErrorCode::UnsupportedVersion, msg, true);
        }
        let limits = self.limits();
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
                if room.members.len() >= self.config.max_peers_per_room {
                    let msg = format!(
                        "room {room_name} holds its maximum of {} peers",
                        self.config.max_peers_per_room
                    );
                    return self.refuse(conn, ErrorCode::RoomFull, msg, true);
                }
                if requested
                    .as_ref()
                    .is_some_and(|p| room.members.contains_key(p))
                {
                    return self.refuse(
                        conn,
                        ErrorCode::PeerIdTaken,
                        "that peer id is in use in this room".into(),
                        true,
                    );
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
                self.rooms.insert(
                    room_name.clone(),
                    Room {
                        password,
                        members: BTreeMap::new(),
                    },
                );
            }
        }
        let peer = match requested {
            Some(p) => p,
            None => self.fresh_id(&room_name),
        };
        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        let peers: Vec<PeerSummary> = room
            .members
            .iter()
            .take(self.config.roster_sample)
            .map(|(p, m)| PeerSummary {
                peer: p.clone(),
                name: m.name.clone(),
            })
            .collect();
        let peer_count = room.members.len();
        let others: Vec<ConnId> = room.members.values().map(|m| m.conn).collect();
        room.members.insert(
            peer.clone(),
            Member {
                conn,
                name: name.clone(),
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.member = Some((room_name.clone(), peer.clone()));
        }
        tracing::info!(room = %room_name, peer = peer.short(), "peer joined");
        self.send(
            conn,
            ServerToClient::Welcome {
                version: PROTOCOL_VERSION,
                room: room_name,
                peer: peer.clone(),
                peers,
                peer_count,
                limits,
            },
        );
        for other in others {
            self.send(
                other,
                ServerToClient::PeerJoined {
                    peer: peer.clone(),
                    name: name.clone(),
                },
            );
        }
    }

    fn fresh_id(&mut self, room: &RoomName) -> PeerId {
        loop {
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // 16 lowercase hex digits are always a valid peer id.
            let Ok(id) = PeerId::new(format!("{z:016x}")) else {
                continue;
            };
            if !self
                .rooms
                .get(room)
                .is_some_and(|r| r.members.contains_key(&id))
            {
                return id;
            }
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
        let others: Vec<ConnId> = room.members.values().map(|m| m.conn).collect();
        if room.members.is_empty() {
            self.rooms.remove(room_name);
        }
        for other in others {
            self.send(other, ServerToClient::PeerLeft { peer: peer.clone() });
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
