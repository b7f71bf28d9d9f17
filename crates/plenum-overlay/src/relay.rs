//! The relay network (after peer-relay): every peer has a 160-bit id and a few direct
//! neighbours, and a message for a peer that is not a neighbour is relayed hop by hop.
//!
//! A [`RelayNode`] decides; the engine carries its messages. It is told link events and
//! time as every topology is ([`Input`]), messages from neighbours with
//! [`RelayNode::handle_msg`], and the application's sends with [`RelayNode::send`].
//!
//! - **Neighbours.** Known peers sit in Kademlia buckets by XOR distance (bucket `i`: the
//!   peers whose id first differs from ours at bit `i`). A node links a known peer of each
//!   bucket it has no link in, nearest and farthest in turn, asking for up to three
//!   quarters of `max_neighbours` and keeping the rest for peers that ask it, so that
//!   greedy routing fixes at least one more bit of the target's id at every hop: O(log N)
//!   hops. A full peer lets a link go that neither side needs (both hold another in its
//!   bucket) to fill another peer's empty bucket, so empty buckets only decrease.
//!   Neighbours tell each other their neighbours, which is how buckets fill, and what a
//!   node falls back on when a neighbour dies (its other neighbours, as the tree's orphans
//!   go to their grandparent).
//! - **Asking for a link.** A `Link` request is routed to the peer (or sent through the
//!   server while we have no link); the asked peer offers. A full peer refuses with its
//!   neighbours closest to the asker, unless the asker has no link at all: then it takes
//!   it and lets one of its neighbours go, telling that one to link to the newcomer in its
//!   place (`Splice`): a link A–B becomes A–N–B, so a full network stays connected as it
//!   grows, even with two neighbours each. A routed request that finds no way to its
//!   target means the network is split: it is sent again through the server as from a
//!   peer with no link, which joins the parts.
//! - **Routing.** A frame goes to the unvisited neighbour closest to its target, or whose
//!   own neighbours are (two hops of lookahead); a node with none sends it back one step (depth first, the frame carries the nodes it visited
//!   and its path), so it reaches any peer of a connected network, greedily in O(log N)
//!   hops when buckets are full. Beyond `hop_limit` hops, or back at the origin with
//!   nothing left to try, the origin learns the target is unreachable. `(origin, seq)`
//!   filters copies; a frame seen before that is not coming back is a loop, and dropped.
//! - **Delivery.** Data, negotiation and link requests are acknowledged end to end by
//!   their target, which takes each once, and sent again until they are (`ack_timeout`,
//!   `attempts`); data that never is reports [`RelayOutput::Unreachable`].

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use plenum_proto::PeerId;

use crate::{
    Appearance, ConfigError, DropReason, FullMesh, FullMeshConfig, Input, Output, Topology,
};

mod codec;
pub use codec::RelayFrameError;

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

/// Settings of a [`RelayNode`]; build with [`RelayConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    max_neighbours: usize,
    hop_limit: u8,
    known_per_bucket: usize,
    ack_timeout: Duration,
    attempts: u8,
    refresh: Duration,
    links: FullMeshConfig,
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
    /// The sender asks for a direct link; `data` is its neighbour count (one byte).
    Link,
    /// The origin's frame was not reached its target: `data` is its seq (8 bytes), the
    /// target's id and the frame's kind (one byte).
    Unreachable,
    /// A full peer refuses a link: `data` lists its neighbours nearest to the asker.
    Refuse,
    /// The target got the origin's data, signal or link frame `data` (8 bytes, its seq).
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

#[derive(Debug)]
struct Unacked {
    kind: RouteKind,
    target: PeerId,
    data: Vec<u8>,
    attempt: u8,
    due: Instant,
}

/// The key a frame is filtered under: its seq and its attempt. A delivery is remembered
/// under its seq with the top byte set.
fn seen_key(seq: u64, attempt: u8) -> u64 {
    (seq & 0x00ff_ffff_ffff_ffff) | (u64::from(attempt) << 56)
}

const DELIVERED: u8 = 0xff;

/// Fewest neighbours at which links are traded to fill empty buckets: with fewer, a node
/// cannot cover its buckets anyway, and trading links would only reshuffle the network
/// (ten real peers at two neighbours took twice as long to reach every pair).
const SPARE_FROM: usize = 8;

/// Copies of frames remembered to filter them.
const SEEN_MAX: usize = 65_536;

/// Attempts at a direct link the application asked for before it is reported failed: one
/// attempt is lost to a negotiation frame that churn dropped, or to a stale half-open link.
pub const CONNECT_ATTEMPTS: u8 = 3;

/// A direct link the application asked for, not open yet.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// Attempts not made yet.
    left: u8,
    /// When the next attempt is made, once the last one ended without the link.
    next: Option<Instant>,
}

