//! The host topology: one peer of the room, the host, links to every other peer; the
//! others link to the host alone and post room messages to it, which it relays (N - 1
//! links in a room of N). docs/overlays/host.md gives the design and its invariants.
//!
//! The seat is the signaling server's ([`HostSeat`]): the first peer takes it, and when
//! its holder goes the server says so to everyone. Every peer then ranks the same
//! candidates (the room's peers but the host that went, by id) and the first claims the
//! seat; the server grants one claim per vacancy, so two claims cannot both win, and a
//! candidate that is gone too is followed, `claim_after` later, by the next.
//!
//! Messages are never lost to a failover: a peer keeps what it posted until the host
//! acknowledges it, and for `keep` after, and posts it all again to the next host; every
//! peer keeps what it delivered for `keep`, and a new host replays that to each peer that
//! syncs with it. Copies stop at each receiver's (origin, sequence) filter.

mod codec;
mod seat;

pub use codec::{HostFrameError, HostMsg};
pub use seat::{Claim, HostSeat};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use plenum_proto::{ChannelName, PeerId};

use crate::{
    Appearance, ConfigError, DropReason, FullMesh, FullMeshConfig, Input, Output, Topology, nonzero,
};

/// Settings of a [`HostNode`]; build with [`HostConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    links: FullMeshConfig,
    claim_after: Duration,
    keep: Duration,
    queue_max: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            links: FullMeshConfig::default(),
            claim_after: Duration::from_secs(1),
            keep: Duration::from_secs(10),
            queue_max: 1024,
        }
    }
}

/// Builder of [`HostConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct HostConfigBuilder(HostConfig);

impl HostConfigBuilder {
    /// How the links are opened, probed and retried.
    pub fn links(mut self, links: FullMeshConfig) -> Self {
        self.0.links = links;
        self
    }
    /// How long the n-th candidate waits, after the (n-1)-th, before it claims a vacant
    /// seat (default 1 s).
    pub fn claim_after(mut self, d: Duration) -> Self {
        self.0.claim_after = d;
        self
    }
    /// How long acknowledged posts and delivered messages are kept to be sent again
    /// after a failover (default 10 s).
    pub fn keep(mut self, d: Duration) -> Self {
        self.0.keep = d;
        self
    }
    /// Most posts waiting for a host; beyond, the oldest is dropped (default 1,024).
    pub fn queue_max(mut self, n: usize) -> Self {
        self.0.queue_max = n;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<HostConfig, ConfigError> {
        nonzero("claim_after", self.0.claim_after)?;
        nonzero("keep", self.0.keep)?;
        if self.0.queue_max == 0 {
            return Err(ConfigError::Inconsistent("queue_max must be at least 1"));
        }
        Ok(self.0)
    }
}

impl HostConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> HostConfigBuilder {
        HostConfigBuilder(Self::default())
    }

    /// The same settings with these links.
    pub fn with_links(mut self, links: FullMeshConfig) -> Self {
        self.links = links;
        self
    }
}

/// What a [`HostNode`] asks of the engine, or tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutput {
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
        /// Why.
        reason: DropReason,
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
        msg: HostMsg,
    },
    /// Ask the signaling server for the vacant seat of `epoch`.
    Claim {
        /// The epoch of the host that went.
        epoch: u64,
    },
    /// A room message reached this peer for the first time.
    Deliver {
        /// The peer that sent it.
        origin: PeerId,
        /// Its channel.
        channel: ChannelName,
        /// The application's bytes.
        data: Vec<u8>,
    },
    /// We are linked to a host and in step with it (or we are the host).
    Host {
        /// The host.
        peer: PeerId,
        /// Whether it is us.
        is_self: bool,
    },
    /// Whether room messages flow now (a host is linked) or wait.
    Synced(bool),
    /// A peer's join data reached us (every peer's, once, in any order).
    InitData {
        /// The peer.
        peer: PeerId,
        /// What it set when joining.
        data: Vec<u8>,
    },
    /// Posts waiting for a host overflowed the queue: the oldest were dropped.
    Overflow {
        /// How many.
        dropped: usize,
    },
    /// Nothing more until this instant (or the next input).
    Timeout(Instant),
}

