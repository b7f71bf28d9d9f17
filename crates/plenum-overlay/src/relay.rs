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
//!   server while we have no link); the asked peer offers (of two asking each other, the
//!   smaller id). A full peer refuses with its neighbours closest to the asker, unless the
//!   asker has no link at all: then it takes it and lets one of its neighbours go, telling
//!   that one to link to the newcomer in its place (`Splice`): a link A–B becomes A–N–B,
//!   so a full network stays connected as it grows, even with two neighbours each. The
//!   one told keeps its link until the new one is up, then lets it go (make before
//!   break). A newcomer keeps a place free for that while it asks, and holds other
//!   newcomers' requests meanwhile. Over the bound, a link whose peer is linked to
//!   another of ours (so stays joined to us) goes first. A routed request that finds no way to its target
//!   means the network is split: it is sent again through the server as from a peer with
//!   no link, which joins the parts. Data never makes links.
//! - **A link the application asks for** ([`RelayNode::connect`]) is taken even by a full
//!   peer, and kept. The way the request came tells the target which of its links and
//!   of the asker's stay joined to them both: a full end lets such a link go; if both
//!   are full, they swap two links for two (the target says so in its acknowledgement),
//!   every degree as it was and the network joined.
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
use std::time::Instant;

use plenum_proto::PeerId;

use crate::{Appearance, DropReason, FullMesh, Input, Output, Topology};

mod codec;
mod requests;
mod room;
mod routing;
mod types;
pub use codec::RelayFrameError;
pub use types::{
    RelayConfig, RelayConfigBuilder, RelayId, RelayMsg, RelayOutput, RelaySendError, RouteFrame,
    RouteKind,
};

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
    /// When each opened.
    up_since: BTreeMap<PeerId, Instant>,
    /// Links asked for or being opened, with when they are given up.
    pending: BTreeMap<PeerId, Instant>,
    /// Of those, the ones we took a request for: we offer; since when, and whether we
    /// offered again already.
    offering: BTreeMap<PeerId, (Instant, bool)>,
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
    /// Such peers whose link is up while we are over the bound: until when we wait for
    /// their neighbours (they may have taken links meanwhile) to choose whom the one we
    /// let go links to.
    splicing: BTreeMap<PeerId, Instant>,
    /// Neighbours we told to link to another peer in our place (`Splice`): they let our
    /// link go once theirs is up, so the network is never cut meanwhile.
    leaving: BTreeMap<PeerId, Leaving>,
    /// Peers we were told to link to in a neighbour's place: that neighbour, let go
    /// once the link is up.
    splice_for: BTreeMap<PeerId, PeerId>,
    /// Of those, ones that refused us (not told yet, most likely): asked again then, so
    /// many times so far.
    splice_again: BTreeMap<PeerId, (Instant, u8)>,
    /// Direct links the application asked for and not open yet.
    wanted: BTreeMap<PeerId, Wanted>,
    /// Open links an application asked for (ours, or the peer's): never let go to make
    /// room, only closed by the application or the link.
    asked: BTreeSet<PeerId>,
    /// Askers for a link their application wanted, which we took: what we let go once
    /// it is up (we were full).
    room: BTreeMap<PeerId, Room>,
    /// The same askers: which of their neighbours they let go (and whom it links to in
    /// its place), told in our acknowledgements.
    advice: BTreeMap<PeerId, Vec<PeerId>>,
    /// Peers we asked for a link our application wanted: which neighbour of ours to let
    /// go once it is up, as they told us (and whom that one links to).
    told: BTreeMap<PeerId, (PeerId, Option<PeerId>)>,
    /// Such links that opened while we were full, before their target told us whom to let
    /// go: until when we wait for word.
    awaiting_room: BTreeMap<PeerId, Instant>,
    /// Neighbours that asked us for a link (so do not see ours): taken if our link to
    /// them closes before then, unless we hear from them meanwhile (their end stands: the
    /// request was older than the link).
    asked_while_up: BTreeMap<PeerId, Asked>,
    /// The peer we asked through the server while we had no link.
    alone_ask: Option<PeerId>,
    /// Asking with no link, we keep a second place free: a full peer that takes us
    /// hands us one of its neighbours (`Splice`), which needs it. Kept until the first
    /// other request takes it, or a while after our first link opened (`held_until`), or
    /// our request failed.
    reserve: bool,
    /// Requests from peers with no link that came meanwhile: taken once the place is no
    /// longer kept (two such on one full peer would overfill it).
    held: BTreeMap<PeerId, (u8, Instant)>,
    held_until: Instant,
    outputs: VecDeque<RelayOutput>,
}

