//! Rooms shared by several signaling servers over NATS, and signaling through NATS with no
//! server at all.
//!
//! Every room lives in exactly one registry, its *home*: the server that created its key
//! in the JetStream key-value bucket `plenum_rooms` (create-if-absent, so two servers can
//! never both create it). A client may connect to any server of the cluster; that server
//! sends the `hello`, reads the `join`, looks up the room's home and, when the home is
//! another server, forwards the connection's frames to it over NATS and its answers back.
//! So every rule of a room (its limit, its password, its host seat, its tree root) is
//! kept by one registry, as on a single server, and a room's signaling crosses one NATS
//! hop for the peers whose server is not its home.
//!
//! A server that dies takes its own clients' connections with it: the homes of its
//! forwarded clients see it gone (its ping subject has no responder) and count those
//! peers as away, so they resume their sessions through another server within the resume
//! grace. Rooms whose home it was are taken over by the next server a peer of theirs
//! joins through (compare-and-set on the key); their peers rejoin as after a server
//! restart, keeping their peer links.
//!
//! The subjects and payloads are in docs/protocol.md. NATS is the trust boundary: any
//! client of the NATS account can speak for a server, so run it with credentials.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use base64::Engine;
use futures_util::StreamExt;
use plenum_proto::PROTOCOL_VERSION;
use plenum_proto::RoomName;
use plenum_proto::signal::{ClientToServer, ServerToClient};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::hub::{Hub, OUTBOUND_QUEUE, Outbound};
use crate::registry::ConnId;

/// The key-value bucket that maps rooms to their home server.
pub const ROOMS_BUCKET: &str = "plenum_rooms";
/// How often a server checks that the servers it forwards to, or for, are there.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A ping not answered within this counts as missed.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// A server that missed this many pings in a row is gone (one whose subject has no
/// responder at all is gone at once).
const PINGS_MISSED: u32 = 3;
/// How often a home lookup retries when another server changed the key meanwhile.
const RESOLVE_ATTEMPTS: usize = 8;

/// Why a federation could not start.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The NATS server could not be reached.
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The NATS server has no JetStream (start it with `-js`), or refused the bucket.
    #[error("NATS at {url} has no usable JetStream (start nats-server with -js): {reason}")]
    NoJetStream {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// What one server tells the home of a forwarded connection (`plenum.srv.<home>.up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Up {
    /// A client connected and sent `join` for a room of the home; `hello` with
    /// `challenge` was sent to it.
    Open {
        /// The sending server.
        from: String,
        /// The connection, as the sender numbers it.
        conn: u64,
        /// The challenge its `join` signs.
        challenge: String,
    },
    /// A text frame of the client.
    Frame {
        /// The sending server.
        from: String,
        /// The connection.
        conn: u64,
        /// The frame, as the client sent it.
        text: String,
    },
    /// A frame the sender did not keep (too large, or binary).
    Refused {
        /// The sending server.
        from: String,
        /// The connection.
        conn: u64,
        /// Its length in bytes.
        len: usize,
        /// Whether it was binary.
        binary: bool,
    },
    /// The client's connection ended.
    Closed {
        /// The sending server.
        from: String,
        /// The connection.
        conn: u64,
    },
}

/// What a home tells the server of a forwarded connection (`plenum.srv.<server>.down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Down {
    /// A frame for the client.
    Frame {
        /// The home.
        from: String,
        /// The connection, as its server numbers it.
        conn: u64,
        /// The frame.
        text: String,
    },
    /// The home closed the connection.
    Close {
        /// The home.
        from: String,
        /// The connection.
        conn: u64,
    },
}

/// The subject a server reads `op` frames on.
fn subject(server: &str, op: &str) -> String {
    format!("plenum.srv.{server}.{op}")
}

/// Server ids are 16 lowercase hex digits: a subject token that cannot smuggle wildcards
/// or separators.
fn is_server_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key of a room in [`ROOMS_BUCKET`]: room names may hold bytes keys may not.
fn room_key(room: &RoomName) -> String {
    format!(
        "r.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(room.as_str())
    )
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Connection numbers and server ids only need to be unguessable to other clients of
    // the cluster; without OS randomness there is no safe way on.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    u64::from_le_bytes(bytes)
}