/// A post of ours: sent to the host until it acknowledges it, kept for `keep` after.
#[derive(Debug, Clone)]
struct Post {
    seq: u64,
    channel: ChannelName,
    data: Vec<u8>,
    /// When the host acknowledged it.
    acked: Option<Instant>,
}

/// A message this peer delivered (or relayed as the host), kept for a new host to replay.
#[derive(Debug, Clone)]
struct Logged {
    at: Instant,
    origin: PeerId,
    seq: u64,
    channel: ChannelName,
    data: Vec<u8>,
}

/// Most delivered messages kept for replay, whatever their age.
const LOG_MAX: usize = 4096;
/// Most bytes of delivered messages kept for replay (a room of large messages keeps
/// fewer of them).
const LOG_BYTES_MAX: usize = 16 << 20;

/// One peer of a host room. Inputs: the roster and link events ([`Input`]), the server's
/// word on the seat ([`on_seat`](Self::on_seat)), messages from linked peers
/// ([`handle_msg`](Self::handle_msg)) and the application's posts
/// ([`post`](Self::post)). Outputs: [`HostOutput`].
#[derive(Debug)]
pub struct HostNode {
    me: PeerId,
    config: HostConfig,
    now: Instant,
    links: FullMesh,
    /// The room's other peers.
    members: BTreeSet<PeerId>,
    /// When each entered the room as far as we know (what we delivered since is replayed
    /// to it when it links to us as the host).
    member_since: HashMap<PeerId, Instant>,
    host: Option<PeerId>,
    epoch: u64,
    /// The host whose seat is vacant (not a candidate).
    went: Option<PeerId>,
    vacant_since: Option<Instant>,
    claims: u32,
    up: BTreeSet<PeerId>,
    /// Peers that said hello to us as their host.
    greeted: BTreeSet<PeerId>,
    synced: bool,
    /// Whether we have been in step with a host of this room (replays are for peers that
    /// were there).
    ever_synced: bool,
    next_seq: u64,
    posts: VecDeque<Post>,
    highest: HashMap<PeerId, u64>,
    log: VecDeque<Logged>,
    log_bytes: usize,
    init: Option<Vec<u8>>,
    inits: BTreeMap<PeerId, Vec<u8>>,
    outputs: VecDeque<HostOutput>,
    refused: u64,
}

impl HostNode {
    /// A peer that has joined a host room and waits for the server's word on the seat.
    /// `first_seq` numbers its first post (take it from a clock that only goes forward, so
    /// that a peer that comes back under the same id is not taken for its copies); `init`
    /// is the join data every peer receives.
    pub fn new(
        me: PeerId,
        config: HostConfig,
        now: Instant,
        seed: u64,
        first_seq: u64,
        init: Option<Vec<u8>>,
    ) -> Self {
        let links = FullMesh::with_seed(config.links.clone(), now, seed);
        let mut inits = BTreeMap::new();
        if let Some(data) = &init {
            inits.insert(me.clone(), data.clone());
        }
        Self {
            me,
            config,
            now,
            links,
            members: BTreeSet::new(),
            member_since: HashMap::new(),
            host: None,
            epoch: 0,
            went: None,
            vacant_since: None,
            claims: 0,
            up: BTreeSet::new(),
            greeted: BTreeSet::new(),
            synced: false,
            ever_synced: false,
            next_seq: first_seq.max(1),
            posts: VecDeque::new(),
            highest: HashMap::new(),
            log: VecDeque::new(),
            log_bytes: 0,
            init,
            inits,
            outputs: VecDeque::new(),
            refused: 0,
        }
    }

    /// The host as far as we know, and its epoch.
    pub fn host(&self) -> (Option<&PeerId>, u64) {
        (self.host.as_ref(), self.epoch)
    }

