//! Room configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plenum_media::ProcessingConfig;
use plenum_overlay::FullMeshConfig;
use plenum_proto::identity::Identity;
use plenum_proto::{DisplayName, NameError, PeerId, RoomName};
use plenum_signal::{NatsDriver, SignalDriver, SignalError, WsDriver};

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, ...
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    pub username: String,
    /// TURN credential (empty for STUN).
    pub credential: String,
}

/// Which ICE candidates a link may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IceTransport {
    /// Host, server-reflexive and relayed candidates: the most direct path wins.
    #[default]
    All,
    /// Only relayed (TURN) candidates: the far side never learns our addresses.
    Relay,
}

/// Why a [`RoomConfig`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A room or display name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The signaling URL is unusable.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// No signaling driver or URL was given.
    #[error("no signaling server: set a URL or a driver")]
    NoSignaling,
    /// The topology settings are inconsistent.
    #[error(transparent)]
    Topology(#[from] plenum_overlay::ConfigError),
    /// An ICE server URL is not a stun:, stuns:, turn: or turns: URL.
    #[error("ICE server URL {0:?} is not a stun: or turn: URL")]
    IceUrl(String),
    /// No local address to gather candidates on.
    #[error("no local UDP address to bind")]
    NoBind,
}

/// Everything [`Room::join`](crate::Room::join) needs. Build with [`RoomConfig::builder`].
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub(crate) signal: Arc<dyn SignalDriver>,
    pub(crate) room: RoomName,
    pub(crate) name: DisplayName,
    pub(crate) password: Option<String>,
    pub(crate) identity: Identity,
    pub(crate) token: Option<String>,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) ice_transport: IceTransport,
    pub(crate) udp_bind: Vec<SocketAddr>,
    pub(crate) mesh: FullMeshConfig,
    pub(crate) topology: plenum_proto::overlay::TopologySpec,
    pub(crate) root_secret: Option<String>,
    pub(crate) init_data: Option<serde_json::Value>,
    pub(crate) join_timeout: Duration,
    pub(crate) queue_per_peer: usize,
    pub(crate) audio_loss_percent: u8,
    pub(crate) video_bitrate_kbps: Option<u32>,
    pub(crate) audio_bitrate_kbps: Option<u32>,
    pub(crate) publish_without_grant: bool,
    pub(crate) voice_processing: ProcessingConfig,
    pub(crate) role: plenum_proto::signal::Role,
    pub(crate) credentials: Option<serde_json::Value>,
    pub(crate) verify: Option<Verify>,
    pub(crate) queue_size: usize,
    /// Channels whose messages are lossy events (see [`RoomConfigBuilder::lossy_channel`]).
    pub(crate) lossy_channels: std::collections::BTreeSet<plenum_proto::ChannelName>,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_attempts: u32,
}

/// What a verify hook returns: whether the peer is let in.
pub type VerifyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// The room's check of the credentials a peer presents with its offer or answer
/// ([`RoomConfigBuilder::verify`]). A peer refused gets `not_verified` and no link.
#[derive(Clone)]
pub struct Verify(Arc<dyn Fn(PeerId, serde_json::Value) -> VerifyFuture + Send + Sync>);

impl Verify {
    /// A hook from an async function of the peer and its credentials (`Value::Null` when it
    /// presented none).
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(PeerId, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        Self(Arc::new(move |peer, credentials| {
            Box::pin(f(peer, credentials))
        }))
    }

    /// Lets in only peers presenting exactly `expected`.
    pub fn exactly(expected: serde_json::Value) -> Self {
        Self::new(move |_, got| {
            let ok = got == expected;
            async move { ok }
        })
    }

    pub(crate) fn check(&self, peer: PeerId, credentials: serde_json::Value) -> VerifyFuture {
        (self.0)(peer, credentials)
    }
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verify(..)")
    }
}

impl RoomConfig {
    /// A builder for room `room`, shown to others as `name`.
    pub fn builder(room: &str, name: &str) -> RoomConfigBuilder {
        RoomConfigBuilder {
            room: room.to_owned(),
            name: name.to_owned(),
            url: None,
            driver: None,
            password: None,
            identity: None,
            token: None,
            ice_servers: Vec::new(),
            ice_transport: IceTransport::All,
            udp_bind: vec![
                SocketAddr::from(([127, 0, 0, 1], 0)),
                SocketAddr::from(([0, 0, 0, 0], 0)),
            ],
            mesh: FullMeshConfig::builder(),
            topology: plenum_proto::overlay::TopologySpec::Mesh,
            root_secret: None,
            init_data: None,
            join_timeout: Duration::from_secs(10),
            queue_per_peer: 256,
            audio_loss_percent: 0,
            video_bitrate_kbps: None,
            audio_bitrate_kbps: None,
            voice_processing: ProcessingConfig::default(),
            publish_without_grant: false,
            role: plenum_proto::signal::Role::Both,
            credentials: None,
            verify: None,
            queue_size: 10,
            lossy_channels: Default::default(),
            ping_interval: Duration::from_secs(30),
            ping_attempts: 10,
        }
    }

