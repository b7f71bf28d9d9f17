//! The relay network's words: ids, configuration, the messages between neighbours and
//! what a node asks of its driver.

use std::time::{Duration, Instant};

use plenum_proto::PeerId;

use crate::{ConfigError, FullMeshConfig};

/// A peer's 160-bit id in the relay network: its peer id's 40 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayId(pub [u8; 20]);

impl RelayId {
    /// The id of a peer whose id is 40 hex digits.
    pub fn of(peer: &PeerId) -> Option<Self> {
        let s = peer.as_str().as_bytes();
        if s.len() != 40 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *o = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Self(out))
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Self) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.0[i] ^ other.0[i];
        }
        d
    }

    /// The bucket `other` falls in, seen from us: the index of the first bit where the ids
    /// differ (0: the farthest half of the id space; 159: our sibling). `None` for us.
    pub fn bucket(&self, other: &Self) -> Option<usize> {
        let d = self.distance(other);
        let byte = d.iter().position(|b| *b != 0)?;
        Some(byte * 8 + d[byte].leading_zeros() as usize)
    }
}

/// Settings of a [`RelayNode`](super::RelayNode); build with [`RelayConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    pub(super) max_neighbours: usize,
    pub(super) hop_limit: u8,
    pub(super) known_per_bucket: usize,
    pub(super) ack_timeout: Duration,
    pub(super) attempts: u8,
    pub(super) refresh: Duration,
    pub(super) links: FullMeshConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_neighbours: 20,
            hop_limit: 32,
            known_per_bucket: 8,
            refresh: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(2),
            attempts: 3,
            links: FullMeshConfig::default(),
        }
    }
}

/// Builder of [`RelayConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct RelayConfigBuilder(RelayConfig);

impl RelayConfigBuilder {
    /// Most direct neighbours (default 20).
    pub fn max_neighbours(mut self, n: usize) -> Self {
        self.0.max_neighbours = n;
        self
    }
    /// Most hops a frame makes, forward and back (default 32).
    pub fn hop_limit(mut self, n: u8) -> Self {
        self.0.hop_limit = n;
        self
    }
    /// Peers remembered per bucket (default 8).
    pub fn known_per_bucket(mut self, n: usize) -> Self {
        self.0.known_per_bucket = n;
        self
    }
    /// How long a unicast waits for its acknowledgement before it is sent again (2 s), and
    /// how many times it is sent in all before the target is called unreachable (3).
    pub fn retry(mut self, ack_timeout: Duration, attempts: u8) -> Self {
        self.0.ack_timeout = ack_timeout;
        self.0.attempts = attempts;
        self
    }
    /// How often missing neighbours are looked for (default 5 s).
    pub fn refresh(mut self, d: Duration) -> Self {
        self.0.refresh = d;
        self
    }
    /// How links are opened, probed and retried.
    pub fn links(mut self, links: FullMeshConfig) -> Self {
        self.0.links = links;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<RelayConfig, ConfigError> {
        if !(1..=1000).contains(&self.0.max_neighbours) {
            return Err(ConfigError::Inconsistent(
                "max_neighbours must be between 1 and 1000",
            ));
        }
        if self.0.hop_limit < 2 {
            return Err(ConfigError::Inconsistent("hop_limit must be at least 2"));
        }
        if self.0.known_per_bucket == 0 {
            return Err(ConfigError::Inconsistent(
                "known_per_bucket must be at least 1",
            ));
        }
        crate::nonzero("refresh", self.0.refresh)?;
        crate::nonzero("ack_timeout", self.0.ack_timeout)?;
        if !(1..=7).contains(&self.0.attempts) {
            return Err(ConfigError::Inconsistent(
                "attempts must be between 1 and 7",
            ));
        }
        Ok(self.0)
    }
}

impl RelayConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RelayConfigBuilder {
        RelayConfigBuilder(Self::default())
    }

    /// Most direct neighbours.
    pub fn max_neighbours(&self) -> usize {
        self.max_neighbours
    }

    /// The same settings with links opened, probed and retried as `links` says.
    pub fn with_links(mut self, links: FullMeshConfig) -> Self {
        self.links = links;
        self
    }

    /// The relay network a room's topology asks for (`None` for other topologies), with
    /// the defaults for what the room does not say.
    pub fn from_spec(
        spec: &plenum_proto::overlay::TopologySpec,
    ) -> Result<Option<Self>, ConfigError> {
        match spec {
            plenum_proto::overlay::TopologySpec::Relay { max_neighbours } => Self::builder()
                .max_neighbours(usize::from(*max_neighbours))
                .build()
                .map(Some),
            _ => Ok(None),
        }
    }
}