fn random_challenge() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A client connection accepted here whose room lives on another server.
#[derive(Debug)]
struct Front {
    home: String,
    outbound: mpsc::Sender<Outbound>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    url: String,
    client: async_nats::Client,
    kv: kv::Store,
    hub: Hub,
    /// Our clients whose rooms live elsewhere, by our connection number.
    fronts: Mutex<HashMap<u64, Front>>,
    /// Other servers' clients whose rooms live here: (their server, their number).
    backs: Mutex<HashMap<(String, u64), ConnId>>,
    /// Frames from NATS refused (malformed, unknown connection, wrong sender).
    refused: AtomicU64,
}

/// Aborts the federation's tasks when the last handle goes.
#[derive(Debug)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A signaling registry joined to the other servers on one NATS. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Federation {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl Federation {
    /// Connects to NATS at `url` (`nats://host:port`) and serves `hub`'s rooms to the
    /// cluster.
    pub async fn start(url: &str, hub: Hub) -> Result<Self, FederationError> {
        let client = async_nats::ConnectOptions::new()
            .name("plenum-signal")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| FederationError::Unreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let no_js = |e: &dyn std::fmt::Display| FederationError::NoJetStream {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        // The bucket's stream, made by hand: the client's own bucket creation reads an
        // account record that JetStream servers before 2.10 send without fields it
        // requires. Creating a stream that exists with this configuration succeeds.
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: format!("KV_{ROOMS_BUCKET}"),
                subjects: vec![format!("$KV.{ROOMS_BUCKET}.>")],
                max_messages_per_subject: 1,
                discard: async_nats::jetstream::stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| no_js(&e))?;
        let kv = jetstream
            .get_key_value(ROOMS_BUCKET)
            .await
            .map_err(|e| no_js(&e))?;
        let id = format!("{:016x}", random_u64());
        let subscribe = |op: &'static str| {
            let client = client.clone();
            let subject = subject(&id, op);
            async move { client.subscribe(subject).await }
        };
        let unreachable = |e: async_nats::SubscribeError| FederationError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let up = subscribe("up").await.map_err(unreachable)?;
        let down = subscribe("down").await.map_err(unreachable)?;
        let ping = subscribe("ping").await.map_err(unreachable)?;
        // The subscriptions must reach the server before anyone is told where we are.
        client
            .flush()
            .await
            .map_err(|e| FederationError::Unreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let inner = Arc::new(Inner {
            id,
            url: url.to_owned(),
            client,
            kv,
            hub,
            fronts: Mutex::new(HashMap::new()),
            backs: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        });
        let tasks = vec![
            tokio::spawn(read_up(inner.clone(), up)),
            tokio::spawn(read_down(inner.clone(), down)),
            tokio::spawn(answer_pings(inner.clone(), ping)),
            tokio::spawn(watch_servers(inner.clone())),
        ];
        tracing::info!(server = %inner.id, url, "signaling joined the NATS cluster");
        Ok(Self {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// This server's id in the cluster (its subjects are `plenum.srv.<id>.*`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The NATS URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The registry this server holds its rooms in.
    pub fn hub(&self) -> Hub {
        self.inner.hub.clone()
    }

    /// Frames from NATS refused so far: malformed, for a connection this server does not
    /// hold, or from a server that does not hold it.
    pub fn refused_frames(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Connections of other servers held in this server's registry, and connections of
    /// this server held in others'.
    pub fn forwarded(&self) -> (usize, usize) {
        (
            lock(&self.inner.backs).len(),
            lock(&self.inner.fronts).len(),
        )
    }

    /// A new client connection: sends its `hello` and routes it at its `join`.
    pub(crate) fn open(&self, outbound: mpsc::Sender<Outbound>) -> Option<Link> {
        let challenge = random_challenge();
        let hello = ServerToClient::Hello {
            version: PROTOCOL_VERSION,
            challenge: challenge.clone(),
        };
        outbound.try_send(Outbound::Text(hello.encode())).ok()?;
        Some(Link {
            inner: self.inner.clone(),
            id: random_u64(),
            route: Route::Pending {
                outbound,
                challenge,
            },
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these maps leaves it consistent (single inserts and
    // removals); carry on with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
enum Route {
    /// `hello` sent, no frame read yet.
    Pending {
        outbound: mpsc::Sender<Outbound>,
        challenge: String,
    },
    /// The room lives here.
    Local(ConnId),
    /// The room lives on another server, its home.
    Remote(String),
}

/// One client connection of a federated server, as its socket's task drives it.
#[derive(Debug)]
pub(crate) struct Link {
    inner: Arc<Inner>,
    id: u64,
    route: Route,
}

impl Link {
    /// A text frame from the client. False when the connection should end.
    pub(crate) async fn frame(&mut self, text: String) -> bool {
        if matches!(self.route, Route::Pending { .. }) {
            let home = match ClientToServer::decode(&text) {
                Ok(ClientToServer::Join { room, .. }) => self.inner.resolve(&room).await,
                // Anything else is refused by a registry; ours will do.
                _ => self.inner.id.clone(),
            };
            if !self.route_to(home).await {
                return false;
            }
        }
        match &self.route {
            Route::Pending { .. } => false,
            Route::Local(conn) => self.inner.hub.frame(*conn, text).await,
            Route::Remote(home) => {
                let up = Up::Frame {
                    from: self.inner.id.clone(),
                    conn: self.id,
                    text,
                };
                self.inner.publish(home, "up", &up).await
            }
        }
    }

    /// A frame this server did not keep.
    pub(crate) async fn refused(&mut self, len: usize, binary: bool) -> bool {
        if matches!(self.route, Route::Pending { .. })
            && !self.route_to(self.inner.id.clone()).await
        {
            return false;
        }
        match &self.route {
            Route::Pending { .. } => false,
            Route::Local(conn) => self.inner.hub.refused(*conn, len, binary).await,
            Route::Remote(home) => {
                let up = Up::Refused {
                    from: self.inner.id.clone(),
                    conn: self.id,
                    len,
                    binary,
                };
                self.inner.publish(home, "up", &up).await
            }
        }
    }

    /// The client's connection ended.
    pub(crate) async fn closed(self) {
        match self.route {
            Route::Pending { .. } => {}
            Route::Local(conn) => self.inner.hub.closed(conn).await,
            Route::Remote(home) => {
                lock(&self.inner.fronts).remove(&self.id);
                let up = Up::Closed {
                    from: self.inner.id.clone(),
                    conn: self.id,
                };
                self.inner.publish(&home, "up", &up).await;
            }
        }
    }

    async fn route_to(&mut self, home: String) -> bool {
        let Route::Pending {
            outbound,
            challenge,
        } = std::mem::replace(&mut self.route, Route::Local(0))
        else {
            return true;
        };
        if home == self.inner.id {
            match self.inner.hub.open_with(outbound, Some(challenge)).await {
                Some(conn) => {
                    self.route = Route::Local(conn);
                    true
                }
                None => false,
            }
        } else {
            // The only sender of the client's outbound queue now sits in `fronts`: when
            // the home goes, removing it ends the client's connection.
            lock(&self.inner.fronts).insert(
                self.id,
                Front {
                    home: home.clone(),
                    outbound,
                },
            );
            let open = Up::Open {
                from: self.inner.id.clone(),
                conn: self.id,
                challenge,
            };
            let sent = self.inner.publish(&home, "up", &open).await;
            tracing::debug!(conn = self.id, %home, "connection forwarded to its room's home");
            self.route = Route::Remote(home);
            sent
        }
    }
}

impl Inner {
    async fn publish<T: Serialize>(&self, server: &str, op: &str, msg: &T) -> bool {
        let payload = match serde_json::to_vec(msg) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a federation frame");
                return false;
            }
        };
        match self
            .client
            .publish(subject(server, op), payload.into())
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "NATS publish failed");
                false
            }
        }
    }

    /// The server that holds `room`: the one its key names while that one answers,
    /// else this one (created, or taken over by compare-and-set).
    async fn resolve(&self, room: &RoomName) -> String {
        let key = room_key(room);
        for _ in 0..RESOLVE_ATTEMPTS {
            let entry = match self.kv.entry(key.as_str()).await {
                Ok(entry) => entry.filter(|e| e.operation == kv::Operation::Put),
                Err(e) => {
                    tracing::warn!(error = %e, %room, "room directory unreachable; holding the room here");
                    return self.id.clone();
                }
            };
            let Some(entry) = entry else {
                match self.kv.create(key.as_str(), self.id.clone().into()).await {
                    Ok(_) => {
                        tracing::info!(%room, "room created here");
                        return self.id.clone();
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, %room, "cannot record the room; holding it here");
                        return self.id.clone();
                    }
                }
            };
            let home = String::from_utf8_lossy(&entry.value).into_owned();
            if home == self.id || (is_server_id(&home) && self.answers(&home).await) {
                return home;
            }
            match self
                .kv
                .update(key.as_str(), self.id.clone().into(), entry.revision)
                .await
            {
                Ok(_) => {
                    tracing::info!(%room, gone = %home, "room taken over from a server that is gone");
                    return self.id.clone();
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => {
                    tracing::warn!(error = %e, %room, "cannot take the room over; holding it here");
                    return self.id.clone();
                }
            }
        }
        tracing::warn!(%room, "room's home kept changing; holding it here");
        self.id.clone()
    }

    /// Whether `server` is there. Only "no responders" (nobody reads its subject) says
    /// it is not: a slow server is still the home of its rooms.
    async fn answers(&self, server: &str) -> bool {
        !matches!(self.ping(server).await, Ping::Gone)
    }

    async fn ping(&self, server: &str) -> Ping {
        let request = self
            .client
            .request(subject(server, "ping"), Vec::new().into());
        match tokio::time::timeout(PING_TIMEOUT, request).await {
            Ok(Ok(_)) => Ping::Answered,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ping::Gone,
            Ok(Err(_)) | Err(_) => Ping::Missed,
        }
    }

    fn refuse(&self, why: &str, from: &str, conn: u64) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(from, conn, "refused a federation frame: {why}");
    }

    /// A server that is gone: our clients it held lose their connection (they reconnect,
    /// and their rooms move), and its clients we held are away (they resume elsewhere).
    async fn forget_server(&self, server: &str) {
        let fronts = lock(&self.fronts)
            .extract_if(|_, f| f.home == server)
            .count();
        let backs: Vec<ConnId> = lock(&self.backs)
            .extract_if(|(from, _), _| from == server)
            .map(|(_, conn)| conn)
            .collect();
        tracing::warn!(
            server,
            clients_moved = fronts,
            peers_away = backs.len(),
            "a signaling server of the cluster is gone"
        );
        for conn in backs {
            self.hub.closed(conn).await;
        }
    }
}

enum Ping {
    Answered,
    Missed,
    Gone,
}

/// A federation frame from NATS, or `None` (refused and counted) when it is not one.
fn decode<T: serde::de::DeserializeOwned>(inner: &Inner, payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload)
        .map_err(|e| inner.refuse(&format!("malformed: {e}"), "?", 0))
        .ok()
}

/// Frames other servers forward to rooms that live here.
async fn read_up(inner: Arc<Inner>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(up) = decode::<Up>(&inner, &msg.payload) else {
            continue;
        };
        let (from, conn) = match &up {
            Up::Open { from, conn, .. }
            | Up::Frame { from, conn, .. }
            | Up::Refused { from, conn, .. }
            | Up::Closed { from, conn } => (from.clone(), *conn),
        };
        if !is_server_id(&from) || from == inner.id {
            inner.refuse("not a server id of the cluster", &from, conn);
            continue;
        }
        let key = (from.clone(), conn);
        let held = lock(&inner.backs).get(&key).copied();
        match (up, held) {
            (Up::Open { challenge, .. }, None) => {
                let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
                let Some(local) = inner.hub.open_with(tx, Some(challenge)).await else {
                    return;
                };
                lock(&inner.backs).insert(key, local);
                tokio::spawn(send_down(inner.clone(), from, conn, rx));
            }
            (Up::Open { .. }, Some(_)) => inner.refuse("opens a connection twice", &from, conn),
            (Up::Frame { text, .. }, Some(local)) => {
                inner.hub.frame(local, text).await;
            }
            (Up::Refused { len, binary, .. }, Some(local)) => {
                inner.hub.refused(local, len, binary).await;
            }
            (Up::Closed { .. }, Some(local)) => {
                lock(&inner.backs).remove(&key);
                inner.hub.closed(local).await;
            }
            // Closed after we dropped it (its server went, or we closed it): nothing left.
            (Up::Closed { .. }, None) => {}
            (Up::Frame { .. } | Up::Refused { .. }, None) => {
                inner.refuse("for a connection this server does not hold", &from, conn);
            }
        }
    }
}