/// What a full peer lets go once a link an application asked for is up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Room {
    /// Our neighbour on the request's way: it stays joined to us along that way.
    LetGo(PeerId),
    /// `drop`, which links to `partner` in our place: the asker's neighbour on the way,
    /// which the asker lets go (both were full).
    Swap { drop: PeerId, partner: PeerId },
}

/// A neighbour that links to another in our place, then lets us go.
#[derive(Debug, Clone)]
struct Leaving {
    /// When we stop waiting and decide again.
    until: Instant,
    /// The newcomer we took while full that it links to (or to whose neighbour), if that
    /// is why it goes.
    newcomer: Option<PeerId>,
    /// The peer it links to.
    instead: PeerId,
    /// Decisions made so far.
    tries: u8,
}

/// A link request from a peer we hold a link to.
#[derive(Debug, Clone)]
struct Asked {
    degree: u8,
    app: Option<(u8, Vec<PeerId>)>,
    until: Instant,
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
            up_since: BTreeMap::new(),
            pending: BTreeMap::new(),
            offering: BTreeMap::new(),
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
            splicing: BTreeMap::new(),
            leaving: BTreeMap::new(),
            splice_for: BTreeMap::new(),
            splice_again: BTreeMap::new(),
            wanted: BTreeMap::new(),
            asked: BTreeSet::new(),
            room: BTreeMap::new(),
            advice: BTreeMap::new(),
            told: BTreeMap::new(),
            awaiting_room: BTreeMap::new(),
            asked_while_up: BTreeMap::new(),
            alone_ask: None,
            reserve: false,
            held: BTreeMap::new(),
            held_until: now,
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

    /// Whether we hold no more links than the bound (a splice holds one more for a
    /// while: the link on its way out stays until its replacement is up).
    pub fn within_bound(&self) -> bool {
        self.up.len() <= self.config.max_neighbours
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
        self.up.len() + self.pending.len() + usize::from(self.reserved())
    }

    /// Whether we have no link and a request we made through the server is on its way.
    fn asking_alone(&self) -> bool {
        self.up.is_empty()
            && self
                .alone_ask
                .as_ref()
                .is_some_and(|p| self.pending.contains_key(p))
    }

    /// Whether we keep a place for a neighbour a full peer that took us may hand over:
    /// while we ask, then as long as the peer that took us says it holds more links
    /// than the bound (it has yet to hand one over), or has said nothing yet (for a
    /// while).
    fn reserved(&self) -> bool {
        if !self.reserve {
            return false;
        }
        if self.asking_alone() {
            return true;
        }
        let Some(took) = self.alone_ask.as_ref().filter(|p| self.up.contains_key(*p)) else {
            return false;
        };
        match self.around.get(took) {
            Some(theirs) => theirs.len() > self.config.max_neighbours,
            None => self.now < self.held_until,
        }
    }

    /// Requests held while we kept a place, once we no longer do: one at a time, each
    /// once the one before is in (taken at once, they would pile on us faster than we can
    /// hand them our links). Not one we are linking with meanwhile, nor one that has given
    /// up on us.
    fn release_held(&mut self) {
        if self.held.is_empty() || self.reserved() {
            return;
        }
        self.reserve = false;
        let stale = self.now.checked_sub(self.config.links.connect_timeout());
        let (up, pending) = (&self.up, &self.pending);
        self.held.retain(|p, (_, at)| {
            !up.contains_key(p) && !pending.contains_key(p) && stale.is_none_or(|s| *at > s)
        });
        let busy = self.over_bound()
            || !self.leaving.is_empty()
            || !self.splicing.is_empty()
            || self.pending.keys().any(|p| self.lone.contains(p));
        if !busy && let Some((peer, (degree, _))) = self.held.pop_first() {
            self.take_request(peer, degree, None);
        }
    }

    /// Over the bound with nothing on its way to mend it (every link that could go was in
    /// the middle of a splice when it opened): decided now, the newest link kept.
    fn keep_bound(&mut self) {
        if !self.over_bound() || !self.splicing.is_empty() || !self.awaiting_room.is_empty() {
            return;
        }
        let Some(newest) = self
            .up_since
            .iter()
            .max_by_key(|(_, at)| **at)
            .map(|(p, _)| p.clone())
        else {
            return;
        };
        if !self.drop_redundant(&newest)
            && let Some(evict) = self.link_to_let_go(&newest)
        {
            self.let_go(&evict, None, None);
        }
    }

    /// Asks `peer` for a link: routed if we have links, through the server otherwise.
    fn ask(&mut self, peer: PeerId) {
        let via_server = self.up.is_empty();
        self.ask_via(peer, via_server, false);
    }