/// One node of a relay network. See the module docs.
#[derive(Debug)]
pub struct RelayNode {
    me: PeerId,
    id: RelayId,
    config: RelayConfig,
    now: Instant,
    links: FullMesh,
    /// Open links, with their ids.
    up: BTreeMap<PeerId, RelayId>,
    /// Links asked for or being opened, with when they are given up.
    pending: BTreeMap<PeerId, Instant>,
    /// Peers we know of, by bucket.
    known: BTreeMap<usize, Vec<(RelayId, PeerId)>>,
    /// Each neighbour's neighbours, as it last said.
    around: BTreeMap<PeerId, Vec<(RelayId, PeerId)>>,
    /// Peers that refused us or that we let go, not asked again until then.
    shunned: BTreeMap<PeerId, Instant>,
    /// Peers our network could not reach, asked through the server until then.
    bridged: BTreeMap<PeerId, Instant>,
    seen: HashSet<(PeerId, u64)>,
    seen_order: VecDeque<(PeerId, u64)>,
    next_seq: u64,
    next_refresh: Instant,
    /// Our unicasts not acknowledged yet, by seq.
    unacked: BTreeMap<u64, Unacked>,
    /// Decides which of a bucket's known peers we ask.
    rng: u64,
    /// Peers with no other link that we took while full: the neighbour we let go for
    /// them links to them in our place.
    lone: BTreeSet<PeerId>,
    /// Direct links the application asked for and not open yet.
    wanted: BTreeMap<PeerId, Wanted>,
    outputs: VecDeque<RelayOutput>,
}

impl RelayNode {
    /// A node with id `me` (40 hex digits), knowing no one yet.
    pub fn new(me: PeerId, config: RelayConfig, now: Instant, seed: u64) -> Option<Self> {
        let id = RelayId::of(&me)?;
        let links = FullMesh::with_seed(config.links.clone(), now, seed);
        Some(Self {
            me,
            id,
            config,
            now,
            links,
            up: BTreeMap::new(),
            pending: BTreeMap::new(),
            known: BTreeMap::new(),
            around: BTreeMap::new(),
            shunned: BTreeMap::new(),
            bridged: BTreeMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            next_seq: 1,
            next_refresh: now,
            unacked: BTreeMap::new(),
            rng: seed ^ 0x7e1a_7e1a,
            lone: BTreeSet::new(),
            wanted: BTreeMap::new(),
            outputs: VecDeque::new(),
        })
    }

    /// Our open links.
    pub fn neighbours(&self) -> Vec<PeerId> {
        self.up.keys().cloned().collect()
    }