/// The registry's frames for a connection another server forwarded here.
async fn send_down(inner: Arc<Inner>, server: String, conn: u64, mut rx: mpsc::Receiver<Outbound>) {
    while let Some(out) = rx.recv().await {
        let down = match out {
            Outbound::Text(text) => Down::Frame {
                from: inner.id.clone(),
                conn,
                text,
            },
            Outbound::Close => break,
        };
        inner.publish(&server, "down", &down).await;
    }
    let close = Down::Close {
        from: inner.id.clone(),
        conn,
    };
    inner.publish(&server, "down", &close).await;
    // The registry let it go: a late frame for it is refused, not reopened.
    lock(&inner.backs).remove(&(server, conn));
}

/// Homes' frames for our clients.
async fn read_down(inner: Arc<Inner>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(down) = decode::<Down>(&inner, &msg.payload) else {
            continue;
        };
        let (from, conn) = match &down {
            Down::Frame { from, conn, .. } | Down::Close { from, conn } => (from.clone(), *conn),
        };
        let lagging = {
            let mut fronts = lock(&inner.fronts);
            match fronts.get(&conn) {
                None => Err("for a client this server does not hold"),
                Some(front) if front.home != from => {
                    Err("from a server that is not the client's home")
                }
                Some(front) => match down {
                    Down::Frame { text, .. } => {
                        let lagging = front.outbound.try_send(Outbound::Text(text)).is_err();
                        if lagging {
                            fronts.remove(&conn);
                        }
                        Ok(lagging)
                    }
                    Down::Close { .. } => {
                        if let Some(front) = fronts.remove(&conn) {
                            let _ = front.outbound.try_send(Outbound::Close);
                        }
                        Ok(false)
                    }
                },
            }
        };
        match lagging {
            Err(why) => inner.refuse(why, &from, conn),
            Ok(false) => {}
            Ok(true) => {
                // A client this far behind is gone or hostile: end it, as the hub does.
                tracing::warn!(conn, "signaling client not reading; closing it");
                let up = Up::Closed {
                    from: inner.id.clone(),
                    conn,
                };
                inner.publish(&from, "up", &up).await;
            }
        }
    }
}