/// What a routed frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// The application's bytes.
    Data,
    /// Negotiation for a direct link (the engine's signaling payload).
    Signal,
    /// The sender asks for a direct link; `data` is its neighbour count (one byte), 0 to
    /// be taken even by a full peer. A link its application asked for is `[0, links]`.
    Link,
    /// The origin's frame was not reached its target: `data` is its seq (8 bytes), the
    /// target's id and the frame's kind (one byte).
    Unreachable,
    /// A full peer refuses a link: `data` lists its neighbours nearest to the asker.
    Refuse,
    /// The target got the origin's data, signal or link frame `data` (8 bytes, its seq).
    /// For a link the origin's application asked for, a list may follow: the origin's
    /// neighbour to let go once the link is up, and whom that one links to instead.
    Ack,
}

/// A frame on its way through the relay network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFrame {
    /// What it carries.
    pub kind: RouteKind,
    /// The peer that sent it.
    pub origin: PeerId,
    /// The peer it is for.
    pub target: PeerId,
    /// The origin's number for it.
    pub seq: u64,
    /// Links crossed so far, forward and back.
    pub hops: u8,
    /// Going back one step (the sender found nothing left to try).
    pub back: bool,
    /// Which sending of the origin's frame this is (0 the first; a unicast not
    /// acknowledged in time is sent again).
    pub attempt: u8,
    /// Peers it has visited, the origin first.
    pub visited: Vec<PeerId>,
    /// The path from the origin to where it is, for going back.
    pub path: Vec<PeerId>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What relay nodes tell each other over a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMsg {
    /// The sender's neighbours (when a link opens, and when they change).
    Neighbours(Vec<PeerId>),
    /// Link to this peer in the sender's place: the sender took it while full, and lets
    /// the receiver go.
    Splice(PeerId),
    /// A routed frame.
    Route(RouteFrame),
}

/// What a [`RelayNode`] asks of the engine, or tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutput {
    /// Open a link to `peer`; with `initiate`, send the offer.
    Connect {
        /// The peer.
        peer: PeerId,
        /// Whether this side offers.
        initiate: bool,
    },
    /// Close the link to `peer`.
    Disconnect {
        /// The peer.
        peer: PeerId,
    },
    /// Send a liveness probe over the link to `peer`.
    Heartbeat {
        /// The peer.
        peer: PeerId,
    },
    /// Send `msg` over the open link to `peer`.
    Send {
        /// The peer.
        peer: PeerId,
        /// The message.
        msg: RelayMsg,
    },
    /// Send a link request to `peer` through the signaling server (we have no link to
    /// route it over). The server says who sent it; the receiver feeds it to
    /// [`RelayNode::link_requested`].
    SignalLink {
        /// The peer asked.
        peer: PeerId,
        /// Our open links: a peer with none is taken even by a full one.
        degree: u8,
    },
    /// A frame for us arrived: the application's bytes.
    Deliver {
        /// The peer that sent it.
        origin: PeerId,
        /// Links it crossed.
        hops: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Negotiation for a direct link, relayed over the network.
    Signal {
        /// The peer that sent it.
        origin: PeerId,
        /// The engine's payload.
        data: Vec<u8>,
    },
    /// A direct link the application asked for ([`RelayNode::connect`]) did not open in
    /// [`CONNECT_ATTEMPTS`] attempts.
    LinkFailed {
        /// The peer.
        peer: PeerId,
    },
    /// A frame we sent did not reach its target.
    Unreachable {
        /// The target.
        target: PeerId,
        /// The number [`RelayNode::send`] gave it.
        seq: u64,
    },
    /// Our neighbours changed.
    Neighbours(Vec<PeerId>),
    /// A frame was dropped: forged, looping or for nobody (for the log).
    Dropped {
        /// The neighbour it came from.
        from: PeerId,
        /// Why.
        reason: &'static str,
    },
    /// Nothing more until this instant.
    Timeout(Instant),
}

/// Why [`RelayNode::send`] sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelaySendError {
    /// The target is not a relay id (40 hex digits).
    #[error("{0} is not a relay id (40 hex digits)")]
    BadTarget(PeerId),
    /// The target is us.
    #[error("a frame to ourselves")]
    ToSelf,
    /// The room is not a relay network.
    #[error("the room is not a relay network")]
    NotARelay,
    /// The room is closed.
    #[error("the room is closed")]
    Closed,
}