    /// Whether we are the host.
    pub fn is_host(&self) -> bool {
        self.host.as_ref() == Some(&self.me)
    }

    /// Whether room messages flow (we are the host, or in step with it).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Posts not yet acknowledged by a host.
    pub fn waiting(&self) -> usize {
        self.posts.iter().filter(|p| p.acked.is_none()).count()
    }

    /// Messages from peers refused since start (forged join data, posts to a non-host).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The room's peers as we know them, us included, in id order.
    pub fn members(&self) -> Vec<PeerId> {
        let mut all: Vec<PeerId> = self.members.iter().cloned().collect();
        all.push(self.me.clone());
        all.sort();
        all
    }

    /// The peers we link to, in id order.
    pub fn neighbours(&self) -> Vec<PeerId> {
        self.links.neighbours()
    }

    /// The signaling session started over (a server that restarted numbers its hosts
    /// anew): the next word on the seat is taken whatever its epoch.
    pub fn forget_epoch(&mut self) {
        self.epoch = 0;
    }

    /// The server's word on the seat: `host` holds it at `epoch` (`None`: the holder of
    /// `epoch` went and the seat is vacant). Older epochs are ignored.
    pub fn on_seat(&mut self, host: Option<PeerId>, epoch: u64, now: Instant) {
        self.now = self.now.max(now);
        if epoch < self.epoch {
            return;
        }
        self.epoch = epoch;
        if host.is_some() && host == self.host {
            // The same holder (again, or under a restarted server's numbering).
            return;
        }
        let before = self.host.take();
        match host {
            Some(h) if h == self.me => {
                self.host = Some(h);
                self.vacant_since = None;
                self.crowned();
            }
            Some(h) => {
                self.host = Some(h.clone());
                self.vacant_since = None;
                self.unsync();
                if before.as_ref() != Some(&h) {
                    self.relink(Some(h.clone()));
                }
                // A link to it that is open already: hello at once.
                if self.up.contains(&h) {
                    self.link_up(h);
                }
            }
            None => {
                self.went = before.or(self.went.take());
                self.vacant_since = Some(self.now);
                self.claims = 0;
                self.unsync();
                self.relink(None);
            }
        }
    }

    /// We hold the seat: link everyone, and relay what we posted to the host before.
    fn crowned(&mut self) {
        let me = self.me.clone();
        self.greeted.clear();
        let now = self.now;
        let linked = self.links.neighbours();
        for peer in self.members.clone() {
            if linked.contains(&peer) {
                continue;
            }
            // They offer: every one of them links to the new host at once.
            self.links.handle_input(Input::PeerAppeared {
                peer,
                origin: Appearance::Joined,
                now,
            });
        }
        self.synced = true;
        self.ever_synced = true;
        self.outputs.push_back(HostOutput::Host {
            peer: me.clone(),
            is_self: true,
        });
        self.outputs.push_back(HostOutput::Synced(true));
        for post in std::mem::take(&mut self.posts) {
            self.accept(&me, post.seq, post.channel, post.data);
        }
    }

    /// Links only to `host` (none: to nobody).
    fn relink(&mut self, host: Option<PeerId>) {
        let now = self.now;
        for peer in self.links.neighbours() {
            if Some(&peer) != host.as_ref() {
                self.up.remove(&peer);
                self.links.handle_input(Input::PeerGone { peer, now });
            }
        }
        self.greeted.clear();
        if let Some(h) = host
            && !self.links.neighbours().contains(&h)
        {
            self.links.handle_input(Input::PeerAppeared {
                peer: h,
                origin: Appearance::Roster,
                now,
            });
        }
    }

    fn unsync(&mut self) {
        if self.synced {
            self.synced = false;
            self.outputs.push_back(HostOutput::Synced(false));
        }
    }

