//! A deterministic simulator of Plenum's overlays: many peers, each running the same
//! sans-IO topology the engine runs, in one process on a virtual clock, with a simulated
//! signaling server (the same [`CellDirectory`] `plenum serve` runs), seeded latency,
//! jitter, loss and churn. Two runs with the same [`SimConfig`] print the same figures.
//!
//! ```
//! use plenum_sim::{SimConfig, Topology, simulate};
//!
//! let report = simulate(&SimConfig {
//!     peers: 60,
//!     broadcasts: 5,
//!     ..SimConfig::new(Topology::cells(Some(8)), 1)
//! })
//! .unwrap();
//! assert_eq!(report.delivery_ratio, 1.0);
//! ```
//!
//! # Model
//! - Each peer has a one-way delay to the network's core, drawn from the seed (5 to 40 ms);
//!   a message between two peers takes the sum of theirs plus up to 5 ms of jitter. The
//!   signaling server sits at the core.
//! - A link opens when both ends asked for it, after an offer and an answer through the
//!   server and two round trips (ICE and DTLS).
//! - `loss_pct` drops that share of overlay messages (broadcast frames and probes).
//! - Churn replaces `churn_pct_per_min` of the peers per simulated minute while the
//!   broadcasts go out: half leave cleanly (the server and their links know at once), half
//!   vanish (their links go silent; the server gives them up after its 15 s resume grace).
//! - Broadcasts start once every link is open (or 120 s after the last join), each from a
//!   random live peer: 100 ms apart, or spread over one simulated minute under churn. A broadcast is expected at every
//!   other peer that was in the room from 10 s before it until 10 s after it.
//! - Links are probed every 5 s and dropped after 15 s of silence (the engine uses 1 s and
//!   6 s; the longer period keeps 10,000-peer runs fast and does not change what a
//!   broadcast meets).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod host;
pub use host::{HostSimConfig, HostSimReport, simulate_host};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use plenum_overlay::{
    Addressee, Appearance, CellDirectory, CellDirectoryConfig, CellMesh, CellMeshConfig, FullMesh,
    FullMeshConfig, Input, MeshFrame, Output, RelayConfig, RelayMsg, RelayNode, RelayOutput,
    RouteKind, Topology as _, TreeConfig, TreeMsg, TreeNode, TreeOutput,
};
use plenum_proto::overlay::{CellPlan, TopologySpec};
use plenum_proto::signal::PeerSummary;
use plenum_proto::{DisplayName, PeerId};

/// Which overlay the simulated room runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// Every peer links to every other.
    Mesh,
    /// The cellular mesh with these options.
    Cells(CellDirectoryConfig),
    /// The broadcast tree with these options; the first peer is the root.
    Tree(TreeConfig),
    /// The relay network with these options. Its "broadcasts" are unicasts: each from a
    /// random live peer to another, delivered to that one only.
    Relay(RelayConfig),
}

impl Topology {
    /// Cells of at most `cell_size` peers (`None`: automatic), other options at defaults.
    pub fn cells(cell_size: Option<u16>) -> Self {
        let spec = TopologySpec::cells(cell_size);
        match CellDirectoryConfig::from_spec(&spec) {
            Ok(Some(config)) => Self::Cells(config),
            _ => Self::Cells(CellDirectoryConfig::default()),
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The overlay.
    pub topology: Topology,
    /// Peers in the room.
    pub peers: usize,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Percent of the peers replaced per simulated minute during the broadcasts.
    pub churn_pct_per_min: f64,
    /// Percent of overlay messages dropped.
    pub loss_pct: f64,
    /// Broadcasts sent.
    pub broadcasts: usize,
    /// Time between two initial joins.
    pub join_interval: Duration,
    /// Peers that vanish at once when the room first converges; broadcasts wait until it
    /// has converged again without them.
    pub failure: Option<Failure>,
}

/// Peers that vanish together (crash: no goodbye), to watch the room repair itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// One peer that holds a bridge link.
    Bridge,
    /// Every peer of one cell.
    Cell,
    /// A tree's root: the server crowns a standby once the root's seat is given up.
    Root,
}

impl SimConfig {
    /// `peers` = 100, no churn, no loss, 10 broadcasts, a join every 2 ms.
    pub fn new(topology: Topology, seed: u64) -> Self {
        Self {
            topology,
            peers: 100,
            seed,
            churn_pct_per_min: 0.0,
            loss_pct: 0.0,
            broadcasts: 10,
            join_interval: Duration::from_millis(2),
            failure: None,
        }
    }
}

/// Why a simulation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Too few peers to say anything.
    #[error("a simulation needs at least 2 peers")]
    TooFewPeers,
    /// A full mesh of this many peers holds too many links to simulate.
    #[error(
        "a full mesh of {0} peers holds {1} links; the simulator takes at most 2,000 mesh peers"
    )]
    MeshTooLarge(usize, usize),
    /// A percentage outside 0..=100.
    #[error("{0} must be between 0 and 100")]
    Percent(&'static str),
}