    /// Whether links we asked for are still on their way.
    pub fn asking(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Peers we know of (not necessarily linked).
    pub fn known(&self) -> usize {
        self.known.values().map(Vec::len).sum()
    }

    /// Remembers `peer` as one we could link to.
    pub fn learn(&mut self, peer: &PeerId) {
        if *peer == self.me {
            return;
        }
        let Some(rid) = RelayId::of(peer) else {
            return;
        };
        let Some(bucket) = self.id.bucket(&rid) else {
            return;
        };
        let most = self.config.known_per_bucket;
        let me = self.id;
        let entries = self.known.entry(bucket).or_default();
        if entries.iter().any(|(r, _)| *r == rid) {
            return;
        }
        // Keep the closest, nearest first: they make the shortest routes.
        let d = me.distance(&rid);
        let at = entries.partition_point(|(r, _)| me.distance(r) < d);
        if at < most {
            entries.insert(at, (rid, peer.clone()));
            entries.truncate(most);
        }
    }

    fn forget(&mut self, peer: &PeerId) {
        for entries in self.known.values_mut() {
            entries.retain(|(_, p)| p != peer);
        }
    }

    fn degree(&self) -> usize {
        self.up.len() + self.pending.len()
    }

    /// Asks `peer` for a link: routed if we have links, through the server otherwise.
    fn ask(&mut self, peer: PeerId) {
        let via_server = self.up.is_empty();
        self.ask_via(peer, via_server, false);
    }

    /// Asks `peer` for a link; `insist` asks as a peer with no link would, which a full
    /// peer takes too (letting another go).
    fn ask_via(&mut self, peer: PeerId, via_server: bool, insist: bool) {
        if self.up.contains_key(&peer) || self.pending.contains_key(&peer) || peer == self.me {
            return;
        }
        self.pending.insert(
            peer.clone(),
            self.now + self.config.links.connect_timeout() * 2,
        );
        // Expect its offer.
        self.links.handle_input(Input::PeerAppeared {
            peer: peer.clone(),
            origin: Appearance::Joined,
            now: self.now,
        });
        let degree = if insist {
            0
        } else {
            self.up.len().min(255) as u8
        };
        if via_server {
            self.outputs
                .push_back(RelayOutput::SignalLink { peer, degree });
        } else {
            self.route_reliable(RouteKind::Link, peer, vec![degree]);
        }
    }

    /// The server is away: a link request this node gave it
    /// ([`RelayOutput::SignalLink`]) goes over the network instead.
    pub fn ask_over_network(&mut self, peer: PeerId, degree: u8) {
        if RelayId::of(&peer).is_some() && peer != self.me {
            self.route_reliable(RouteKind::Link, peer, vec![degree]);
        }
    }

    /// Links the closest known peer of each bucket, nearest and farthest buckets in turn,
    /// while there is room.
    fn fill(&mut self) {
        let now = self.now;
        self.shunned.retain(|_, until| *until > now);
        self.bridged.retain(|_, until| *until > now);
        let mut wanted = Vec::new();
        let mut have = self.degree();
        // Without a link, one request at a time: a full peer takes a peer with no link by
        // handing it one of its own, and two such at once would overfill us.
        // With links, a node asks for up to three quarters of its bound and keeps the
        // rest for peers that ask it: were every node to fill itself, every node would
        // be full, and a bucket whose few peers are full would stay empty.
        let room = if self.up.is_empty() {
            1
        } else {
            self.config.max_neighbours - self.config.max_neighbours / 4
        };
        // Nearest and farthest buckets in turn: far links fix the high bits of a route,
        // near ones make its last steps.
        let buckets: Vec<(&usize, &Vec<(RelayId, PeerId)>)> = self.known.iter().collect();
        let (mut lo, mut hi) = (0, buckets.len());
        let mut order = Vec::with_capacity(buckets.len());
        while lo < hi {
            hi -= 1;
            order.push(buckets[hi]);
            if lo < hi {
                order.push(buckets[lo]);
                lo += 1;
            }
        }
        // Beyond that, one request at a time for an empty bucket while a link can be let
        // go that neither side needs (both hold another in its bucket): the network's
        // empty buckets only ever decrease, so it settles.
        let mut extra = usize::from(self.pending.is_empty() && self.spare_link().is_some());
        for (bucket, entries) in order {
            if have >= room && extra == 0 {
                break;
            }
            let covered = entries
                .iter()
                .any(|(_, p)| self.up.contains_key(p) || self.pending.contains_key(p))
                || self.up.values().any(|r| self.id.bucket(r) == Some(*bucket))
                || self
                    .pending
                    .keys()
                    .any(|p| RelayId::of(p).and_then(|r| self.id.bucket(&r)) == Some(*bucket));
            if covered {
                continue;
            }
            // Any of the bucket's known peers, not always the closest: the closest in a
            // bucket is the same peer for many askers where ids are sparse, and it would
            // fill up with their links.
            let free: Vec<&PeerId> = entries
                .iter()
                .map(|(_, p)| p)
                .filter(|p| !self.shunned.contains_key(*p))
                .collect();
            if !free.is_empty() {
                let pick = crate::splitmix64(&mut self.rng) as usize % free.len();
                wanted.push(free[pick].clone());
                if have >= room {
                    extra -= 1;
                }
                have += 1;
            }
        }
        for peer in wanted {
            self.ask(peer);
        }
    }

    /// Someone asked us for a link (routed, or through the server): take it if there is
    /// room; if not, refuse with our neighbours closest to it, unless it has no link at
    /// all, in which case we take it and hand it one of ours.
    pub fn link_requested(&mut self, from: PeerId, their_degree: u8) {
        if from == self.me || RelayId::of(&from).is_none() {
            return;
        }
        self.learn(&from);
        if self.up.contains_key(&from) {
            return;
        }
        // A full peer takes a peer with no link (letting one of its links go, which links
        // to the newcomer instead), or one asking to fill an empty bucket when it holds
        // a link that neither side needs.
        let full = self.degree() >= self.config.max_neighbours;
        if full && their_degree == 0 {
            self.lone.insert(from.clone());
        }
        if full && their_degree > 0 && self.spare_link().is_none() {
            // Refused: it learns our neighbours nearest to it instead.
            let target = RelayId::of(&from);
            let mut near: Vec<(&PeerId, &RelayId)> = self.up.iter().collect();
            if let Some(t) = target {
                near.sort_by_key(|(_, r)| r.distance(&t));
            }
            let near: Vec<PeerId> = near.into_iter().take(4).map(|(p, _)| p.clone()).collect();
            let data = codec::encode_peers(&near);
            self.route_new(RouteKind::Refuse, from, data);
            return;
        }
        // We offer. If we were waiting for its offer (we asked it too, perhaps through a
        // server that is gone), we stop waiting: one side must offer.
        if self.pending.contains_key(&from) {
            self.links.handle_input(Input::PeerGone {
                peer: from.clone(),
                now: self.now,
            });
        }
        self.pending.insert(
            from.clone(),
            self.now + self.config.links.connect_timeout() * 2,
        );
        self.links.handle_input(Input::PeerAppeared {
            peer: from,
            origin: Appearance::Roster,
            now: self.now,
        });
    }

    /// The application sends `data` to `target`; returns the frame's number, which an
    /// [`RelayOutput::Unreachable`] names if it does not arrive.
    pub fn send(&mut self, target: PeerId, data: Vec<u8>) -> Result<u64, RelaySendError> {
        if target == self.me {
            return Err(RelaySendError::ToSelf);
        }
        if RelayId::of(&target).is_none() {
            return Err(RelaySendError::BadTarget(target));
        }
        Ok(self.route_reliable(RouteKind::Data, target, data))
    }

    /// Routes a frame its target acknowledges, sent again until it does.
    fn route_reliable(&mut self, kind: RouteKind, target: PeerId, data: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let due = self.now + self.config.ack_timeout;
        let unacked = Unacked {
            kind,
            target: target.clone(),
            data: data.clone(),
            attempt: 0,
            due,
        };
        self.unacked.insert(seq, unacked);
        self.route(kind, target, seq, 0, data);
        seq
    }

    /// Sends our frame `seq` again, or gives up on it.
    fn retry(&mut self, seq: u64) {
        let Some(u) = self.unacked.get_mut(&seq) else {
            return;
        };
        u.attempt += 1;
        let (kind, target, attempt) = (u.kind, u.target.clone(), u.attempt);
        if kind == RouteKind::Link
            && (self.up.contains_key(&target) || !self.pending.contains_key(&target))
        {
            // The link opened, or we gave up on it.
            self.unacked.remove(&seq);
            return;
        }
        if kind == RouteKind::Data && attempt + 1 >= self.config.attempts {
            // Twice no acknowledgement: the network may be split from the target. Asked
            // through the server as by a peer with no link, the target joins the parts
            // (once a while). Not at the first timeout: while a small network settles,
            // a frame is often only late, and each such link makes a full peer splice.
            self.bridge(target.clone());
        }
        if attempt >= self.config.attempts {
            self.unacked.remove(&seq);
            match kind {
                RouteKind::Data => self
                    .outputs
                    .push_back(RelayOutput::Unreachable { target, seq }),
                RouteKind::Link => self.not_reached(target, seq, kind),
                // Negotiation that does not arrive: the link times out on its own.
                _ => {}
            }
            return;
        }
        let Some(u) = self.unacked.get_mut(&seq) else {
            return;
        };
        u.due = self.now + self.config.ack_timeout;
        let data = u.data.clone();
        self.route(kind, target, seq, attempt, data);
    }

    /// Sends negotiation for a direct link to `target` over the network.
    pub fn send_signal(&mut self, target: PeerId, data: Vec<u8>) -> Result<u64, RelaySendError> {
        if RelayId::of(&target).is_none() {
            return Err(RelaySendError::BadTarget(target));
        }
        Ok(self.route_reliable(RouteKind::Signal, target, data))
    }

    /// Forms a direct link to `peer` (its negotiation relayed over the network). The
    /// application asked for it: a full peer takes it too.
    pub fn connect(&mut self, peer: PeerId) {
        if peer == self.me || RelayId::of(&peer).is_none() || self.up.contains_key(&peer) {
            return;
        }
        self.learn(&peer);
        let wanted = Wanted {
            left: CONNECT_ATTEMPTS,
            next: None,
        };
        self.wanted.insert(peer.clone(), wanted);
        self.attempt(peer);
    }

    /// One attempt at a link the application asked for: asked again now, whatever an
    /// earlier request (perhaps through a server that is gone) is waiting for, with a
    /// link attempt of its own (not the rest of a stale one's time).
    fn attempt(&mut self, peer: PeerId) {
        let Some(wanted) = self.wanted.get_mut(&peer) else {
            return;
        };
        wanted.left = wanted.left.saturating_sub(1);
        wanted.next = None;
        self.shunned.remove(&peer);
        self.pending.remove(&peer);
        self.links.handle_input(Input::PeerGone {
            peer: peer.clone(),
            now: self.now,
        });
        let via_server = self.up.is_empty();
        self.ask_via(peer, via_server, true);
    }

    /// Links the application asked for whose attempt ended without them: tried again
    /// once the network had time to mend (an attempt can end at once, its target
    /// unreachable while churn has the network split), one refresh after the first
    /// attempt, two after the second; reported failed after the last.
    fn retry_wanted(&mut self) {
        let now = self.now;
        let ended: Vec<PeerId> = self
            .wanted
            .keys()
            .filter(|p| !self.up.contains_key(*p) && !self.pending.contains_key(*p))
            .cloned()
            .collect();
        for peer in ended {
            let Some(wanted) = self.wanted.get_mut(&peer) else {
                continue;
            };
            match wanted.next {
                _ if wanted.left == 0 => {
                    self.wanted.remove(&peer);
                    self.outputs.push_back(RelayOutput::LinkFailed { peer });
                }
                None => {
                    let made = u32::from(CONNECT_ATTEMPTS - wanted.left);
                    wanted.next = Some(now + self.config.refresh * made);
                }
                Some(at) if now >= at => self.attempt(peer),
                Some(_) => {}
            }
        }
    }

    /// Closes the direct link to `peer`.
    pub fn disconnect(&mut self, peer: &PeerId) {
        self.wanted.remove(peer);
        self.shunned
            .insert(peer.clone(), self.now + self.config.refresh * 4);
        self.drop_link(peer);
    }

    fn drop_link(&mut self, peer: &PeerId) {
        let was_up = self.up.remove(peer).is_some();
        self.pending.remove(peer);
        self.around.remove(peer);
        self.links.handle_input(Input::PeerGone {
            peer: peer.clone(),
            now: self.now,
        });
        if was_up {
            self.changed();
        }
    }

    fn changed(&mut self) {
        let list = self.neighbours();
        for peer in &list {
            self.outputs.push_back(RelayOutput::Send {
                peer: peer.clone(),
                msg: RelayMsg::Neighbours(list.clone()),
            });
        }
        self.outputs.push_back(RelayOutput::Neighbours(list));
    }

    fn route_new(&mut self, kind: RouteKind, target: PeerId, data: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.route(kind, target, seq, 0, data);
        seq
    }

    fn route(&mut self, kind: RouteKind, target: PeerId, seq: u64, attempt: u8, data: Vec<u8>) {
        self.remember(self.me.clone(), seen_key(seq, attempt));
        let frame = RouteFrame {
            kind,
            origin: self.me.clone(),
            target,
            seq,
            hops: 0,
            back: false,
            attempt,
            visited: vec![self.me.clone()],
            path: vec![self.me.clone()],
            data,
        };
        self.forward(frame);
    }

    /// Our network cannot reach `target`, the server can: the network is split (or the
    /// target is gone). Asked as a peer with no link, it takes us even when full, and the
    /// parts are one again. Once per four refreshes per target.
    fn bridge(&mut self, target: PeerId) {
        let now = self.now;
        if self.up.contains_key(&target) || self.bridged.get(&target).is_some_and(|u| *u > now) {
            return;
        }
        self.bridged
            .insert(target.clone(), now + self.config.refresh * 4);
        self.pending.insert(
            target.clone(),
            now + self.config.links.connect_timeout() * 2,
        );
        self.links.handle_input(Input::PeerAppeared {
            peer: target.clone(),
            origin: Appearance::Joined,
            now,
        });
        self.outputs.push_back(RelayOutput::SignalLink {
            peer: target,
            degree: 0,
        });
    }

    /// A link we asked for will not come (refused, unreachable, timed out); one that
    /// opened meanwhile stays.
    fn stop_asking(&mut self, peer: PeerId) {
        if self.pending.remove(&peer).is_some() && !self.up.contains_key(&peer) {
            self.links.handle_input(Input::PeerGone {
                peer,
                now: self.now,
            });
        }
    }

    fn remember(&mut self, origin: PeerId, seq: u64) -> bool {
        if !self.seen.insert((origin.clone(), seq)) {
            return false;
        }
        self.seen_order.push_back((origin, seq));
        if self.seen_order.len() > SEEN_MAX
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Sends `frame` (which is at us) on: to its target if linked, else to the unvisited
    /// neighbour closest to it, else one step back.
    fn forward(&mut self, mut frame: RouteFrame) {
        let Some(target) = RelayId::of(&frame.target) else {
            return;
        };
        if frame.hops >= self.config.hop_limit {
            return self.unreachable(frame);
        }
        let next = if self.up.contains_key(&frame.target) {
            Some(frame.target.clone())
        } else {
            // Looking two hops ahead: a neighbour whose own neighbours come closer counts
            // as that close (it says who they are), which steers round the dead ends of
            // a sparse network.
            let reach = |p: &PeerId, r: &RelayId| {
                let own = r.distance(&target);
                let ahead = self.around.get(p).into_iter().flatten();
                ahead
                    .map(|(q, _)| q.distance(&target))
                    .min()
                    .map_or(own, |a| a.min(own))
            };
            let mut ranked: Vec<([u8; 20], [u8; 20], &PeerId)> = self
                .up
                .iter()
                .filter(|(p, _)| !frame.visited.contains(p))
                .map(|(p, r)| (reach(p, r), r.distance(&target), p))
                .collect();
            ranked.sort_unstable();
            // A frame sent again goes another way where there is one: the first went
            // through a peer that may have died unnoticed. Attempt k takes the k-th best of
            // the neighbours that come closer than we are, at every hop.
            let mine = self.id.distance(&target);
            let closer = ranked.iter().take_while(|(d, _, _)| *d < mine).count();
            let pick = if frame.back || closer < 2 {
                0
            } else {
                usize::from(frame.attempt) % closer
            };
            ranked.get(pick).map(|(_, _, p)| (*p).clone())
        };
        frame.hops += 1;
        match next {
            Some(peer) => {
                frame.back = false;
                frame.visited.push(peer.clone());
                frame.path.push(peer.clone());
                self.outputs.push_back(RelayOutput::Send {
                    peer,
                    msg: RelayMsg::Route(frame),
                });
            }
            None => {
                frame.path.pop();
                match frame.path.last().cloned() {
                    Some(prev) => {
                        frame.back = true;
                        self.outputs.push_back(RelayOutput::Send {
                            peer: prev,
                            msg: RelayMsg::Route(frame),
                        });
                    }
                    // Back at the origin with nothing left to try.
                    None => {
                        frame.hops -= 1;
                        self.unreachable(frame);
                    }
                }
            }
        }
    }

    /// `frame` cannot go on: its origin is told (we may be the origin).
    fn unreachable(&mut self, frame: RouteFrame) {
        if matches!(frame.kind, RouteKind::Unreachable | RouteKind::Ack) {
            return;
        }
        if frame.origin == self.me {
            return self.not_reached(frame.target, frame.seq, frame.kind);
        }
        let mut data = frame.seq.to_be_bytes().to_vec();
        data.extend_from_slice(frame.target.as_str().as_bytes());
        data.push(codec::kind_byte(frame.kind));
        self.route_new(RouteKind::Unreachable, frame.origin, data);
    }

    fn not_reached(&mut self, target: PeerId, _seq: u64, kind: RouteKind) {
        match kind {
            // Churn may have cut the way, links may still be opening, or the network is
            // split: a link through the server is asked for, and the frame's timer sends it
            // again while attempts are left.
            RouteKind::Data => self.bridge(target),
            RouteKind::Link => {
                let now = self.now;
                if self.bridged.get(&target).is_some_and(|until| *until > now) {
                    // Asked through the server already: it is gone.
                    self.forget(&target);
                    self.stop_asking(target);
                } else {
                    self.bridge(target);
                }
            }
            _ => {}
        }
    }

    fn on_route(&mut self, from: PeerId, frame: RouteFrame) {
        if frame.hops > self.config.hop_limit {
            return self.drop(from, "hop count beyond the limit");
        }
        if RelayId::of(&frame.target).is_none() || RelayId::of(&frame.origin).is_none() {
            return self.drop(from, "not a relay id");
        }
        if frame.path.last() != Some(&self.me) {
            return self.drop(from, "path does not end here");
        }
        if frame.back {
            // Coming back to us: we are on its path; try our next neighbour.
            if !self
                .seen
                .contains(&(frame.origin.clone(), seen_key(frame.seq, frame.attempt)))
            {
                return self.drop(from, "came back to a peer it never visited");
            }
            return self.forward(frame);
        }
        if !self.remember(frame.origin.clone(), seen_key(frame.seq, frame.attempt)) {
            return self.drop(from, "a copy or a loop");
        }
        for peer in frame.visited.iter().take(64) {
            self.learn(peer);
        }
        if frame.target != self.me {
            return self.forward(frame);
        }
        let RouteFrame {
            kind,
            origin,
            seq,
            hops,
            data,
            ..
        } = frame;
        if matches!(kind, RouteKind::Data | RouteKind::Signal | RouteKind::Link) {
            // Acknowledged every time (an acknowledgement may be what got lost), taken
            // once.
            self.route_new(RouteKind::Ack, origin.clone(), seq.to_be_bytes().to_vec());
            if !self.remember(origin.clone(), seen_key(seq, DELIVERED)) {
                return;
            }
        }
        match kind {
            RouteKind::Data => self
                .outputs
                .push_back(RelayOutput::Deliver { origin, hops, data }),
            RouteKind::Ack => {
                if let Some(seq) = data.first_chunk::<8>() {
                    self.unacked.remove(&u64::from_be_bytes(*seq));
                }
            }
            RouteKind::Refuse => {
                self.shunned
                    .insert(origin.clone(), self.now + self.config.refresh * 4);
                self.stop_asking(origin);
                for peer in codec::decode_peers(&data) {
                    self.learn(&peer);
                }
                self.fill();
            }
            RouteKind::Signal => self.outputs.push_back(RelayOutput::Signal { origin, data }),
            RouteKind::Link => self.link_requested(origin, data.first().copied().unwrap_or(1)),
            RouteKind::Unreachable => {
                if let Some((seq, rest)) = data.split_first_chunk::<8>()
                    && let Some((kind, target)) = rest.split_last()
                    && let Ok(target) = std::str::from_utf8(target)
                    && let Ok(target) = PeerId::new(target)
                {
                    let kind = codec::kind_from(*kind).unwrap_or(RouteKind::Data);
                    self.not_reached(target, u64::from_be_bytes(*seq), kind);
                }
            }
        }
    }

    fn drop(&mut self, from: PeerId, reason: &'static str) {
        self.outputs
            .push_back(RelayOutput::Dropped { from, reason });
    }

    /// A message from the neighbour `from`.
    pub fn handle_msg(&mut self, from: PeerId, msg: RelayMsg, now: Instant) {
        self.now = self.now.max(now);
        self.links.handle_input(Input::Heard {
            peer: from.clone(),
            now,
        });
        if !self.up.contains_key(&from) {
            return self.drop(from, "not a neighbour");
        }
        match msg {
            RelayMsg::Neighbours(list) => {
                for peer in list.iter().take(64) {
                    self.learn(peer);
                }
                let ids = list
                    .into_iter()
                    .take(64)
                    .filter_map(|p| RelayId::of(&p).map(|r| (r, p)))
                    .collect();
                self.around.insert(from, ids);
            }
            RelayMsg::Splice(peer) => {
                // Through the server: the link we would route it over is closing.
                self.learn(&peer);
                self.shunned.remove(&peer);
                self.ask_via(peer, true, false);
            }
            RelayMsg::Route(frame) => self.on_route(from, frame),
        }
    }

    fn on_link_up(&mut self, peer: PeerId) {
        self.pending.remove(&peer);
        self.wanted.remove(&peer);
        if !self.links.neighbours().contains(&peer) {
            // A link we no longer want (given up on, or let go) opened after all.
            self.outputs.push_back(RelayOutput::Disconnect { peer });
            return;
        }
        let Some(rid) = RelayId::of(&peer) else {
            self.outputs.push_back(RelayOutput::Disconnect { peer });
            return;
        };
        if self.up.insert(peer.clone(), rid).is_some() {
            return;
        }
        self.learn(&peer);
        let lone = self.lone.remove(&peer);
        if self.up.len() > self.config.max_neighbours
            && let Some(evict) = self.link_to_let_go(&peer)
        {
            if lone {
                // The one we let go links to the newcomer in our place (asking over its
                // link to us while that is still open), so the network stays connected.
                self.outputs.push_back(RelayOutput::Send {
                    peer: evict.clone(),
                    msg: RelayMsg::Splice(peer.clone()),
                });
            }
            self.shunned
                .insert(evict.clone(), self.now + self.config.refresh * 4);
            self.drop_link(&evict);
        }
        self.changed();
    }

    /// Whether `peer` (a neighbour, with id `r`) holds another link than ours in the
    /// bucket our link is in for it (buckets are symmetric), as it last said.
    fn covered_without_us(&self, peer: &PeerId, r: &RelayId) -> bool {
        let b = self.id.bucket(r);
        self.around.get(peer).is_some_and(|theirs| {
            theirs
                .iter()
                .any(|(q, p)| *p != self.me && r.bucket(q) == b)
        })
    }

    /// A link that neither side needs: we hold another in its bucket, and so does the
    /// peer. None below [`SPARE_FROM`] neighbours.
    fn spare_link(&self) -> Option<PeerId> {
        if self.config.max_neighbours < SPARE_FROM {
            return None;
        }
        self.up
            .iter()
            .filter(|(p, r)| self.links_in(self.id.bucket(r)) >= 2 && self.covered_without_us(p, r))
            .max_by_key(|(_, r)| (self.links_in(self.id.bucket(r)), self.id.distance(r)))
            .map(|(p, _)| p.clone())
    }

    fn links_in(&self, bucket: Option<usize>) -> usize {
        self.up
            .values()
            .filter(|q| self.id.bucket(q) == bucket)
            .count()
    }

    /// Which link to let go when over the bound (not `keep`): one neither side needs,
    /// else one we hold another in its bucket for, else one whose peer keeps other links
    /// (so nobody is left alone); the bucket we hold most links in, farthest first.
    fn link_to_let_go(&self, keep: &PeerId) -> Option<PeerId> {
        self.up
            .iter()
            .filter(|(p, _)| *p != keep)
            .max_by_key(|(p, r)| {
                let ours = self.links_in(self.id.bucket(r));
                let theirs = self.covered_without_us(p, r);
                let keeps_others = self.around.get(*p).is_some_and(|a| a.len() >= 2);
                (
                    ours >= 2 && theirs,
                    ours >= 2,
                    keeps_others,
                    ours,
                    self.id.distance(r),
                )
            })
            .map(|(p, _)| p.clone())
    }

    fn on_link_down(&mut self, peer: &PeerId) {
        self.repair(peer);
        self.retry_wanted();
    }

    /// A link closed, or one opening failed: the network is mended round it.
    fn repair(&mut self, peer: &PeerId) {
        let theirs = self.around.get(peer).cloned().unwrap_or_default();
        let Some(lost) = self.up.get(peer).copied() else {
            self.drop_link(peer);
            return;
        };
        self.drop_link(peer);
        if self.up.len() >= 2 && self.links_in(self.id.bucket(&lost)) > 0 {
            // Another link of ours covers its bucket (it was let go as one neither side
            // needed, say): nothing to repair.
            return self.fill();
        }
        // Its other neighbours first, as orphans go to their grandparent: the network
        // stays connected through us.
        if let Some((_, bridge)) = theirs
            .into_iter()
            .filter(|(_, p)| *p != self.me && !self.up.contains_key(p))
            .min_by_key(|(r, _)| self.id.distance(r))
        {
            self.learn(&bridge);
            self.shunned.remove(&bridge);
            if self.degree() < self.config.max_neighbours {
                self.ask(bridge);
            }
        }
        self.fill();
    }

    fn on_tick(&mut self) {
        let now = self.now;
        let expired: Vec<PeerId> = self
            .pending
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in expired {
            self.shunned
                .insert(peer.clone(), now + self.config.refresh * 4);
            self.stop_asking(peer);
        }
        self.retry_wanted();
        let due: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, u)| now >= u.due)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            self.retry(seq);
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.config.refresh;
            self.fill();
        }
        self.links.handle_input(Input::Tick { now });
    }

    /// Link events and time, as every topology is told them; a goodbye drops the link at
    /// once. Appearances teach us peers (the server's sample at join); broadcasts, plans and
    /// mesh frames are not the relay network's and are ignored.
    pub fn handle_input(&mut self, input: Input) {
        match input {
            Input::LinkUp { peer, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::LinkUp {
                    peer: peer.clone(),
                    now,
                });
                self.on_link_up(peer);
            }
            Input::LinkDown { peer, now } | Input::PeerGone { peer, now } => {
                self.now = self.now.max(now);
                self.on_link_down(&peer);
            }
            Input::Heard { peer, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::Heard { peer, now });
            }
            Input::PeerAppeared { peer, now, .. } => {
                self.now = self.now.max(now);
                self.learn(&peer);
                self.fill();
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                self.on_tick();
            }
            Input::Broadcast { .. } | Input::Plan { .. } | Input::Frame { .. } => {}
        }
    }

    /// Produces the next output; the last of a drain is always [`RelayOutput::Timeout`].
    pub fn poll_output(&mut self) -> RelayOutput {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        match self.links.poll_output() {
            Output::Connect { peer, initiate } => RelayOutput::Connect { peer, initiate },
            Output::Disconnect { peer, reason } => {
                if reason != DropReason::Left {
                    self.on_link_down(&peer);
                }
                RelayOutput::Disconnect { peer }
            }
            Output::Heartbeat { peer } => RelayOutput::Heartbeat { peer },
            Output::Timeout(at) => {
                let mut at = at.min(self.next_refresh);
                if let Some(u) = self.unacked.values().map(|u| u.due).min() {
                    at = at.min(u);
                }
                if let Some(p) = self.pending.values().min() {
                    at = at.min(*p);
                }
                if let Some(w) = self.wanted.values().filter_map(|w| w.next).min() {
                    at = at.min(w);
                }
                RelayOutput::Timeout(at.max(self.now))
            }
            _ => self.poll_output(),
        }
    }
}

/// The peers a server hands a newcomer to a relay room, from `ids` in ascending order: the
/// `near` beside it in id order (the ids that share its longest prefixes sit there) and
/// `far` more spread over the rest, picked by `seed`.
pub fn welcome_sample<'a>(
    ids: impl Iterator<Item = &'a PeerId>,
    me: &PeerId,
    near: usize,
    far: usize,
    seed: u64,
) -> Vec<PeerId> {
    let all: Vec<&PeerId> = ids.filter(|p| *p != me).collect();
    let at = all.partition_point(|p| *p < me);
    let mut out: BTreeSet<PeerId> = BTreeSet::new();
    let lo = at.saturating_sub(near / 2);
    for p in all.iter().skip(lo).take(near) {
        out.insert((*p).clone());
    }
    let mut rng = seed;
    for _ in 0..far.min(all.len()) {
        let i = (crate::splitmix64(&mut rng) % all.len() as u64) as usize;
        out.insert(all[i].clone());
    }
    out.into_iter().collect()
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