    /// Asks `peer` for a link; `insist` (a link the application wants) asks as a peer with
    /// no link would, which a full peer takes too (letting another go). Routed, such a
    /// request also says how many links we hold, and the way it took tells the target
    /// which of our links stays joined to it through the network.
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
        if via_server && self.up.is_empty() {
            self.alone_ask = Some(peer.clone());
            self.reserve = true;
        }
        if via_server {
            self.outputs
                .push_back(RelayOutput::SignalLink { peer, degree });
        } else if insist {
            let links = self.up.len().min(255) as u8;
            self.route_reliable(RouteKind::Link, peer, vec![degree, links]);
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
    /// application asked for it: a full peer takes it too, and either end that is full
    /// makes room by letting a link go that keeps everyone joined (see the module docs).
    /// The link is kept until [`disconnect`](Self::disconnect) or it fails; one that does
    /// not open is reported ([`RelayOutput::LinkFailed`]) after [`CONNECT_ATTEMPTS`].
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
        self.up_since.remove(peer);
        self.offering.remove(peer);
        self.pending.remove(peer);
        self.around.remove(peer);
        self.room.remove(peer);
        self.advice.remove(peer);
        self.told.remove(peer);
        self.awaiting_room.remove(peer);
        self.splicing.remove(peer);
        self.leaving.remove(peer);
        self.asked.remove(peer);
        let now = self.now;
        for l in self.leaving.values_mut() {
            if l.instead == *peer || l.newcomer.as_ref() == Some(peer) {
                // What it was leaving for is gone: decided again at once.
                l.until = now;
            }
        }
        self.splice_for.remove(peer);
        self.splice_again.remove(peer);
        self.links.handle_input(Input::PeerGone {
            peer: peer.clone(),
            now: self.now,
        });
        if was_up {
            self.changed();
        }
    }

    /// Our neighbours changed: they hear the new list (what they know of our links is
    /// what they decide on), and so does the application, but not while we are over the
    /// bound (a link is on its way out): it is never told of more neighbours than that.
    fn changed(&mut self) {
        let list = self.neighbours();
        for peer in &list {
            self.outputs.push_back(RelayOutput::Send {
                peer: peer.clone(),
                msg: RelayMsg::Neighbours(list.clone()),
            });
        }
        if list.len() <= self.config.max_neighbours {
            self.outputs.push_back(RelayOutput::Neighbours(list));
        }
    }

    /// A message from the neighbour `from`.
    pub fn handle_msg(&mut self, from: PeerId, msg: RelayMsg, now: Instant) {
        self.now = self.now.max(now);
        self.asked_while_up.remove(&from);
        self.links.handle_input(Input::Heard {
            peer: from.clone(),
            now,
        });
        if !self.up.contains_key(&from) {
            return self.drop(from, "not a neighbour");
        }
        match msg {
            RelayMsg::Neighbours(list)
                if self.leaving.contains_key(&from) && !list.contains(&self.me) =>
            {
                // It linked elsewhere in our place and let us go.
                for peer in list.iter().take(64) {
                    self.learn(peer);
                }
                self.drop_link(&from);
            }
            RelayMsg::Neighbours(list) => {
                for peer in list.iter().take(64) {
                    self.learn(peer);
                }
                let ids = list
                    .into_iter()
                    .take(64)
                    .filter_map(|p| RelayId::of(&p).map(|r| (r, p)))
                    .collect();
                self.around.insert(from.clone(), ids);
                if self.splicing.contains_key(&from) {
                    self.splice_in(&from, 0);
                }
                self.newcomer_filled(&from);
                if self.reserve {
                    self.release_held();
                }
            }
            RelayMsg::Splice(peer) => {
                // The sender lets us go once we link to `peer` in its place (through the
                // server, or over the network while it is away): until then its link
                // keeps us joined to the network.
                self.learn(&peer);
                self.shunned.remove(&peer);
                if self.up.contains_key(&peer) || peer == self.me {
                    self.shunned
                        .insert(from.clone(), self.now + self.config.refresh * 4);
                    self.drop_link(&from);
                } else {
                    self.splice_for.insert(peer.clone(), from);
                    self.ask_via(peer, true, false);
                }
            }
            RelayMsg::Route(frame) => self.on_route(from, frame),
        }
    }