/// What a simulation measured. Times are virtual except `wall_ms`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimReport {
    /// `mesh` or `cells`.
    pub topology: &'static str,
    /// Peers in the room.
    pub peers: usize,
    /// The seed.
    pub seed: u64,
    /// The deepest node of a tree (trees only).
    pub depth_max: Option<u32>,
    /// Trees only: orphaned subtrees that found a new parent, and the time each took,
    /// from its parent's leaving (detection included) to the new parent's link, in
    /// virtual milliseconds: median and 99th percentile.
    pub rejoins: Option<u64>,
    /// See `rejoins`.
    pub rejoin_ms_p50: Option<u64>,
    /// See `rejoins`.
    pub rejoin_ms_p99: Option<u64>,
    /// Trees only: roots crowned after the first (the server's standby taking over).
    pub crowned: Option<u32>,
    /// Most open links of one peer while the room was settled (sampled at convergence,
    /// after the last broadcast and at the end).
    pub max_degree: usize,
    /// Mean open links per peer at the end.
    pub mean_degree: f64,
    /// Broadcast deliveries over those expected (peers alive throughout).
    pub delivery_ratio: f64,
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries made to peers that were expected to get them.
    pub delivered: u64,
    /// Broadcasts the application saw twice (must be 0).
    pub app_duplicates: u64,
    /// Links crossed by delivered broadcasts: median.
    pub hops_p50: u32,
    /// 99th percentile.
    pub hops_p99: u32,
    /// Most.
    pub hops_max: u32,
    /// Overlay copies received per peer per broadcast (1.0 is one copy each).
    pub duplicates_per_peer: f64,
    /// Frames the signaling server sent, over the joins (leaves and new layouts included).
    pub signaling_frames_per_join: f64,
    /// Of which: the welcome and membership frames (`peer_joined`/`peer_left`, or cell plans).
    pub membership_frames_per_join: f64,
    /// Of which: offers and answers of the links the overlay asked for.
    pub link_frames_per_join: f64,
    /// Virtual time from the first join until every planned link was open.
    pub converged_after_ms: Option<u64>,
    /// Cells in the end (1 for a mesh).
    pub cells: u32,
    /// Layouts the room went through.
    pub epochs: u32,
    /// Peers that joined, initial and churned.
    pub joins: u64,
    /// Peers that left.
    pub leaves: u64,
    /// Broadcasts sent.
    pub broadcasts: usize,
    /// Peers that vanished in the scripted failure.
    pub failed: usize,
    /// Broken invariants of the cellular mesh seen at convergence and at the end
    /// (docs/overlays/cells.md); empty when all hold.
    pub violations: Vec<String>,
    /// Real time the simulation took.
    pub wall_ms: u64,
}

/// Runs one simulation.
pub fn simulate(config: &SimConfig) -> Result<SimReport, SimError> {
    if config.peers < 2 {
        return Err(SimError::TooFewPeers);
    }
    if config.topology == Topology::Mesh && config.peers > 2000 {
        let links = config.peers * (config.peers - 1) / 2;
        return Err(SimError::MeshTooLarge(config.peers, links));
    }
    if !(0.0..=100.0).contains(&config.churn_pct_per_min) {
        return Err(SimError::Percent("churn"));
    }
    if !(0.0..=100.0).contains(&config.loss_pct) {
        return Err(SimError::Percent("loss"));
    }
    // The simulator is a driver: it takes one real instant as the origin of its clock.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut sim = Sim::new(config.clone(), started);
    sim.run();
    Ok(sim.report(started.elapsed()))
}

const MS: u64 = 1_000;
const SECOND: u64 = 1_000_000;
const SETTLE_BEFORE: u64 = 10 * SECOND;
const DRAIN_AFTER: u64 = 10 * SECOND;
const GRACE: u64 = 15 * SECOND;
const CHECK_EVERY: u64 = 250 * MS;
const GIVE_UP_CONVERGING: u64 = 120 * SECOND;
const BROADCAST_SPAN: u64 = 60 * SECOND;

#[derive(Debug)]
enum Event {
    Join,
    ServerLeave(usize),
    Tick(usize),
    Plan {
        node: usize,
        plan: CellPlan,
    },
    Appeared {
        node: usize,
        peer: usize,
        origin: Appearance,
    },
    Gone {
        node: usize,
        peer: usize,
    },
    LinkOpen(usize, usize),
    TreeMsg {
        node: usize,
        from: usize,
        msg: TreeMsg,
    },
    RelayMsg {
        node: usize,
        from: usize,
        msg: RelayMsg,
    },
    /// A relay link request relayed by the server.
    LinkRequest {
        node: usize,
        from: usize,
        degree: u8,
    },
    LinkDown {
        node: usize,
        peer: usize,
    },
    Heard {
        node: usize,
        from: usize,
    },
    Frame {
        node: usize,
        from: usize,
        frame: MeshFrame,
    },
    Broadcast(usize),
    Churn,
    Check,
}

/// An event at its virtual time; ties keep the order they were scheduled in.
#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

enum Overlay {
    Mesh(Box<FullMesh>),
    Cells(Box<CellMesh>),
    Tree(Box<TreeNode>),
    Relay(Box<RelayNode>),
}

/// What a tree or relay node asks beyond links.
enum Extra {
    Tree(TreeOutput),
    Relay(Box<RelayOutput>),
}

impl Overlay {
    fn handle_input(&mut self, input: Input) {
        match self {
            Self::Mesh(m) => m.handle_input(input),
            Self::Cells(c) => c.handle_input(input),
            Self::Tree(t) => t.handle_input(input),
            Self::Relay(r) => r.handle_input(input),
        }
    }

    /// The next output, the tree's and the relay's in the common shape where they have one.
    fn poll_output(&mut self) -> Result<Output, Extra> {
        match self {
            Self::Mesh(m) => Ok(m.poll_output()),
            Self::Cells(c) => Ok(c.poll_output()),
            Self::Tree(t) => match t.poll_output() {
                TreeOutput::Connect { peer, initiate } => Ok(Output::Connect { peer, initiate }),
                TreeOutput::Disconnect { peer } => Ok(Output::Disconnect {
                    peer,
                    reason: plenum_overlay::DropReason::Left,
                }),
                TreeOutput::Heartbeat { peer } => Ok(Output::Heartbeat { peer }),
                TreeOutput::Timeout(at) => Ok(Output::Timeout(at)),
                other => Err(Extra::Tree(other)),
            },
            Self::Relay(r) => match r.poll_output() {
                RelayOutput::Connect { peer, initiate } => Ok(Output::Connect { peer, initiate }),
                RelayOutput::Disconnect { peer } => Ok(Output::Disconnect {
                    peer,
                    reason: plenum_overlay::DropReason::Left,
                }),
                RelayOutput::Heartbeat { peer } => Ok(Output::Heartbeat { peer }),
                RelayOutput::Timeout(at) => Ok(Output::Timeout(at)),
                other => Err(Extra::Relay(Box::new(other))),
            },
        }
    }
}

struct Node {
    id: PeerId,
    overlay: Overlay,
    delay: u64,
    alive: bool,
    joined_at: u64,
    left_at: Option<u64>,
    deadline: u64,
    sent: u64,
}

