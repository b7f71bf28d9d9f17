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

mod broadcasts;
mod checks;
mod host;
mod overlays;
mod report;
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
    /// What one presenter's stream (its audio and camera) costs the peers at the end, with
    /// media as the engine carries it in this topology.
    pub media: MediaLoad,
    /// Real time the simulation took.
    pub wall_ms: u64,
}

/// One presenter's stream through the room, counted in streams: a tree's root forwarded
/// along tree edges (every node passes it to its children); in a cells room the first live
/// peer's voice seated on the stage, passed from cell to cell (one bridge per edge of the
/// broadcast tree of cells, the entry flooding its cell); in a mesh the first live peer,
/// whose stream goes out on its own links only.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MediaLoad {
    /// Share of the other live peers the stream reaches.
    pub reach: f64,
    /// Streams the presenter uploads.
    pub presenter_upload: usize,
    /// Streams the busiest other peer uploads (forwarding).
    pub upload_max: usize,
    /// Streams uploaded per live peer, on average (the presenter's included).
    pub upload_mean: f64,
    /// Peers that forward the stream.
    pub forwarders: usize,
    /// Streams the busiest peer downloads.
    pub download_max: usize,
    /// What the presenter would upload in a full mesh of the same live peers (and what
    /// every peer would, in a mesh where everyone publishes).
    pub mesh_presenter_upload: usize,
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