    /// The room's name.
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// The identity the room is joined with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// Builder of [`RoomConfig`]; [`build`](Self::build) validates everything once.
#[derive(Debug)]
pub struct RoomConfigBuilder {
    room: String,
    name: String,
    url: Option<String>,
    driver: Option<Arc<dyn SignalDriver>>,
    password: Option<String>,
    identity: Option<Identity>,
    token: Option<String>,
    ice_servers: Vec<IceServer>,
    ice_transport: IceTransport,
    udp_bind: Vec<SocketAddr>,
    mesh: plenum_overlay::FullMeshConfigBuilder,
    topology: plenum_proto::overlay::TopologySpec,
    root_secret: Option<String>,
    init_data: Option<serde_json::Value>,
    role: plenum_proto::signal::Role,
    credentials: Option<serde_json::Value>,
    verify: Option<Verify>,
    queue_size: usize,
    lossy_channels: Vec<String>,
    ping_interval: Duration,
    ping_attempts: u32,
    join_timeout: Duration,
    queue_per_peer: usize,
    audio_loss_percent: u8,
    video_bitrate_kbps: Option<u32>,
    audio_bitrate_kbps: Option<u32>,
    voice_processing: ProcessingConfig,
    publish_without_grant: bool,
}

impl RoomConfigBuilder {
    /// Signal through `plenum serve` at `url` (`ws://host:port`; several, comma-separated,
    /// are tried in turn), or through a NATS server with no Plenum server
    /// (`nats://host:port`).
    pub fn server(mut self, url: &str) -> Self {
        self.url = Some(url.to_owned());
        self
    }
    /// Signal through any driver (the in-memory one in tests).
    pub fn driver(mut self, driver: Arc<dyn SignalDriver>) -> Self {
        self.driver = Some(driver);
        self
    }
    /// The room's password (the first joiner sets it).
    pub fn password(mut self, password: Option<String>) -> Self {
        self.password = password;
        self
    }
    /// Join with this key pair (the peer id derives from it); a fresh one if not set.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }
    /// A room token for servers that require one (`plenum token`).
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
    /// Which candidates links may use (default all; `Relay` forces TURN).
    pub fn ice_transport(mut self, transport: IceTransport) -> Self {
        self.ice_transport = transport;
        self
    }
    /// STUN/TURN servers.
    pub fn ice_servers(mut self, servers: Vec<IceServer>) -> Self {
        self.ice_servers = servers;
        self
    }
    /// Local UDP addresses to gather candidates on (default `127.0.0.1:0` and
    /// `0.0.0.0:0`: a wildcard alone skips loopback).
    pub fn udp_bind(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.udp_bind = addrs;
        self
    }
    /// Link timing: connect timeout, heartbeats, retries.
    pub fn mesh(
        mut self,
        f: impl FnOnce(plenum_overlay::FullMeshConfigBuilder) -> plenum_overlay::FullMeshConfigBuilder,
    ) -> Self {
        self.mesh = f(self.mesh);
        self
    }
    /// The overlay to create the room with (default: a full mesh). A room that exists
    /// keeps its own; the welcome says which.
    pub fn topology(mut self, topology: plenum_proto::overlay::TopologySpec) -> Self {
        self.topology = topology;
        self
    }
    /// In a tree room, claims the root with `secret` (the first claim sets the room's
    /// secret; while a root is there, a claim with the same secret makes a standby that
    /// takes over when the root goes).
    pub fn root_secret(mut self, secret: Option<String>) -> Self {
        self.root_secret = secret;
        self
    }
    /// What we do in the room (default `Both`): a `Viewer` links to publishers only.
    pub fn role(mut self, role: plenum_proto::signal::Role) -> Self {
        self.role = role;
        self
    }
    /// What we present with our offers and answers, for the other side's verify hook.
    pub fn credentials(mut self, credentials: Option<serde_json::Value>) -> Self {
        self.credentials = credentials;
        self
    }
    /// Checks the credentials of every peer we link to, before the link is made; a peer
    /// refused gets `not_verified`, no link, and the refusal is logged.
    pub fn verify(mut self, verify: Option<Verify>) -> Self {
        self.verify = verify;
        self
    }
    /// Messages sent to everyone while nobody else is in the room are kept (at most `n`,
    /// default 10; beyond, the oldest is dropped and reported) and sent to the first peer
    /// whose link opens.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.queue_size = n;
        self
    }
    /// Messages received on `channel` are worth nothing late (cursor positions, say): while
    /// the application has events waiting unread they are dropped and counted
    /// ([`crate::RoomEvents::lossy_dropped`]) instead of taking a place in the bounded
    /// event queue. Other channels' messages are never dropped that way before the queue's
    /// bound.
    pub fn lossy_channel(mut self, channel: &str) -> Self {
        self.lossy_channels.push(channel.to_owned());
        self
    }
    /// A viewer whose publishers are all gone (it had one, and no link to any is open)
    /// tries to link them again every `interval` (default 30 s), `attempts` times (default
    /// 10), then says so (`RoomError::PublishersGone`); the links' own backoff goes on
    /// trying, and a publisher that returns is linked.
    pub fn reconnect_pings(mut self, interval: Duration, attempts: u32) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(100));
        self.ping_attempts = attempts;
        self
    }
    /// In a host room, data every peer receives with our arrival (peers that join later
    /// too): `RoomEvent::InitData`.
    pub fn init_data(mut self, data: Option<serde_json::Value>) -> Self {
        self.init_data = data;
        self
    }
    /// How long to wait for the server's welcome (default 10 s).
    pub fn join_timeout(mut self, d: Duration) -> Self {
        self.join_timeout = d;
        self
    }
    /// Drops this share (0..=100 %) of the audio packets that arrive, at random, before the
    /// jitter buffer: a diagnostic for hearing how FEC and concealment cope with a lossy
    /// network where the network itself cannot be made lossy. Off (0) by default.
    pub fn simulate_audio_loss(mut self, percent: u8) -> Self {
        self.audio_loss_percent = percent.min(100);
        self
    }

    /// Echo cancellation and noise suppression for microphones (default: both on). Synthetic
    /// sources are never processed.
    pub fn voice_processing(mut self, config: ProcessingConfig) -> Self {
        self.voice_processing = config;
        self
    }

    /// The video bitrate in kbit/s (30..=20,000), whatever the picture size; by default it
    /// follows the size: about 0.1 bit per pixel per frame, 1.5 times that for screens.
    pub fn video_bitrate(mut self, kbps: Option<u32>) -> Self {
        self.video_bitrate_kbps = kbps.map(|k| k.clamp(30, 20_000));
        self
    }

    /// The audio (Opus) bitrate in kbit/s (6..=510; default 32).
    pub fn audio_bitrate(mut self, kbps: Option<u32>) -> Self {
        self.audio_bitrate_kbps = kbps.map(|k| k.clamp(6, 510));
        self
    }

    /// Messages held per peer while its link is not open (default 256; oldest dropped).
    pub fn queue_per_peer(mut self, n: usize) -> Self {
        self.queue_per_peer = n.max(1);
        self
    }
    /// Publishes even when our token does not grant it, as a modified client could: for
    /// tests of the other peers' enforcement only.
    #[doc(hidden)]
    pub fn publish_without_grant(mut self, on: bool) -> Self {
        self.publish_without_grant = on;
        self
    }
    /// Validates and builds.
    pub fn build(self) -> Result<RoomConfig, ConfigError> {
        let signal: Arc<dyn SignalDriver> = match (self.driver, self.url) {
            (Some(d), _) => d,
            (None, Some(url)) if url.starts_with("nats://") => Arc::new(NatsDriver::new(url)?),
            (None, Some(url)) => Arc::new(WsDriver::new(url)?),
            (None, None) => return Err(ConfigError::NoSignaling),
        };
        for url in self.ice_servers.iter().flat_map(|s| &s.urls) {
            let ok = ["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                return Err(ConfigError::IceUrl(url.clone()));
            }
        }
        if self.udp_bind.is_empty() {
            return Err(ConfigError::NoBind);
        }
        plenum_overlay::CellDirectoryConfig::from_spec(&self.topology)?;
        plenum_overlay::TreeConfig::from_spec(&self.topology)?;
        Ok(RoomConfig {
            signal,
            room: RoomName::new(self.room)?,
            name: DisplayName::new(self.name)?,
            password: self.password,
            identity: self.identity.unwrap_or_else(Identity::generate),
            token: self.token,
            ice_servers: self.ice_servers,
            ice_transport: self.ice_transport,
            udp_bind: self.udp_bind,
            mesh: self.mesh.build()?,
            topology: self.topology,
            root_secret: self.root_secret,
            init_data: self.init_data,
            role: self.role,
            credentials: self.credentials,
            verify: self.verify,
            queue_size: self.queue_size,
            lossy_channels: self
                .lossy_channels
                .into_iter()
                .map(plenum_proto::ChannelName::new)
                .collect::<Result<_, _>>()?,
            ping_interval: self.ping_interval,
            ping_attempts: self.ping_attempts,
            join_timeout: self.join_timeout,
            queue_per_peer: self.queue_per_peer,
            audio_loss_percent: self.audio_loss_percent,
            video_bitrate_kbps: self.video_bitrate_kbps,
            audio_bitrate_kbps: self.audio_bitrate_kbps,
            publish_without_grant: self.publish_without_grant,
            voice_processing: self.voice_processing,
        })
    }
}