#[derive(Default)]
struct LinkSim {
    wants: [bool; 2],
    up: bool,
    opening: bool,
}

struct Sim {
    config: SimConfig,
    base: Instant,
    now: u64,
    rng: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    index: HashMap<PeerId, usize>,
    links: HashMap<(usize, usize), LinkSim>,
    directory: Option<CellDirectory>,
    server_frames: u64,
    link_frames: u64,
    /// Broadcast frames scheduled and not yet arrived.
    in_flight: u64,
    joins: u64,
    leaves: u64,
    last_initial_join: u64,
    converged_at: Option<u64>,
    broadcasting: bool,
    broadcast_times: Vec<(u64, usize)>,
    /// The target of each relay unicast.
    unicast_targets: Vec<usize>,
    /// Live peers by id, for the relay server's welcome sample.
    live_ids: std::collections::BTreeSet<PeerId>,
    deliveries: HashMap<(usize, usize), (u32, u8)>,
    copies: Vec<u64>,
    max_degree: usize,
    link_config: FullMeshConfig,
    failure: Option<Failure>,
    failed: usize,
    violations: Vec<String>,
    /// The tree's root, as the server knows it.
    tree_root: usize,
    /// Requests for the root held while there is none.
    held_for_root: Vec<(usize, TreeMsg)>,
    /// Roots crowned after the first.
    crowned: u32,
    /// Orphaned tree nodes: since when (their parent's leaving).
    orphaned: HashMap<usize, u64>,
    /// How long each orphan took to find a new parent.
    rejoin_times: Vec<u64>,
}

impl Sim {
    fn new(config: SimConfig, base: Instant) -> Self {
        let directory = match &config.topology {
            Topology::Cells(c) => Some(CellDirectory::new(c.clone(), config.seed)),
            Topology::Mesh | Topology::Tree(_) | Topology::Relay(_) => None,
        };
        let link_config = FullMeshConfig::builder()
            .heartbeat_interval(Duration::from_secs(5))
            .silence_timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        let mut sim = Self {
            rng: config.seed ^ 0x5eed,
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            index: HashMap::new(),
            links: HashMap::new(),
            directory,
            server_frames: 0,
            link_frames: 0,
            in_flight: 0,
            joins: 0,
            leaves: 0,
            last_initial_join: 0,
            converged_at: None,
            broadcasting: false,
            broadcast_times: Vec::new(),
            unicast_targets: Vec::new(),
            live_ids: std::collections::BTreeSet::new(),
            deliveries: HashMap::new(),
            copies: vec![0; config.broadcasts],
            max_degree: 0,
            link_config,
            failure: config.failure,
            failed: 0,
            violations: Vec::new(),
            tree_root: 0,
            held_for_root: Vec::new(),
            crowned: 0,
            orphaned: HashMap::new(),
            rejoin_times: Vec::new(),
            config,
        };
        let interval = sim.config.join_interval.as_micros() as u64;
        for i in 0..sim.config.peers {
            let at = i as u64 * interval;
            sim.last_initial_join = at;
            sim.schedule(at, Event::Join);
        }
        sim.schedule(sim.last_initial_join + CHECK_EVERY, Event::Check);
        sim
    }

    fn random(&mut self) -> u64 {
        plenum_overlay::splitmix64(&mut self.rng)
    }

    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && (self.random() % 1_000_000) as f64 / 10_000.0 < pct
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        if carries_broadcast(&event) {
            self.in_flight += 1;
        }
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn latency(&mut self, a: usize, b: usize) -> u64 {
        let jitter = self.random() % (5 * MS);
        self.nodes[a].delay + self.nodes[b].delay + jitter
    }

    fn run(&mut self) {
        while let Some(Reverse(Scheduled { at, event, .. })) = self.queue.pop() {
            self.now = at;
            if carries_broadcast(&event) {
                self.in_flight -= 1;
            }
            self.handle(event);
            if self.is_over() {
                break;
            }
        }
    }

    fn is_over(&self) -> bool {
        match self.broadcast_times.last() {
            Some((at, _)) if self.broadcast_times.len() == self.config.broadcasts => {
                let drained = at + DRAIN_AFTER + if self.churning() { GRACE } else { 0 };
                // A deep tree may still carry the last broadcasts: wait for them (a while).
                self.now > drained
                    && (self.in_flight == 0 || self.now > drained + GIVE_UP_CONVERGING)
            }
            None if self.config.broadcasts == 0 => self.converged_at.is_some(),
            _ => false,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Join => self.join(),
            Event::ServerLeave(node) => self.server_leave(node),
            Event::Tick(node) => {
                if self.nodes[node].alive && self.nodes[node].deadline == self.now {
                    let now = self.instant();
                    self.input(node, Input::Tick { now });
                }
            }
            Event::Plan { node, plan } => {
                let now = self.instant();
                self.input(node, Input::Plan { plan, now });
            }
            Event::Appeared { node, peer, origin } => {
                let peer = self.nodes[peer].id.clone();
                let now = self.instant();
                self.input(node, Input::PeerAppeared { peer, origin, now });
            }
            Event::Gone { node, peer } => {
                let peer = self.nodes[peer].id.clone();
                let now = self.instant();
                self.input(node, Input::PeerGone { peer, now });
            }
            Event::LinkOpen(a, b) => self.link_open(a, b),
            Event::TreeMsg { node, from, msg } => {
                if self.nodes[node].alive {
                    if let TreeMsg::Data { data, .. } = &msg
                        && let Some(b) = broadcast_index(data)
                        && let Some(c) = self.copies.get_mut(b)
                    {
                        *c += 1;
                    }
                    let peer = self.nodes[from].id.clone();
                    let now = self.instant();
                    if let Overlay::Tree(t) = &mut self.nodes[node].overlay {
                        t.handle_msg(peer, msg, now);
                    }
                    self.drain(node);
                }
            }
            Event::RelayMsg { node, from, msg } => {
                if self.nodes[node].alive && self.link_up(node, from) {
                    let peer = self.nodes[from].id.clone();
                    let now = self.instant();
                    if let Overlay::Relay(r) = &mut self.nodes[node].overlay {
                        r.handle_msg(peer, msg, now);
                    }
                    self.drain(node);
                }
            }
            Event::LinkRequest { node, from, degree } => {
                if self.nodes[node].alive {
                    let peer = self.nodes[from].id.clone();
                    if let Overlay::Relay(r) = &mut self.nodes[node].overlay {
                        r.link_requested(peer, degree);
                    }
                    self.drain(node);
                }
            }
            Event::LinkDown { node, peer } => {
                let peer = self.nodes[peer].id.clone();
                let now = self.instant();
                self.input(node, Input::LinkDown { peer, now });
            }
            Event::Heard { node, from } => {
                if self.link_up(node, from) {
                    let peer = self.nodes[from].id.clone();
                    let now = self.instant();
                    self.input(node, Input::Heard { peer, now });
                }
            }
            Event::Frame { node, from, frame } => {
                if self.link_up(node, from) && self.nodes[node].alive {
                    if let Some(b) = broadcast_index(&frame.data)
                        && let Some(c) = self.copies.get_mut(b)
                    {
                        *c += 1;
                    }
                    let peer = self.nodes[from].id.clone();
                    let now = self.instant();
                    self.input(
                        node,
                        Input::Frame {
                            from: peer,
                            frame,
                            now,
                        },
                    );
                }
            }
            Event::Broadcast(b) => self.broadcast(b),
            Event::Churn => self.churn(),
            Event::Check => self.check(),
        }
    }