async fn answer_pings(inner: Arc<Inner>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        if let Some(reply) = msg.reply {
            let _ = inner.client.publish(reply, Vec::new().into()).await;
        }
    }
}

/// Pings every server we forward to or for; forgets the ones that are gone.
async fn watch_servers(inner: Arc<Inner>) {
    let mut missed: HashMap<String, u32> = HashMap::new();
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let servers: HashSet<String> = {
            let fronts = lock(&inner.fronts);
            let backs = lock(&inner.backs);
            fronts
                .values()
                .map(|f| f.home.clone())
                .chain(backs.keys().map(|(from, _)| from.clone()))
                .collect()
        };
        missed.retain(|s, _| servers.contains(s));
        for server in servers {
            let gone = match inner.ping(&server).await {
                Ping::Answered => {
                    missed.remove(&server);
                    false
                }
                Ping::Gone => true,
                Ping::Missed => {
                    let n = missed.entry(server.clone()).or_default();
                    *n += 1;
                    *n >= PINGS_MISSED
                }
            };
            if gone {
                missed.remove(&server);
                inner.forget_server(&server).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_unknown_fields() {
        let up = Up::Open {
            from: "0123456789abcdef".into(),
            conn: 7,
            challenge: "c".into(),
        };
        let text = serde_json::to_string(&up).unwrap();
        assert_eq!(serde_json::from_str::<Up>(&text).unwrap(), up);
        assert!(serde_json::from_str::<Up>(r#"{"op":"frame","from":"x","conn":1}"#).is_err());
        assert!(
            serde_json::from_str::<Down>(r#"{"op":"close","from":"x","conn":1,"extra":1}"#)
                .is_err()
        );
    }

    #[test]
    fn server_ids_are_plain_subject_tokens() {
        assert!(is_server_id("0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdeF",
            "0123456789abcd.>",
            "*",
        ] {
            assert!(!is_server_id(bad), "{bad}");
        }
        let room = RoomName::new("a.b c>*").unwrap();
        let key = room_key(&room);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=/".contains(&b))
        );
    }
}