    fn on_link_up(&mut self, peer: PeerId) {
        self.pending.remove(&peer);
        self.offering.remove(&peer);
        let ours = self.wanted.remove(&peer).is_some();
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
        self.up_since.insert(peer.clone(), self.now);
        self.learn(&peer);
        self.asked_while_up.remove(&peer);
        if self.up.len() == 1 {
            self.held_until = self.now + self.config.ack_timeout;
        }
        let lone = self.lone.remove(&peer);
        let room = self.room.remove(&peer);
        self.advice.remove(&peer);
        if ours {
            self.asked.insert(peer.clone());
        }
        if let Some(before) = self.splice_for.remove(&peer) {
            // We link to it in a neighbour's place: that one's link goes now. Our list
            // without it tells it so at once (a closing link is not always noticed soon).
            let list: Vec<PeerId> = self.up.keys().filter(|p| **p != before).cloned().collect();
            self.outputs.push_back(RelayOutput::Send {
                peer: before.clone(),
                msg: RelayMsg::Neighbours(list),
            });
            self.shunned
                .insert(before.clone(), self.now + self.config.refresh * 4);
            self.drop_link(&before);
        }
        if ours || self.told.contains_key(&peer) {
            // A link our application asked for: the target says what we let go for it.
            self.make_room_for(&peer);
        } else if self.over_bound() {
            match room {
                Some(Room::Swap { drop, partner }) if self.up.contains_key(&drop) => {
                    // The asker lets its link go to `partner` as agreed.
                    self.let_go(&drop, Some(partner), None);
                }
                _ if self.drop_redundant(&peer) => {}
                Some(Room::LetGo(b)) if self.up.contains_key(&b) => self.let_go(&b, None, None),
                _ if lone => {
                    // The one we let go links to the newcomer in our place, so the network
                    // stays connected; but the newcomer may have taken links since it
                    // asked, and have no room left: its neighbours say.
                    let until = self.now + self.config.ack_timeout;
                    self.splicing.insert(peer.clone(), until);
                }
                _ => {
                    if let Some(evict) = self.link_to_let_go(&peer) {
                        self.let_go(&evict, None, None);
                    }
                }
            }
        }
        self.changed();
        self.release_held();
    }

    fn on_link_down(&mut self, peer: &PeerId) {
        let asked = self.asked_while_up.remove(peer);
        if let Some((since, again)) = self.offering.get(peer).copied()
            && !again
            && !self.up.contains_key(peer)
            && self.now < since + self.config.ack_timeout
        {
            // Our offer failed at once: the far end may have answered an older one it
            // held. Offered again, once, with what we planned for the link.
            self.offering.insert(peer.clone(), (since, true));
            self.links.handle_input(Input::PeerGone {
                peer: peer.clone(),
                now: self.now,
            });
            self.links.handle_input(Input::PeerAppeared {
                peer: peer.clone(),
                origin: Appearance::Roster,
                now: self.now,
            });
            return;
        }
        if let Some(Asked { degree, app, until }) = asked
            && self.now < until
        {
            // It asked while our end still stood (its own had gone): the link is made
            // again, nothing to mend.
            self.drop_link(peer);
            let app = app.as_ref().map(|(links, way)| (*links, way.as_slice()));
            self.take_request(peer.clone(), degree, app);
        } else if self.leaving.contains_key(peer) {
            // Let go, and linked elsewhere in our place: nothing to mend.
            self.drop_link(peer);
        } else {
            self.repair(peer);
        }
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
        let waited: Vec<PeerId> = self
            .awaiting_room
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(p, _)| p.clone())
            .collect();
        for target in waited {
            self.make_room_for(&target);
        }
        let silent: Vec<PeerId> = self
            .splicing
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(p, _)| p.clone())
            .collect();
        for newcomer in silent {
            self.splice_in(&newcomer, 0);
        }
        let late: Vec<PeerId> = self
            .leaving
            .iter()
            .filter(|(_, l)| now >= l.until)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in late {
            self.leaving_late(&peer);
        }
        self.asked_while_up.retain(|_, a| a.until > now);
        let again: Vec<PeerId> = self
            .splice_again
            .iter()
            .filter(|(p, (at, _))| now >= *at && !self.pending.contains_key(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in again {
            if let Some((at, _)) = self.splice_again.get_mut(&peer) {
                *at = now + self.config.refresh * 10;
            }
            if self.splice_for.contains_key(&peer) {
                self.ask_via(peer, true, false);
            }
        }
        self.keep_bound();
        self.release_held();
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
                self.asked_while_up.remove(&peer);
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
                if let Some(w) = self.awaiting_room.values().min() {
                    at = at.min(*w);
                }
                if let Some(w) = self.splicing.values().min() {
                    at = at.min(*w);
                }
                if let Some((w, _)) = self.splice_again.values().min() {
                    at = at.min(*w);
                }
                if let Some(w) = self.leaving.values().map(|l| l.until).min() {
                    at = at.min(w);
                }
                if self.reserve && !self.asking_alone() && self.held_until > self.now {
                    at = at.min(self.held_until);
                }
                if !self.held.is_empty() {
                    at = at.min(self.now + self.config.ack_timeout);
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