    /// The application sends a room message.
    pub fn post(&mut self, channel: ChannelName, data: Vec<u8>, now: Instant) {
        self.now = self.now.max(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.is_host() {
            let me = self.me.clone();
            self.accept(&me, seq, channel, data);
            return;
        }
        let post = Post {
            seq,
            channel,
            data,
            acked: None,
        };
        if self.synced
            && let Some(host) = self.host.clone()
        {
            self.send(&host, post_msg(&post));
        }
        self.posts.push_back(post);
        let waiting = self.waiting();
        if waiting > self.config.queue_max {
            if let Some(i) = self.posts.iter().position(|p| p.acked.is_none()) {
                self.posts.remove(i);
            }
            self.outputs.push_back(HostOutput::Overflow { dropped: 1 });
        }
    }

    /// As the host: a post from `origin` (or our own): delivered and relayed if new,
    /// acknowledged either way.
    fn accept(&mut self, origin: &PeerId, seq: u64, channel: ChannelName, data: Vec<u8>) {
        if self.take(origin, seq, &channel, &data) {
            let relay = HostMsg::Relay {
                origin: origin.clone(),
                seq,
                channel,
                data,
            };
            // To the peers that said hello: one that has not yet gets this in the replay
            // at its hello, in order with what came before.
            for peer in self.greeted.clone() {
                if peer != *origin {
                    self.send(&peer, relay.clone());
                }
            }
        }
        if *origin != self.me {
            self.send(origin, HostMsg::Ack { seq });
        }
    }

    /// A message from `origin`: if it is above the highest we have from it, it is kept
    /// for replay and delivered (unless it is ours), and true is returned; a copy, false.
    fn take(&mut self, origin: &PeerId, seq: u64, channel: &ChannelName, data: &[u8]) -> bool {
        if self.highest.get(origin).is_some_and(|h| seq <= *h) {
            return false;
        }
        self.highest.insert(origin.clone(), seq);
        self.remember(origin.clone(), seq, channel.clone(), data.to_vec());
        if *origin != self.me {
            self.outputs.push_back(HostOutput::Deliver {
                origin: origin.clone(),
                channel: channel.clone(),
                data: data.to_vec(),
            });
        }
        true
    }

    fn remember(&mut self, origin: PeerId, seq: u64, channel: ChannelName, data: Vec<u8>) {
        self.log_bytes += data.len();
        self.log.push_back(Logged {
            at: self.now,
            origin,
            seq,
            channel,
            data,
        });
        while self.log.len() > LOG_MAX || self.log_bytes > LOG_BYTES_MAX {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(l) = self.log.pop_front() {
            self.log_bytes -= l.data.len();
        }
    }

    fn expire(&mut self) {
        let keep = self.config.keep;
        let now = self.now;
        while self.log.front().is_some_and(|l| l.at + keep <= now) {
            self.forget_oldest();
        }
        // Acknowledged posts are kept for `keep`, and never more than the queue holds.
        let most = 2 * self.config.queue_max;
        while self.posts.front().is_some_and(|p| {
            p.acked
                .is_some_and(|at| at + keep <= now || self.posts.len() > most)
        }) {
            self.posts.pop_front();
        }
    }

    fn send(&mut self, peer: &PeerId, msg: HostMsg) {
        if self.up.contains(peer) {
            self.outputs.push_back(HostOutput::Send {
                peer: peer.clone(),
                msg,
            });
        }
    }

    /// A message from a linked peer.
    pub fn handle_msg(&mut self, from: PeerId, msg: HostMsg, now: Instant) {
        self.now = self.now.max(now);
        self.links.handle_input(Input::Heard {
            peer: from.clone(),
            now,
        });
        match msg {
            HostMsg::Hello { fresh } => self.on_hello(from, fresh),
            HostMsg::Init { peer, data } => self.on_init(from, peer, data),
            HostMsg::Synced { epoch } => self.on_synced(from, epoch),
            HostMsg::Post { seq, channel, data } => {
                if self.is_host() && self.greeted.contains(&from) {
                    self.accept(&from, seq, channel, data);
                } else {
                    // It will post again to whoever holds the seat.
                    self.refused += 1;
                    tracing::debug!(peer = from.short(), "post to a peer that is not the host");
                }
            }
            HostMsg::Relay {
                origin,
                seq,
                channel,
                data,
            } => {
                if origin != self.me {
                    self.take(&origin, seq, &channel, &data);
                }
            }
            HostMsg::Ack { seq } => {
                if Some(&from) == self.host.as_ref() {
                    let now = self.now;
                    for p in self.posts.iter_mut().filter(|p| p.seq <= seq) {
                        p.acked.get_or_insert(now);
                    }
                }
            }
        }
        self.expire();
    }

    /// As the host: a peer says hello; it gets every join data we know, what we delivered
    /// lately, and the word that it is in step.
    fn on_hello(&mut self, from: PeerId, fresh: bool) {
        if !self.is_host() {
            self.refused += 1;
            tracing::debug!(peer = from.short(), "hello to a peer that is not the host");
            return;
        }
        self.greeted.insert(from.clone());
        let inits: Vec<(PeerId, Vec<u8>)> = self
            .inits
            .iter()
            .filter(|(p, _)| **p != from)
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect();
        for (peer, data) in inits {
            self.send(&from, HostMsg::Init { peer, data });
        }
        // What we delivered since it entered the room (all we keep, if it was in step
        // with a host before): posts it may have missed while it linked or while the
        // room had no host.
        self.expire();
        let since = fresh.then(|| self.member_since.get(&from).copied().unwrap_or(self.now));
        let replay: Vec<HostMsg> = self
            .log
            .iter()
            .filter(|l| l.origin != from && since.is_none_or(|s| l.at >= s))
            .map(|l| HostMsg::Relay {
                origin: l.origin.clone(),
                seq: l.seq,
                channel: l.channel.clone(),
                data: l.data.clone(),
            })
            .collect();
        for msg in replay {
            self.send(&from, msg);
        }
        let epoch = self.epoch;
        self.send(&from, HostMsg::Synced { epoch });
    }

    /// Join data: a peer's own from the peer itself (the host passes it on), or any
    /// peer's from the host.
    fn on_init(&mut self, from: PeerId, peer: PeerId, data: Vec<u8>) {
        let from_host = self.host.as_ref() == Some(&from);
        if peer != from && !from_host {
            self.refused += 1;
            tracing::warn!(
                from = from.short(),
                peer = peer.short(),
                "join data for another peer from a peer that is not the host; dropped"
            );
            return;
        }
        if peer == self.me {
            return;
        }
        if self.inits.get(&peer) != Some(&data) {
            self.inits.insert(peer.clone(), data.clone());
            self.outputs.push_back(HostOutput::InitData {
                peer: peer.clone(),
                data: data.clone(),
            });
        }
        if self.is_host() && peer == from {
            for other in self.up.clone() {
                if other != from {
                    self.send(
                        &other,
                        HostMsg::Init {
                            peer: peer.clone(),
                            data: data.clone(),
                        },
                    );
                }
            }
        }
    }

    /// The host says we are in step: what we posted and it has not acknowledged, and what
    /// the host before may have lost, goes to it now.
    fn on_synced(&mut self, from: PeerId, epoch: u64) {
        if self.host.as_ref() != Some(&from) || epoch != self.epoch || self.synced {
            return;
        }
        self.synced = true;
        self.ever_synced = true;
        self.outputs.push_back(HostOutput::Host {
            peer: from.clone(),
            is_self: false,
        });
        self.outputs.push_back(HostOutput::Synced(true));
        let posts: Vec<HostMsg> = self.posts.iter().map(post_msg).collect();
        for msg in posts {
            self.send(&from, msg);
        }
    }

    fn link_up(&mut self, peer: PeerId) {
        self.up.insert(peer.clone());
        if self.host.as_ref() == Some(&peer) && !self.is_host() {
            let fresh = !self.ever_synced;
            self.send(&peer, HostMsg::Hello { fresh });
            if let Some(data) = self.init.clone() {
                let me = self.me.clone();
                self.send(&peer, HostMsg::Init { peer: me, data });
            }
        }
    }

    fn link_down(&mut self, peer: &PeerId) {
        self.up.remove(peer);
        self.greeted.remove(peer);
        if self.host.as_ref() == Some(peer) && !self.is_host() {
            self.unsync();
        }
    }

    /// When the next candidate claims a vacant seat, if we are one.
    fn claim_at(&self) -> Option<Instant> {
        let since = self.vacant_since?;
        let mut candidates: Vec<&PeerId> = self
            .members
            .iter()
            .chain(std::iter::once(&self.me))
            .filter(|p| Some(*p) != self.went.as_ref())
            .collect();
        candidates.sort();
        let rank = candidates.iter().position(|p| **p == self.me)? as u32;
        let n = candidates.len() as u32;
        // Round after round, each candidate in turn: one that is gone too is followed by
        // the next, and a claim lost on the way is made again.
        Some(since + self.config.claim_after * (rank + self.claims * n))
    }

    fn tick(&mut self) {
        if let Some(at) = self.claim_at()
            && self.now >= at
        {
            self.claims += 1;
            self.outputs
                .push_back(HostOutput::Claim { epoch: self.epoch });
        }
        self.expire();
    }

    /// Consumes one input: the roster, links and time.
    pub fn handle_input(&mut self, input: Input) {
        match &input {
            Input::PeerAppeared { peer, now, .. } => {
                self.now = self.now.max(*now);
                if *peer == self.me || !self.members.insert(peer.clone()) {
                    return;
                }
                self.member_since.insert(peer.clone(), *now);
                if self.is_host() {
                    self.links.handle_input(Input::PeerAppeared {
                        peer: peer.clone(),
                        origin: Appearance::Joined,
                        now: *now,
                    });
                } else if self.host.as_ref() == Some(peer) {
                    self.relink(Some(peer.clone()));
                }
                return;
            }
            Input::PeerGone { peer, now } => {
                self.now = self.now.max(*now);
                self.members.remove(peer);
                self.member_since.remove(peer);
                self.inits.remove(peer);
                self.link_down(peer);
            }
            Input::LinkUp { peer, now } => {
                self.now = self.now.max(*now);
                if self.links.neighbours().contains(peer) {
                    self.link_up(peer.clone());
                }
            }
            Input::LinkDown { peer, now } => {
                self.now = self.now.max(*now);
                self.link_down(peer);
            }
            Input::Heard { now, .. } | Input::Tick { now } => self.now = self.now.max(*now),
            // Plans, frames and broadcasts belong to other overlays.
            Input::Plan { .. } | Input::Frame { .. } | Input::Broadcast { .. } => return,
        }
        let tick = matches!(input, Input::Tick { .. });
        self.links.handle_input(input);
        if tick {
            self.tick();
        }
    }

    /// The next output; the last one of a drain is always [`HostOutput::Timeout`].
    pub fn poll_output(&mut self) -> HostOutput {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        match self.links.poll_output() {
            Output::Connect { peer, initiate } => HostOutput::Connect { peer, initiate },
            Output::Disconnect { peer, reason } => {
                if reason != DropReason::Left {
                    self.link_down(&peer);
                }
                HostOutput::Disconnect { peer, reason }
            }
            Output::Heartbeat { peer } => HostOutput::Heartbeat { peer },
            Output::Timeout(at) => {
                let at = self.claim_at().map_or(at, |c| c.min(at));
                let at = self
                    .log
                    .front()
                    .map_or(at, |l| at.min(l.at + self.config.keep));
                HostOutput::Timeout(at.max(self.now))
            }
            // A full mesh over our links sends no frames and delivers nothing.
            _ => self.poll_output(),
        }
    }
}

fn post_msg(post: &Post) -> HostMsg {
    HostMsg::Post {
        seq: post.seq,
        channel: post.channel.clone(),
        data: post.data.clone(),
    }
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