    fn key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        self.links.get(&Self::key(a, b)).is_some_and(|l| l.up)
            && self.nodes[a].alive
            && self.nodes[b].alive
    }

    fn join(&mut self) {
        let node = self.nodes.len();
        let mut bytes = [0u8; 20];
        for chunk in bytes.chunks_mut(8) {
            let r = self.random().to_be_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let Ok(id) = PeerId::new(hex) else {
            return;
        };
        let seed = self.random();
        let now = self.instant();
        let overlay = match &self.config.topology {
            Topology::Mesh => Overlay::Mesh(Box::new(
                FullMesh::with_seed(self.link_config.clone(), now, seed).with_peer(id.clone()),
            )),
            Topology::Tree(tree) => {
                let config = TreeConfig::builder()
                    .max_degree(tree.max_degree())
                    .links(self.link_config.clone())
                    .build()
                    .unwrap_or_default();
                Overlay::Tree(Box::new(if node == 0 {
                    TreeNode::root(id.clone(), config, now, seed)
                } else {
                    TreeNode::join(id.clone(), config, now, seed)
                }))
            }
            Topology::Relay(relay) => {
                let config = relay.clone().with_links(self.link_config.clone());
                match RelayNode::new(id.clone(), config, now, seed) {
                    Some(r) => Overlay::Relay(Box::new(r)),
                    None => return,
                }
            }
            Topology::Cells(_) => {
                let config = CellMeshConfig::builder()
                    .links(self.link_config.clone())
                    .build()
                    .unwrap_or_default();
                Overlay::Cells(Box::new(CellMesh::new(id.clone(), config, now, seed)))
            }
        };
        let delay = 5 * MS + self.random() % (35 * MS);
        self.nodes.push(Node {
            id: id.clone(),
            overlay,
            delay,
            alive: true,
            joined_at: self.now,
            left_at: None,
            deadline: u64::MAX,
            sent: 0,
        });
        self.index.insert(id.clone(), node);
        self.joins += 1;
        // A tree node asks to join at once.
        self.drain(node);
        // The welcome.
        self.server_frames += 1;
        if let Topology::Relay(_) = self.config.topology {
            // The welcome's sample: the peers beside it in id order and some spread out.
            let sample =
                plenum_overlay::relay::welcome_sample(self.live_ids.iter(), &id, 8, 8, seed);
            let at = self.now + self.nodes[node].delay;
            for peer in sample {
                if let Some(&other) = self.index.get(&peer) {
                    self.schedule(
                        at,
                        Event::Appeared {
                            node,
                            peer: other,
                            origin: Appearance::Roster,
                        },
                    );
                }
            }
            self.live_ids.insert(id);
        } else if let Some(directory) = self.directory.as_mut() {
            let Ok(name) = DisplayName::new("peer") else {
                return;
            };
            directory.handle_join(PeerSummary {
                peer: id,
                name,
                publish: true,
                role: Default::default(),
            });
            self.send_plans();
        } else if self.config.topology == Topology::Mesh {
            let others: Vec<usize> = (0..node).filter(|n| self.nodes[*n].alive).collect();
            let at = self.now + self.nodes[node].delay;
            for other in others {
                self.server_frames += 1;
                let to_other = self.now + self.nodes[other].delay;
                self.schedule(
                    at,
                    Event::Appeared {
                        node,
                        peer: other,
                        origin: Appearance::Roster,
                    },
                );
                self.schedule(
                    to_other,
                    Event::Appeared {
                        node: other,
                        peer: node,
                        origin: Appearance::Joined,
                    },
                );
            }
        }
    }

    fn send_plans(&mut self) {
        let mut plans = Vec::new();
        if let Some(directory) = self.directory.as_mut() {
            while let Some(p) = directory.poll_plan() {
                plans.push(p);
            }
        }
        for (peer, plan) in plans {
            if let Some(&node) = self.index.get(&peer)
                && self.nodes[node].alive
            {
                self.server_frames += 1;
                let at = self.now + self.nodes[node].delay;
                self.schedule(at, Event::Plan { node, plan });
            }
        }
    }

    fn leave(&mut self, node: usize, clean: bool) {
        if !self.nodes[node].alive {
            return;
        }
        self.nodes[node].alive = false;
        self.nodes[node].left_at = Some(self.now);
        self.leaves += 1;
        if clean {
            // Its `bye` reaches every linked peer; its `leave` the server.
            let linked: Vec<usize> = self
                .links
                .iter()
                .filter(|((a, b), l)| l.up && (*a == node || *b == node))
                .map(|((a, b), _)| if *a == node { *b } else { *a })
                .collect();
            // Links live in a hash map: sort, so that the seed alone decides the order.
            let mut linked = linked;
            linked.sort_unstable();
            for peer in linked {
                let at = self.now + self.latency(node, peer);
                self.schedule(
                    at,
                    Event::LinkDown {
                        node: peer,
                        peer: node,
                    },
                );
            }
            self.server_leave(node);
        } else {
            let at = self.now + GRACE;
            self.schedule(at, Event::ServerLeave(node));
        }
    }

    fn server_leave(&mut self, node: usize) {
        let id = self.nodes[node].id.clone();
        self.live_ids.remove(&id);
        if matches!(self.config.topology, Topology::Tree(_)) && node == self.tree_root {
            self.crown();
        }
        if let Some(directory) = self.directory.as_mut() {
            directory.handle_leave(&id);
            self.send_plans();
        } else if self.config.topology == Topology::Mesh {
            let others: Vec<usize> = (0..self.nodes.len())
                .filter(|n| self.nodes[*n].alive)
                .collect();
            for other in others {
                self.server_frames += 1;
                let at = self.now + self.nodes[other].delay;
                self.schedule(
                    at,
                    Event::Gone {
                        node: other,
                        peer: node,
                    },
                );
            }
        }
    }

    fn input(&mut self, node: usize, input: Input) {
        if !self.nodes[node].alive {
            return;
        }
        self.nodes[node].overlay.handle_input(input);
        self.drain(node);
    }

    fn drain(&mut self, node: usize) {
        loop {
            let output = match self.nodes[node].overlay.poll_output() {
                Ok(output) => output,
                Err(Extra::Tree(tree)) => {
                    self.tree_output(node, tree);
                    continue;
                }
                Err(Extra::Relay(relay)) => {
                    self.relay_output(node, *relay);
                    continue;
                }
            };
            match output {
                Output::Connect { peer, .. } => self.want(node, &peer, true),
                Output::Disconnect { peer, .. } => self.want(node, &peer, false),
                Output::Heartbeat { peer } => {
                    self.transmit(node, &peer, |to| Event::Heard {
                        node: to,
                        from: node,
                    });
                }
                Output::Send { peer, frame } => {
                    self.transmit(node, &peer, |to| Event::Frame {
                        node: to,
                        from: node,
                        frame,
                    });
                }
                Output::Deliver { data, hops, .. } => {
                    self.delivered(node, &data, hops);
                }
                Output::State(_) | Output::PeerCell { .. } => {}
                Output::Timeout(at) => {
                    let at = at.saturating_duration_since(self.base).as_micros() as u64;
                    let at = at.max(self.now);
                    if self.nodes[node].deadline != at {
                        self.nodes[node].deadline = at;
                        self.schedule(at, Event::Tick(node));
                    }
                    return;
                }
            }
        }
    }

    /// A message from `node` to `peer` over their link: it arrives after the link's latency,
    /// unless the link is down or the loss drew it.
    fn transmit(&mut self, node: usize, peer: &PeerId, event: impl FnOnce(usize) -> Event) {
        if let Some(&to) = self.index.get(peer)
            && self.link_up(node, to)
            && !self.chance(self.config.loss_pct)
        {
            let at = self.now + self.latency(node, to);
            self.schedule(at, event(to));
        }
    }

    fn want(&mut self, node: usize, peer: &PeerId, wants: bool) {
        let Some(&other) = self.index.get(peer) else {
            return;
        };
        let key = Self::key(node, other);
        let side = usize::from(node != key.0);
        let link = self.links.entry(key).or_default();
        link.wants[side] = wants;
        if !wants {
            let was_up = link.up;
            link.up = false;
            link.opening = false;
            if !link.wants[1 - side] {
                self.links.remove(&key);
            }
            if was_up && self.nodes[other].alive {
                let at = self.now + self.latency(node, other);
                self.schedule(
                    at,
                    Event::LinkDown {
                        node: other,
                        peer: node,
                    },
                );
            }
            return;
        }
        if link.wants == [true, true] && !link.up && !link.opening {
            link.opening = true;
            // Offer and answer through the server, then ICE and DTLS: two round trips.
            self.server_frames += 2;
            self.link_frames += 2;
            let one_way = self.latency(node, other);
            let at = self.now + 6 * one_way;
            self.schedule(at, Event::LinkOpen(key.0, key.1));
        }
    }

    fn link_open(&mut self, a: usize, b: usize) {
        let Some(link) = self.links.get_mut(&(a, b)) else {
            return;
        };
        if link.wants != [true, true] || !link.opening {
            return;
        }
        link.opening = false;
        if !self.nodes[a].alive || !self.nodes[b].alive {
            return;
        }
        link.up = true;
        let now = self.instant();
        let (ida, idb) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
        self.input(a, Input::LinkUp { peer: idb, now });
        self.input(b, Input::LinkUp { peer: ida, now });
    }

    /// Takes the most links of one peer into `max_degree` if the room is settled now: in
    /// passing, a peer may hold more (a relay splice keeps the link on its way out until
    /// its replacement is up).
    fn sample_degree(&mut self) {
        if self.settled() {
            let degree = self.degrees().into_iter().max().unwrap_or(0);
            self.max_degree = self.max_degree.max(degree);
        }
    }

    fn degrees(&self) -> Vec<usize> {
        let mut degree = vec![0usize; self.nodes.len()];
        for ((a, b), l) in &self.links {
            if l.up && self.nodes[*a].alive && self.nodes[*b].alive {
                degree[*a] += 1;
                degree[*b] += 1;
            }
        }
        degree
    }

    /// What a tree node asks beyond links: messages over links or through the server, and
    /// broadcasts delivered.
    fn tree_output(&mut self, node: usize, output: TreeOutput) {
        match output {
            TreeOutput::Send { peer, msg } => {
                self.transmit(node, &peer, |to| Event::TreeMsg {
                    node: to,
                    from: node,
                    msg,
                });
            }
            TreeOutput::Signal { to, msg } => {
                let to = match to {
                    Addressee::Root if !self.nodes[self.tree_root].alive => {
                        // No root for now: the server holds it for the next one.
                        self.held_for_root.push((node, msg));
                        return;
                    }
                    Addressee::Root => Some(self.tree_root),
                    Addressee::Peer(p) => self.index.get(&p).copied(),
                };
                if let Some(to) = to.filter(|t| self.nodes[*t].alive) {
                    self.server_frames += 1;
                    let at = self.now + self.nodes[node].delay + self.nodes[to].delay;
                    self.schedule(
                        at,
                        Event::TreeMsg {
                            node: to,
                            from: node,
                            msg,
                        },
                    );
                }
            }
            TreeOutput::Message { data, hops, .. } => {
                self.delivered(node, &data, hops);
            }
            TreeOutput::ParentClose(parent) => {
                let since = self
                    .index
                    .get(&parent)
                    .and_then(|p| self.nodes[*p].left_at)
                    .unwrap_or(self.now);
                self.orphaned.entry(node).or_insert(since);
            }
            TreeOutput::ParentConnect(_) => {
                if let Some(since) = self.orphaned.remove(&node) {
                    self.rejoin_times.push(self.now.saturating_sub(since));
                }
            }
            _ => {}
        }
    }

    /// The root is gone: the server crowns its standby, here the longest-present peer
    /// (a member of the tree, whose subtree stays under it), and hands it the held
    /// requests.
    fn crown(&mut self) {
        let Some(next) = (0..self.nodes.len()).find(|n| self.nodes[*n].alive) else {
            return;
        };
        self.tree_root = next;
        self.crowned += 1;
        self.server_frames += 1;
        self.orphaned.remove(&next);
        if let Overlay::Tree(t) = &mut self.nodes[next].overlay {
            t.promote();
        }
        self.drain(next);
        let at = self.now + self.nodes[next].delay;
        for (from, msg) in std::mem::take(&mut self.held_for_root) {
            self.server_frames += 1;
            self.schedule(
                at,
                Event::TreeMsg {
                    node: next,
                    from,
                    msg,
                },
            );
        }
    }

    /// What a relay node asks beyond links: messages over links, link requests through
    /// the server, and unicasts delivered.
    fn relay_output(&mut self, node: usize, output: RelayOutput) {
        match output {
            RelayOutput::Send { peer, msg } => {
                if let RelayMsg::Route(f) = &msg
                    && f.kind == RouteKind::Data
                    && let Some(b) = broadcast_index(&f.data)
                    && let Some(c) = self.copies.get_mut(b)
                {
                    *c += 1;
                }
                self.transmit(node, &peer, |to| Event::RelayMsg {
                    node: to,
                    from: node,
                    msg,
                });
            }
            RelayOutput::SignalLink { peer, degree } => {
                if let Some(&to) = self.index.get(&peer)
                    && self.nodes[to].alive
                {
                    self.server_frames += 1;
                    let at = self.now + self.nodes[node].delay + self.nodes[to].delay;
                    self.schedule(
                        at,
                        Event::LinkRequest {
                            node: to,
                            from: node,
                            degree,
                        },
                    );
                }
            }
            RelayOutput::Deliver { data, hops, .. } => {
                self.delivered(node, &data, hops);
            }
            _ => {}
        }
    }

    /// The application at `node` got broadcast (or unicast) `data` after `hops` links.
    fn delivered(&mut self, node: usize, data: &[u8], hops: u8) {
        if let Some(b) = broadcast_index(data) {
            let entry = self.deliveries.entry((b, node)).or_insert((0, hops));
            entry.0 += 1;
        }
    }

    fn tree_depth_max(&self) -> Option<u32> {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| match &n.overlay {
                Overlay::Tree(t) => t.depth(),
                _ => None,
            })
            .max()
            .flatten()
    }

    fn settled(&mut self) -> bool {
        for node in 0..self.nodes.len() {
            if !self.nodes[node].alive {
                continue;
            }
            let wanted = match &self.nodes[node].overlay {
                Overlay::Mesh(m) => m.neighbours(),
                Overlay::Cells(c) => c.neighbours(),
                Overlay::Relay(r) => {
                    if r.neighbours().is_empty() || r.asking() || !r.within_bound() {
                        return false;
                    }
                    r.neighbours()
                }
                Overlay::Tree(t) => {
                    if !t.attached() || t.depth().is_none() {
                        return false;
                    }
                    t.parent()
                        .into_iter()
                        .cloned()
                        .chain(t.children())
                        .collect()
                }
            };
            if let Overlay::Cells(c) = &self.nodes[node].overlay
                && c.state().is_none()
            {
                return false;
            }
            for peer in wanted {
                let Some(&other) = self.index.get(&peer) else {
                    return false;
                };
                if !self.link_up(node, other) {
                    return false;
                }
            }
        }
        // A relay network has converged when it is one.
        !matches!(self.config.topology, Topology::Relay(_)) || self.components() == 1
    }

    fn check(&mut self) {
        if self.converged_at.is_some() {
            return;
        }
        let settled = self.settled();
        let gave_up = self.now > self.last_initial_join + GIVE_UP_CONVERGING;
        if settled && let Some(failure) = self.failure.take() {
            self.check_invariants();
            self.fail(failure);
            self.schedule(self.now + CHECK_EVERY, Event::Check);
            return;
        }
        if settled {
            self.converged_at = Some(self.now);
            self.max_degree = self.degrees().into_iter().max().unwrap_or(0);
            self.check_invariants();
        }
        if settled || gave_up {
            self.start_broadcasts();
        } else {
            self.schedule(self.now + CHECK_EVERY, Event::Check);
        }
    }

    /// Crashes the peers of a scripted failure.
    fn fail(&mut self, failure: Failure) {
        if failure == Failure::Root {
            if matches!(self.config.topology, Topology::Tree(_)) {
                self.failed += 1;
                self.leave(self.tree_root, false);
            }
            return;
        }
        let Some(directory) = &self.directory else {
            return;
        };
        let victims: Vec<PeerId> = match failure {
            Failure::Bridge => directory
                .edges()
                .values()
                .next()
                .and_then(|pairs| pairs.first())
                .map(|(x, _)| vec![x.clone()])
                .unwrap_or_default(),
            Failure::Cell => directory
                .cells()
                .iter()
                .find(|c| !c.is_empty())
                .map(|c| c.iter().cloned().collect())
                .unwrap_or_default(),
            Failure::Root => Vec::new(),
        };
        for id in victims {
            if let Some(&node) = self.index.get(&id) {
                self.failed += 1;
                self.leave(node, false);
            }
        }
    }

    /// Checks the invariants of docs/overlays/cells.md against the directory and the links;
    /// for a relay network, that it is one connected network.
    fn check_invariants(&mut self) {
        if let Topology::Relay(_) = self.config.topology {
            let parts = self.components();
            if parts > 1 {
                self.violations
                    .push(format!("the relay network is split in {parts} parts"));
            }
            return;
        }
        let Some(directory) = &self.directory else {
            return;
        };
        let mut broken = Vec::new();
        let live: Vec<&PeerId> = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| &n.id)
            .collect();
        let mut placed: HashMap<&PeerId, usize> = HashMap::new();
        for (c, members) in directory.cells().iter().enumerate() {
            if members.is_empty() {
                broken.push(format!("cell {c} is empty"));
            }
            for m in members {
                *placed.entry(m).or_default() += 1;
                if directory.cell_of(m) != Some(c as u32) {
                    broken.push(format!(
                        "{} listed in cell {c} but placed elsewhere",
                        m.short()
                    ));
                }
            }
        }
        for id in &live {
            if placed.get(id).copied() != Some(1) {
                broken.push(format!(
                    "live peer {} is in {} cells",
                    id.short(),
                    placed.get(id).copied().unwrap_or(0)
                ));
            }
        }
        let sizes: Vec<usize> = directory.cells().iter().map(|c| c.len()).collect();
        if let (Some(min), Some(max)) = (sizes.iter().min(), sizes.iter().max())
            && max - min > 1
        {
            broken.push(format!("cell sizes range from {min} to {max}"));
        }
        let layout = directory.layout().clone();
        let bridges = match &self.config.topology {
            Topology::Cells(c) => c.bridges_per_edge(),
            Topology::Mesh | Topology::Tree(_) | Topology::Relay(_) => 0,
        };
        let mut load: HashMap<&PeerId, usize> = HashMap::new();
        for cell in 0..layout.cell_count() {
            for (_, other) in layout.neighbours(cell) {
                if other < cell {
                    continue;
                }
                let (a, b) = (
                    &directory.cells()[cell as usize],
                    &directory.cells()[other as usize],
                );
                let want = usize::from(bridges).min(a.len()).min(b.len());
                let pairs = directory
                    .edges()
                    .get(&(cell, other))
                    .map_or(&[][..], Vec::as_slice);
                if pairs.len() != want {
                    broken.push(format!(
                        "edge {cell}-{other} has {} links, wants {want}",
                        pairs.len()
                    ));
                }
                for (x, y) in pairs {
                    if !a.contains(x) || !b.contains(y) {
                        broken.push(format!("edge {cell}-{other} links peers outside its cells"));
                    }
                    *load.entry(x).or_default() += 1;
                    *load.entry(y).or_default() += 1;
                }
            }
        }
        for (c, members) in directory.cells().iter().enumerate() {
            let loads: Vec<usize> = members
                .iter()
                .map(|m| load.get(m).copied().unwrap_or(0))
                .collect();
            if let (Some(min), Some(max)) = (loads.iter().min(), loads.iter().max())
                && max - min > 2
            {
                broken.push(format!(
                    "bridges in cell {c} range from {min} to {max} per peer"
                ));
            }
        }
        let degrees = self.degrees();
        for (n, node) in self.nodes.iter().enumerate() {
            if !node.alive {
                continue;
            }
            let Some(cell) = directory.cell_of(&node.id) else {
                continue;
            };
            let bound = directory.cells()[cell as usize].len() - 1
                + load.get(&node.id).copied().unwrap_or(0);
            if degrees[n] > bound {
                broken.push(format!(
                    "{} holds {} links, its plan {bound}",
                    node.id.short(),
                    degrees[n]
                ));
            }
        }
        broken.truncate(20);
        self.violations.extend(broken);
    }

    /// Connected parts of the live peers over open links.
    fn components(&self) -> usize {
        let mut adjacent: HashMap<usize, Vec<usize>> = HashMap::new();
        for ((a, b), l) in &self.links {
            if l.up && self.nodes[*a].alive && self.nodes[*b].alive {
                adjacent.entry(*a).or_default().push(*b);
                adjacent.entry(*b).or_default().push(*a);
            }
        }
        let mut seen = vec![false; self.nodes.len()];
        let mut parts = 0;
        for start in 0..self.nodes.len() {
            if seen[start] || !self.nodes[start].alive {
                continue;
            }
            parts += 1;
            let mut stack = vec![start];
            while let Some(n) = stack.pop() {
                if std::mem::replace(&mut seen[n], true) {
                    continue;
                }
                stack.extend(adjacent.get(&n).into_iter().flatten().copied());
            }
        }
        parts
    }

    fn churning(&self) -> bool {
        self.config.churn_pct_per_min > 0.0
    }

    /// Broadcasts meet churn for a simulated minute; without churn they go out 100 ms apart.
    fn broadcast_span(&self) -> u64 {
        if self.churning() {
            BROADCAST_SPAN
        } else {
            self.config.broadcasts as u64 * 100 * MS
        }
    }

    fn start_broadcasts(&mut self) {
        if self.broadcasting {
            return;
        }
        self.broadcasting = true;
        let k = self.config.broadcasts as u64;
        let start = self.now + SECOND;
        for b in 0..self.config.broadcasts {
            let at = start + b as u64 * (self.broadcast_span() / k.max(1));
            self.schedule(at, Event::Broadcast(b));
        }
        if self.config.churn_pct_per_min > 0.0 {
            // Half a broadcast apart: a peer is not replaced at the instant it sends.
            let offset = self.broadcast_span() / k.max(1) / 2;
            self.schedule(start + offset, Event::Churn);
        }
    }

    fn churn(&mut self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        if live.is_empty() {
            return;
        }
        let victim = live[(self.random() % live.len() as u64) as usize];
        let clean = self.random().is_multiple_of(2);
        self.leave(victim, clean);
        self.join();
        let per_minute = self.config.peers as f64 * self.config.churn_pct_per_min / 100.0;
        let every = (60.0 * SECOND as f64 / per_minute.max(1e-9)) as u64;
        let end = self.broadcast_end();
        if self.now + every <= end {
            self.schedule(self.now + every.max(1), Event::Churn);
        }
    }

    fn broadcast_end(&self) -> u64 {
        self.broadcast_times.first().map_or(self.now, |(t, _)| *t) + self.broadcast_span()
    }

    fn broadcast(&mut self, b: usize) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        if live.is_empty() {
            return;
        }
        let origin = live[(self.random() % live.len() as u64) as usize];
        self.broadcast_times.push((self.now, origin));
        self.nodes[origin].sent += 1;
        let now = self.instant();
        let data = (b as u32).to_be_bytes().to_vec();
        if let Overlay::Relay(_) = self.nodes[origin].overlay {
            let others: Vec<usize> = live.into_iter().filter(|n| *n != origin).collect();
            let target = match others.len() {
                0 => origin,
                n => others[(self.random() % n as u64) as usize],
            };
            self.unicast_targets.push(target);
            let to = self.nodes[target].id.clone();
            if let Overlay::Relay(r) = &mut self.nodes[origin].overlay {
                r.handle_input(Input::Tick { now });
                let _ = r.send(to, data);
            }
            self.drain(origin);
        } else {
            self.input(origin, Input::Broadcast { data, now });
        }
        if b + 1 == self.config.broadcasts {
            self.sample_degree();
        }
    }

    fn report(&mut self, wall: Duration) -> SimReport {
        if self.churning() {
            // Peers that vanished within the grace are still planned: that is expected.
        } else {
            self.check_invariants();
        }
        let mut expected = 0u64;
        let mut delivered = 0u64;
        let mut receivers = 0u64;
        let mut app_duplicates = 0u64;
        let mut hops = Vec::new();
        for (b, (at, origin)) in self.broadcast_times.iter().enumerate() {
            for (n, node) in self.nodes.iter().enumerate() {
                if n == *origin || self.unicast_targets.get(b).is_some_and(|t| *t != n) {
                    continue;
                }
                // The first peers count once the room has converged; later ones once
                // they have been in for a while.
                let settled_in = node.joined_at <= self.last_initial_join
                    || node.joined_at + SETTLE_BEFORE <= *at;
                let present = settled_in && node.left_at.is_none_or(|l| l > at + DRAIN_AFTER);
                if node.alive || node.left_at.is_some_and(|l| l > *at) {
                    receivers += 1;
                }
                if !present {
                    continue;
                }
                expected += 1;
                if let Some((count, h)) = self.deliveries.get(&(b, n)) {
                    delivered += 1;
                    app_duplicates += u64::from(count.saturating_sub(1));
                    hops.push(u32::from(*h));
                }
            }
        }
        hops.sort_unstable();
        let pct = |p: f64| -> u32 {
            if hops.is_empty() {
                return 0;
            }
            let i = ((hops.len() as f64 * p).ceil() as usize).clamp(1, hops.len()) - 1;
            hops[i]
        };
        self.sample_degree();
        let degrees = self.degrees();
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        let mean_degree =
            live.iter().map(|n| degrees[*n]).sum::<usize>() as f64 / live.len().max(1) as f64;
        let copies: u64 = self.copies.iter().sum();
        let is_tree = matches!(self.config.topology, Topology::Tree(_));
        let mut rejoins = std::mem::take(&mut self.rejoin_times);
        rejoins.sort_unstable();
        let (cells, epochs) = match &self.directory {
            Some(d) => (d.layout().cell_count(), d.epoch()),
            None => (1, 1),
        };
        SimReport {
            topology: match self.config.topology {
                Topology::Mesh => "mesh",
                Topology::Cells(_) => "cells",
                Topology::Tree(_) => "tree",
                Topology::Relay(_) => "relay",
            },
            depth_max: self.tree_depth_max(),
            rejoins: is_tree.then_some(rejoins.len() as u64),
            rejoin_ms_p50: is_tree.then(|| percentile(&rejoins, 0.5) / MS),
            rejoin_ms_p99: is_tree.then(|| percentile(&rejoins, 0.99) / MS),
            crowned: is_tree.then_some(self.crowned),
            peers: self.config.peers,
            seed: self.config.seed,
            max_degree: self.max_degree,
            mean_degree: round3(mean_degree),
            delivery_ratio: if expected == 0 {
                1.0
            } else {
                round6(delivered as f64 / expected as f64)
            },
            expected,
            delivered,
            app_duplicates,
            hops_p50: pct(0.5),
            hops_p99: pct(0.99),
            hops_max: hops.last().copied().unwrap_or(0),
            duplicates_per_peer: round3(copies as f64 / receivers.max(1) as f64),
            signaling_frames_per_join: round3(self.server_frames as f64 / self.joins.max(1) as f64),
            membership_frames_per_join: round3(
                (self.server_frames - self.link_frames) as f64 / self.joins.max(1) as f64,
            ),
            link_frames_per_join: round3(self.link_frames as f64 / self.joins.max(1) as f64),
            converged_after_ms: self.converged_at.map(|t| t / MS),
            cells,
            epochs,
            joins: self.joins,
            leaves: self.leaves,
            broadcasts: self.broadcast_times.len(),
            failed: self.failed,
            violations: std::mem::take(&mut self.violations),
            wall_ms: wall.as_millis() as u64,
        }
    }
}

/// The `p` quantile of sorted `values` (0 when there are none).
fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let i = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[i]
}

/// Whether an event carries a broadcast on its way.
fn carries_broadcast(event: &Event) -> bool {
    matches!(
        event,
        Event::Frame { .. }
            | Event::TreeMsg {
                msg: TreeMsg::Data { .. },
                ..
            }
    ) || matches!(event, Event::RelayMsg { msg: RelayMsg::Route(f), .. } if f.kind == RouteKind::Data)
}

fn broadcast_index(data: &[u8]) -> Option<usize> {
    let bytes: [u8; 4] = data.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) as usize)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}
