//! Host rooms on the virtual clock: [`HostNode`] peers and the server's [`HostSeat`], with
//! seeded latency, hosts that die (the server sees the connection end; the peers' links
//! go quiet later), claims made by several peers at once, and posts throughout. The run
//! checks what the host topology promises: never two hosts at a time, one agreed host at
//! the end, and every post of a peer that stayed delivered exactly once to every other
//! peer that stayed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use plenum_overlay::{
    Appearance, Claim, HostConfig, HostMsg, HostNode, HostOutput, HostSeat, Input,
};
use plenum_proto::{ChannelName, PeerId};

/// What a host room run does.
#[derive(Debug, Clone)]
pub struct HostSimConfig {
    /// Peers in the room.
    pub peers: usize,
    /// Hosts that die, one after another (each the host of its time).
    pub deaths: usize,
    /// Seconds between deaths.
    pub death_every_s: u64,
    /// Whether every survivor claims at once when the seat is vacant (not only the first
    /// candidate): the server must still seat one.
    pub all_claim: bool,
    /// Posts, from random live peers, spread over the run.
    pub posts: usize,
    /// The seed of every random choice.
    pub seed: u64,
}

impl HostSimConfig {
    /// A room of `peers` whose host dies `deaths` times.
    pub fn new(peers: usize, deaths: usize, seed: u64) -> Self {
        Self {
            peers,
            deaths,
            death_every_s: 4,
            all_claim: false,
            posts: 40,
            seed,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSimReport {
    /// Each grant of the seat: (epoch, peer index).
    pub grants: Vec<(u64, usize)>,
    /// The most live peers that held themselves the host at one instant.
    pub max_hosts_at_once: usize,
    /// Whether, at the end, every live peer names the same live host and is in step.
    pub agreed: bool,
    /// Posts by peers that stayed, expected at every other peer that stayed.
    pub expected: usize,
    /// Of those, delivered (once or more).
    pub delivered: usize,
    /// Deliveries beyond the first.
    pub duplicates: usize,
    /// Virtual milliseconds from each death to the last survivor in step again.
    pub failover_ms: Vec<u64>,
    /// The first few posts missing: (origin, post number, receiver).
    pub missing: Vec<(usize, u64, usize)>,
}

#[derive(Debug)]
enum Event {
    /// A message between peers arrives.
    Msg {
        to: usize,
        from: usize,
        msg: HostMsg,
    },
    /// A liveness probe arrives.
    Heard { to: usize, from: usize },
    /// The server's word on the seat arrives at a peer.
    Seat {
        to: usize,
        host: Option<usize>,
        epoch: u64,
    },
    /// A claim arrives at the server.
    Claim { from: usize, epoch: u64 },
    /// The server sees a dead peer's connection end.
    Closed { peer: usize },
    /// The server gives a dead peer up (its resume grace ended): everyone hears it left.
    Gone { peer: usize },
    /// A link both ends asked for opens.
    LinkUp { a: usize, b: usize },
    /// A link to a dead peer is noticed down.
    LinkDown { at: usize, peer: usize },
    /// The host of the moment dies.
    Kill,
    /// A peer's timer.
    Tick { peer: usize },
    /// A random live peer posts.
    Post { n: u64 },
}

struct Sim {
    origin: Instant,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: Vec<Option<Event>>,
    rng: u64,
    ids: Vec<PeerId>,
    index: BTreeMap<PeerId, usize>,
    nodes: Vec<HostNode>,
    alive: Vec<bool>,
    /// One-way delay of each peer to the core.
    delay: Vec<Duration>,
    seat: HostSeat,
    holder: Option<usize>,
    wants: BTreeSet<(usize, usize)>,
    up: BTreeSet<(usize, usize)>,
    /// Next tick already queued for each peer.
    ticks: Vec<Option<Duration>>,
    report: HostSimReport,
    /// (origin, nonce) -> receivers.
    got: BTreeMap<(usize, u64), Vec<usize>>,
    posted: Vec<(usize, u64)>,
    died_at: Vec<Duration>,
    all_claim: bool,
    /// When the last message on each directed link arrives: a data channel is ordered.
    last_arrival: BTreeMap<(usize, usize), Duration>,
}

const LINK_SETUP: Duration = Duration::from_millis(60);
const LINK_DOWN_AFTER: Duration = Duration::from_millis(1500);
const RESUME_GRACE: Duration = Duration::from_secs(15);

impl Sim {
    fn random(&mut self) -> u64 {
        plenum_overlay::splitmix64(&mut self.rng)
    }

    fn at(&self, d: Duration) -> Instant {
        self.origin + d
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        let id = self.events.len();
        self.events.push(Some(event));
        self.queue.push(Reverse((self.now + after, id as u64, id)));
    }

    fn hop(&mut self, a: usize, b: usize) -> Duration {
        let jitter = Duration::from_micros(self.random() % 3000);
        self.delay[a] + self.delay[b] + jitter
    }

    /// The delay of the next message from `a` to `b`, after the last one on that link.
    fn in_order(&mut self, a: usize, b: usize) -> Duration {
        let at = (self.now + self.hop(a, b))
            .max(self.last_arrival.get(&(a, b)).copied().unwrap_or_default());
        self.last_arrival.insert((a, b), at);
        at - self.now
    }

    fn server_delay(&mut self, a: usize) -> Duration {
        self.delay[a] + Duration::from_micros(self.random() % 1000)
    }

    fn tell_seat(&mut self, to: usize) {
        let (holder, epoch) = self.seat.holder();
        let host = holder.and_then(|h| self.index.get(h).copied());
        let after = self.server_delay(to);
        self.schedule(after, Event::Seat { to, host, epoch });
    }

    fn tell_seat_to_all(&mut self) {
        for p in 0..self.nodes.len() {
            if self.alive[p] {
                self.tell_seat(p);
            }
        }
    }

    fn drain(&mut self, p: usize) {
        loop {
            if !self.alive[p] {
                return;
            }
            match self.nodes[p].poll_output() {
                HostOutput::Timeout(at) => {
                    let at = at.saturating_duration_since(self.origin).max(self.now);
                    if self.ticks[p].is_none_or(|t| at < t || t < self.now) {
                        self.ticks[p] = Some(at);
                        let after = at - self.now;
                        self.schedule(after, Event::Tick { peer: p });
                    }
                    return;
                }
                HostOutput::Connect { peer, .. } => {
                    let q = self.index[&peer];
                    self.wants.insert((p, q));
                    if self.wants.contains(&(q, p)) && self.alive[q] {
                        let after = LINK_SETUP + self.hop(p, q);
                        self.schedule(after, Event::LinkUp { a: p, b: q });
                    }
                }
                HostOutput::Disconnect { peer, .. } => {
                    let q = self.index[&peer];
                    self.wants.remove(&(p, q));
                    if self.up.remove(&pair(p, q)) && self.alive[q] {
                        let now = self.at(self.now);
                        self.nodes[q].handle_input(Input::LinkDown {
                            peer: self.ids[p].clone(),
                            now,
                        });
                        self.drain(q);
                    }
                }
                HostOutput::Synced(_) | HostOutput::InitData { .. } => {}
                HostOutput::Heartbeat { peer } => {
                    let q = self.index[&peer];
                    let after = self.in_order(p, q);
                    self.schedule(after, Event::Heard { to: q, from: p });
                }
                HostOutput::Send { peer, msg } => {
                    let q = self.index[&peer];
                    let after = self.in_order(p, q);
                    self.schedule(
                        after,
                        Event::Msg {
                            to: q,
                            from: p,
                            msg,
                        },
                    );
                }
                HostOutput::Claim { epoch } => {
                    let after = self.server_delay(p);
                    self.schedule(after, Event::Claim { from: p, epoch });
                }
                HostOutput::Deliver { origin, data, .. } => {
                    let o = self.index[&origin];
                    let nonce = u64::from_be_bytes(data.try_into().unwrap_or_default());
                    self.got.entry((o, nonce)).or_default().push(p);
                }
                HostOutput::Host { .. } | HostOutput::Overflow { .. } => {}
            }
        }
    }

    fn hosts_now(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&p| self.alive[p] && self.nodes[p].is_host())
            .count()
    }

    fn handle(&mut self, event: Event) {
        let now = self.at(self.now);
        let touched: Vec<usize> = match event {
            Event::Msg { to, from, msg } => {
                if !self.alive[to] || !self.up.contains(&pair(to, from)) {
                    return;
                }
                // Through the wire codec, as in the engine.
                let Ok(msg) = HostMsg::from_envelope(&msg.to_envelope()) else {
                    return;
                };
                self.nodes[to].handle_msg(self.ids[from].clone(), msg, now);
                vec![to]
            }
            Event::Heard { to, from } => {
                if !self.alive[to] || !self.up.contains(&pair(to, from)) {
                    return;
                }
                self.nodes[to].handle_input(Input::Heard {
                    peer: self.ids[from].clone(),
                    now,
                });
                vec![to]
            }
            Event::Seat { to, host, epoch } => {
                if !self.alive[to] {
                    return;
                }
                let host = host.map(|h| self.ids[h].clone());
                self.nodes[to].on_seat(host, epoch, now);
                if self.all_claim && self.seat.holder().0.is_none() {
                    // Everyone claims at once, as peers whose rosters differ might.
                    let after = self.server_delay(to);
                    self.schedule(after, Event::Claim { from: to, epoch });
                }
                vec![to]
            }
            Event::Claim { from, epoch } => {
                if !self.alive[from] {
                    return;
                }
                match self.seat.claim(&self.ids[from], epoch) {
                    Claim::Granted(e) => {
                        self.holder = Some(from);
                        self.report.grants.push((e, from));
                        self.tell_seat_to_all();
                    }
                    Claim::Refused { .. } => self.tell_seat(from),
                }
                return;
            }
            Event::Gone { peer } => {
                let id = self.ids[peer].clone();
                let live: Vec<usize> = (0..self.nodes.len()).filter(|&p| self.alive[p]).collect();
                for &p in &live {
                    self.nodes[p].handle_input(Input::PeerGone {
                        peer: id.clone(),
                        now,
                    });
                }
                live
            }
            Event::LinkUp { a, b } => {
                if !self.alive[a]
                    || !self.alive[b]
                    || !self.wants.contains(&(a, b))
                    || !self.wants.contains(&(b, a))
                {
                    return;
                }
                if !self.up.insert(pair(a, b)) {
                    return;
                }
                for (x, y) in [(a, b), (b, a)] {
                    self.nodes[x].handle_input(Input::LinkUp {
                        peer: self.ids[y].clone(),
                        now,
                    });
                }
                vec![a, b]
            }
            Event::LinkDown { at, peer } => {
                if !self.alive[at] || !self.up.remove(&pair(at, peer)) {
                    return;
                }
                self.nodes[at].handle_input(Input::LinkDown {
                    peer: self.ids[peer].clone(),
                    now,
                });
                vec![at]
            }
            Event::Kill => {
                let Some(h) = self.holder.take() else {
                    return;
                };
                self.alive[h] = false;
                self.died_at.push(self.now);
                for q in 0..self.nodes.len() {
                    if q != h && self.up.contains(&pair(h, q)) {
                        self.schedule(LINK_DOWN_AFTER, Event::LinkDown { at: q, peer: h });
                    }
                }
                // The server sees the connection end at once and vacates the seat.
                let after = self.server_delay(h);
                self.schedule(after, Event::Closed { peer: h });
                self.schedule(RESUME_GRACE, Event::Gone { peer: h });
                return;
            }
            Event::Closed { peer } => {
                if self.seat.vacate(&self.ids[peer]) {
                    self.tell_seat_to_all();
                }
                return;
            }
            Event::Tick { peer } => {
                if !self.alive[peer] || self.ticks[peer] != Some(self.now) {
                    return;
                }
                self.ticks[peer] = None;
                self.nodes[peer].handle_input(Input::Tick { now });
                vec![peer]
            }
            Event::Post { n } => {
                let live: Vec<usize> = (0..self.nodes.len()).filter(|&p| self.alive[p]).collect();
                let p = live[(self.random() % live.len() as u64) as usize];
                let channel = ChannelName::new("chat").unwrap_or_else(|_| unreachable!());
                self.nodes[p].post(channel, n.to_be_bytes().to_vec(), now);
                self.posted.push((p, n));
                vec![p]
            }
        };
        for p in touched {
            self.drain(p);
        }
        self.report.max_hosts_at_once = self.report.max_hosts_at_once.max(self.hosts_now());
    }
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// Runs a host room as `config` says.
pub fn simulate_host(config: &HostSimConfig) -> HostSimReport {
    let n = config.peers.max(2);
    let mut rng = config.seed;
    let ids: Vec<PeerId> = (0..n)
        .map(|i| {
            let tag = plenum_overlay::splitmix64(&mut rng);
            PeerId::new(format!("{tag:016x}{i:04x}")).unwrap_or_else(|_| unreachable!())
        })
        .collect();
    let origin = Instant::now();
    let delay: Vec<Duration> = (0..n)
        .map(|_| Duration::from_millis(5 + plenum_overlay::splitmix64(&mut rng) % 36))
        .collect();
    let config_node = HostConfig::default();
    let nodes: Vec<HostNode> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| HostNode::new(id.clone(), config_node.clone(), origin, i as u64, 1, None))
        .collect();
    let mut sim = Sim {
        origin,
        now: Duration::ZERO,
        queue: BinaryHeap::new(),
        events: Vec::new(),
        rng,
        index: ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect(),
        ids,
        nodes,
        alive: vec![true; n],
        delay,
        seat: HostSeat::new(),
        holder: None,
        wants: BTreeSet::new(),
        up: BTreeSet::new(),
        ticks: vec![None; n],
        report: HostSimReport {
            grants: Vec::new(),
            max_hosts_at_once: 0,
            agreed: false,
            expected: 0,
            delivered: 0,
            duplicates: 0,
            failover_ms: Vec::new(),
            missing: Vec::new(),
        },
        got: BTreeMap::new(),
        posted: Vec::new(),
        died_at: Vec::new(),
        all_claim: config.all_claim,
        last_arrival: BTreeMap::new(),
    };
    // Everyone joins at once; the first peer takes the seat.
    for p in 0..n {
        for q in 0..n {
            if p != q {
                let origin = if q < p {
                    Appearance::Roster
                } else {
                    Appearance::Joined
                };
                let peer = sim.ids[q].clone();
                sim.nodes[p].handle_input(Input::PeerAppeared {
                    peer,
                    origin,
                    now: sim.origin,
                });
            }
        }
        if sim.seat.joined(&sim.ids[p]).is_some() {
            sim.holder = Some(p);
            sim.report.grants.push((1, p));
        }
        sim.tell_seat(p);
    }
    let every = Duration::from_secs(config.death_every_s.max(1));
    for d in 1..=config.deaths.min(n - 1) {
        sim.schedule(every * d as u32, Event::Kill);
    }
    let span = every * (config.deaths as u32 + 1);
    for i in 0..config.posts {
        let at = Duration::from_millis(sim.random() % span.as_millis().max(1) as u64);
        sim.schedule(at, Event::Post { n: i as u64 });
    }
    let end = span + Duration::from_secs(10);
    let mut resynced: BTreeMap<usize, Duration> = BTreeMap::new();
    while let Some(Reverse((at, _, id))) = sim.queue.pop() {
        if at > end {
            break;
        }
        sim.now = at;
        if let Some(event) = sim.events[id].take() {
            sim.handle(event);
        }
        // Failover: from each death to the moment every survivor is in step with the
        // new host.
        if let (Some(&died), Some(h)) = (sim.died_at.last(), sim.holder) {
            let k = sim.died_at.len() - 1;
            let host = &sim.ids[h];
            let all = (0..n)
                .filter(|&p| sim.alive[p])
                .all(|p| sim.nodes[p].synced() && sim.nodes[p].host().0 == Some(host));
            if all && !resynced.contains_key(&k) {
                resynced.insert(k, sim.now - died);
            }
        }
    }
    sim.report.failover_ms = resynced.values().map(|d| d.as_millis() as u64).collect();
    let live: Vec<usize> = (0..n).filter(|&p| sim.alive[p]).collect();
    let hosts: BTreeSet<Option<&PeerId>> = live.iter().map(|&p| sim.nodes[p].host().0).collect();
    sim.report.agreed = hosts.len() == 1
        && hosts
            .iter()
            .next()
            .and_then(|h| *h)
            .is_some_and(|h| sim.alive[sim.index[h]])
        && live.iter().all(|&p| sim.nodes[p].synced());
    for &(o, nonce) in &sim.posted {
        if !sim.alive[o] {
            continue;
        }
        let got = sim.got.get(&(o, nonce)).cloned().unwrap_or_default();
        for &r in &live {
            if r == o {
                continue;
            }
            sim.report.expected += 1;
            let copies = got.iter().filter(|&&x| x == r).count();
            if copies > 0 {
                sim.report.delivered += 1;
                sim.report.duplicates += copies - 1;
            } else if sim.report.missing.len() < 8 {
                sim.report.missing.push((o, nonce, r));
            }
        }
    }
    sim.report
}
