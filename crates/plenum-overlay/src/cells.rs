//! The cellular mesh: peers grouped in cells, every cell a full mesh, cells joined by
//! bridge links along a Hamming graph of small diameter. The signaling server keeps the
//! plan ([`CellDirectory`]) and tells each peer its part of it; each peer runs a
//! [`CellMesh`] that links to its cell mates and bridge partners and forwards broadcasts.
//! docs/overlays/cells.md gives the design and its invariants.
//!
//! A broadcast travels a tree of cells: the origin's cell first, then, digit by digit, the
//! cells that differ from it in that digit. A frame that entered a cell along digit `d`
//! (its `dim`) is flooded to the cell once by the peer it entered at, and every peer of the
//! cell forwards it over its bridges along digits above `d` only. So each cell is reached
//! from exactly one parent cell, over that edge's `bridges_per_edge` links (the redundancy
//! that survives a dead bridge), and a broadcast crosses at most `2 × digits + 1` links.
//! A peer that holds another epoch than the frame's floods it to all its links instead;
//! duplicates stop at the `(origin, seq)` filter, and the hop limit bounds every frame.

mod directory;
mod layout;
mod stage;

pub use directory::{CellDirectory, CellDirectoryConfig, CellDirectoryConfigBuilder};
pub use layout::Layout;
pub use stage::{STAGE_SEATS, StageBoard};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use plenum_proto::PeerId;
use plenum_proto::overlay::CellPlan;

use crate::{
    Appearance, ConfigError, FullMesh, FullMeshConfig, Input, MeshFrame, MeshState, Output,
    Topology, nonzero,
};

/// Settings of a [`CellMesh`]; build with [`CellMeshConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellMeshConfig {
    links: FullMeshConfig,
    dedup_window: Duration,
    waiting_max: usize,
}

impl Default for CellMeshConfig {
    fn default() -> Self {
        Self {
            links: FullMeshConfig::default(),
            dedup_window: Duration::from_secs(120),
            waiting_max: 64,
        }
    }
}

/// Builder of [`CellMeshConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct CellMeshConfigBuilder(CellMeshConfig);

impl CellMeshConfigBuilder {
    /// How links to cell mates and bridge partners are opened, probed and retried.
    pub fn links(mut self, links: FullMeshConfig) -> Self {
        self.0.links = links;
        self
    }
    /// How long a broadcast's id is remembered to drop its copies (default 120 s).
    pub fn dedup_window(mut self, d: Duration) -> Self {
        self.0.dedup_window = d;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<CellMeshConfig, ConfigError> {
        nonzero("dedup_window", self.0.dedup_window)?;
        Ok(self.0)
    }
}

impl CellMeshConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CellMeshConfigBuilder {
        CellMeshConfigBuilder(Self::default())
    }
}

#[derive(Debug)]
struct Plan {
    epoch: u32,
    layout: Layout,
    cell: u32,
    /// The cell's size, this peer included.
    size: usize,
    /// The cell's other peers.
    mates: Vec<PeerId>,
    /// Bridge partner -> (its cell, the digit our cells differ in).
    bridges: BTreeMap<PeerId, (u32, u8)>,
    ttl: u8,
}

/// One peer of a cellular room. Inputs: the server's [`Input::Plan`], link events,
/// [`Input::Frame`]s from linked peers and the application's [`Input::Broadcast`]s.
/// Outputs: links to open and close (through an inner [`FullMesh`] over the planned
/// peers), frames to send, broadcasts to deliver, and state for display.
#[derive(Debug)]
pub struct CellMesh {
    me: PeerId,
    config: CellMeshConfig,
    now: Instant,
    links: FullMesh,
    plan: Option<Plan>,
    /// The planned peers: cell mates and bridge partners.
    wanted: BTreeSet<PeerId>,
    up: BTreeSet<PeerId>,
    /// Broadcasts seen, with what this peer did with them ([`FLOODED`], [`BRIDGED`]).
    seen: HashMap<(PeerId, u64), u8>,
    seen_order: VecDeque<(Instant, PeerId, u64)>,
    next_seq: u64,
    known: HashMap<PeerId, u32>,
    waiting: VecDeque<Vec<u8>>,
    /// Frames for planned peers whose link is not open yet (a new plan's links take a
    /// moment to come up): sent when it opens, the oldest dropped past [`PENDING_MAX`].
    pending: HashMap<PeerId, VecDeque<MeshFrame>>,
    /// Broadcasts of the last [`RECENT`], as they came or left: a new plan sends them to
    /// the peers it newly names, so that one in flight while the links change (a leaving
    /// bridge, a mate moved to another cell) still reaches everyone.
    recent: VecDeque<(Instant, MeshFrame)>,
    outputs: VecDeque<Output>,
    duplicates: u64,
}

/// This peer sent the broadcast to its cell mates.
const FLOODED: u8 = 1;
/// This peer sent the broadcast over its bridges.
const BRIDGED: u8 = 2;

/// Frames held for one planned peer whose link is not open yet.
const PENDING_MAX: usize = 64;
/// How long a broadcast is kept to be sent again over a new plan's links, and how many.
const RECENT: Duration = Duration::from_secs(2);
const RECENT_MAX: usize = 256;

/// Peers whose cell a node remembers for display before it starts over.
const KNOWN_MAX: usize = 4096;

impl CellMesh {
    /// A peer with no plan yet. `seed` drives link retry jitter.
    pub fn new(me: PeerId, config: CellMeshConfig, now: Instant, seed: u64) -> Self {
        let links = FullMesh::with_seed(config.links.clone(), now, seed);
        Self {
            me,
            config,
            now,
            links,
            plan: None,
            wanted: BTreeSet::new(),
            up: BTreeSet::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            next_seq: 1,
            known: HashMap::new(),
            waiting: VecDeque::new(),
            pending: HashMap::new(),
            recent: VecDeque::new(),
            outputs: VecDeque::new(),
            duplicates: 0,
        }
    }

    /// Copies of broadcasts received after the first, since start.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// This peer's place, once it has a plan.
    pub fn state(&self) -> Option<MeshState> {
        let plan = self.plan.as_ref()?;
        Some(MeshState {
            cell: plan.cell,
            cells: plan.layout.cell_count(),
            cell_size: plan.size,
            is_bridge: !plan.bridges.is_empty(),
            bridges: plan
                .bridges
                .iter()
                .map(|(p, (cell, _))| (p.clone(), *cell))
                .collect(),
            epoch: plan.epoch,
            radices: plan.layout.radices().to_vec(),
        })
    }

    /// Whether every planned link is open.
    pub fn settled(&self) -> bool {
        self.plan.is_some() && self.wanted.iter().all(|p| self.up.contains(p))
    }

    fn learn(&mut self, peer: &PeerId, cell: u32) {
        if *peer == self.me || self.known.get(peer) == Some(&cell) {
            return;
        }
        if self.known.len() >= KNOWN_MAX {
            self.known.clear();
        }
        self.known.insert(peer.clone(), cell);
        self.outputs.push_back(Output::PeerCell {
            peer: peer.clone(),
            cell,
        });
    }

    fn on_plan(&mut self, plan: CellPlan) {
        let Some(layout) = Layout::from_radices(&plan.radices) else {
            tracing::warn!(radices = ?plan.radices, "cell plan with an invalid layout ignored");
            return;
        };
        if plan.cell >= layout.cell_count() {
            tracing::warn!(
                cell = plan.cell,
                "cell plan naming a cell outside its layout ignored"
            );
            return;
        }
        if self.plan.as_ref().is_some_and(|p| p.epoch > plan.epoch) {
            return;
        }
        let before = std::mem::take(&mut self.wanted);
        let mut bridges = BTreeMap::new();
        for b in &plan.bridges {
            if let Some(dim) = layout.edge_digit(plan.cell, b.cell) {
                bridges.insert(b.peer.peer.clone(), (b.cell, dim));
            }
        }
        let ttl = (2 * layout.diameter() + 4).min(usize::from(u8::MAX)) as u8;
        let mates: Vec<PeerId> = plan
            .members
            .iter()
            .map(|m| m.peer.clone())
            .filter(|p| *p != self.me)
            .collect();
        let after: BTreeSet<PeerId> = mates.iter().chain(bridges.keys()).cloned().collect();
        self.plan = Some(Plan {
            epoch: plan.epoch,
            layout,
            cell: plan.cell,
            size: plan.members.len(),
            mates,
            bridges,
            ttl,
        });
        self.wanted = after.clone();
        let now = self.now;
        for gone in before.difference(&after) {
            self.up.remove(gone);
            self.pending.remove(gone);
            self.links.handle_input(Input::PeerGone {
                peer: gone.clone(),
                now,
            });
        }
        let newly: Vec<PeerId> = after.difference(&before).cloned().collect();
        for new in after.difference(&before) {
            // The smaller id offers: both ends compute the same.
            let origin = if self.me < *new {
                Appearance::Roster
            } else {
                Appearance::Joined
            };
            self.links.handle_input(Input::PeerAppeared {
                peer: new.clone(),
                origin,
                now,
            });
        }
        for m in &plan.members {
            self.learn(&m.peer, plan.cell);
        }
        for b in &plan.bridges {
            self.learn(&b.peer.peer, b.cell);
        }
        if let Some(state) = self.state() {
            self.outputs.push_back(Output::State(state));
        }
        // What went round just before may not have reached the peers the plan moved: they
        // get it again (once their link opens; their filter drops what they had).
        let recent: Vec<MeshFrame> = self
            .recent
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < RECENT)
            .map(|(_, f)| f.clone())
            .collect();
        for peer in &newly {
            for frame in &recent {
                let again = MeshFrame {
                    hops: frame.hops.saturating_add(1),
                    dim: None,
                    intra: false,
                    ..frame.clone()
                };
                if again.hops < again.ttl {
                    self.send(peer, again);
                }
            }
        }
        self.flush_waiting();
    }

    /// Keeps a broadcast for [`RECENT`].
    fn keep(&mut self, frame: &MeshFrame) {
        let cutoff = self.now.checked_sub(RECENT);
        while let Some((at, _)) = self.recent.front() {
            if self.recent.len() >= RECENT_MAX || cutoff.is_some_and(|c| *at < c) {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back((self.now, frame.clone()));
    }

    /// What this peer has done with a broadcast; `None` if it is new (then remembered).
    fn remember(&mut self, origin: &PeerId, seq: u64) -> Option<u8> {
        let key = (origin.clone(), seq);
        if let Some(flags) = self.seen.get(&key) {
            return Some(*flags);
        }
        self.seen.insert(key, 0);
        self.seen_order
            .push_back((self.now + self.config.dedup_window, origin.clone(), seq));
        None
    }

    fn expire(&mut self) {
        while let Some((at, _, _)) = self.seen_order.front() {
            if *at > self.now {
                break;
            }
            if let Some((_, origin, seq)) = self.seen_order.pop_front() {
                self.seen.remove(&(origin, seq));
            }
        }
    }

    fn send(&mut self, peer: &PeerId, frame: MeshFrame) {
        if self.up.contains(peer) {
            self.outputs.push_back(Output::Send {
                peer: peer.clone(),
                frame,
            });
        } else if self.wanted.contains(peer) {
            // Planned, its link not open yet (or back soon): it goes when the link opens.
            let queue = self.pending.entry(peer.clone()).or_default();
            if queue.len() >= PENDING_MAX {
                queue.pop_front();
            }
            queue.push_back(frame);
        }
    }

    fn broadcast(&mut self, data: Vec<u8>) {
        let Some(plan) = &self.plan else {
            if self.waiting.len() >= self.config.waiting_max {
                self.waiting.pop_front();
            }
            self.waiting.push_back(data);
            return;
        };
        let frame = MeshFrame {
            origin: self.me.clone(),
            seq: self.next_seq,
            hops: 0,
            ttl: plan.ttl,
            dim: None,
            intra: false,
            epoch: plan.epoch,
            origin_cell: plan.cell,
            data,
        };
        self.next_seq += 1;
        self.remember(&frame.origin, frame.seq);
        self.keep(&frame);
        self.forward(None, frame, 0);
    }

    fn flush_waiting(&mut self) {
        if self.plan.is_none() {
            return;
        }
        for data in std::mem::take(&mut self.waiting) {
            self.broadcast(data);
        }
    }

    fn on_frame(&mut self, from: PeerId, frame: MeshFrame) {
        let done = match self.remember(&frame.origin, frame.seq) {
            Some(done) => {
                self.duplicates += 1;
                done
            }
            None => {
                self.keep(&frame);
                self.learn(&frame.origin, frame.origin_cell);
                self.outputs.push_back(Output::Deliver {
                    origin: frame.origin.clone(),
                    data: frame.data.clone(),
                    hops: frame.hops.saturating_add(1),
                });
                0
            }
        };
        if frame.hops.saturating_add(1) >= frame.ttl {
            return;
        }
        let forwarded = MeshFrame {
            hops: frame.hops + 1,
            ..frame
        };
        self.forward(Some(from), forwarded, done);
    }

    /// Sends a frame on from this peer: `from` is the link it came on (`None` at the
    /// origin), `done` what this peer already did with it. Every peer a frame enters a cell
    /// at floods the cell, even one that had the frame from a cell mate first: the cell's
    /// other entries are its redundancy. Every peer sends it over its bridges once.
    fn forward(&mut self, from: Option<PeerId>, frame: MeshFrame, done: u8) {
        let Some(plan) = &self.plan else {
            return;
        };
        let flood = !frame.intra && done & FLOODED == 0;
        let bridge = done & BRIDGED == 0;
        if !flood && !bridge {
            return;
        }
        let key = (frame.origin.clone(), frame.seq);
        let mut sends: Vec<(PeerId, MeshFrame)> = Vec::new();
        if frame.epoch != plan.epoch {
            if let Some(flags) = self.seen.get_mut(&key) {
                *flags |= FLOODED | BRIDGED;
            }
            if done != 0 {
                return;
            }
            // Layouts disagree while a new one spreads: flood, the filter stops copies.
            for peer in &self.wanted {
                if Some(peer) != from.as_ref() {
                    sends.push((
                        peer.clone(),
                        MeshFrame {
                            dim: None,
                            intra: false,
                            ..frame.clone()
                        },
                    ));
                }
            }
        } else {
            if let Some(flags) = self.seen.get_mut(&key) {
                *flags |= if flood { FLOODED } else { 0 } | if bridge { BRIDGED } else { 0 };
            }
            if flood {
                for peer in &plan.mates {
                    if Some(peer) != from.as_ref() {
                        sends.push((
                            peer.clone(),
                            MeshFrame {
                                intra: true,
                                ..frame.clone()
                            },
                        ));
                    }
                }
            }
            let above = frame.dim.map_or(0, |d| usize::from(d) + 1);
            for (peer, (_, dim)) in &plan.bridges {
                if bridge && usize::from(*dim) >= above && Some(peer) != from.as_ref() {
                    sends.push((
                        peer.clone(),
                        MeshFrame {
                            dim: Some(*dim),
                            intra: false,
                            ..frame.clone()
                        },
                    ));
                }
            }
        }
        for (peer, f) in sends {
            self.send(&peer, f);
        }
    }
}

impl Topology for CellMesh {
    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Plan { plan, now } => {
                self.now = self.now.max(now);
                self.on_plan(plan);
            }
            Input::Frame { from, frame, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::Heard {
                    peer: from.clone(),
                    now,
                });
                self.on_frame(from, frame);
            }
            Input::Broadcast { data, now } => {
                self.now = self.now.max(now);
                self.broadcast(data);
            }
            Input::LinkUp { peer, now } => {
                self.now = self.now.max(now);
                if self.wanted.contains(&peer) {
                    self.up.insert(peer.clone());
                    for frame in self.pending.remove(&peer).unwrap_or_default() {
                        self.outputs.push_back(Output::Send {
                            peer: peer.clone(),
                            frame,
                        });
                    }
                }
                self.links.handle_input(Input::LinkUp { peer, now });
            }
            Input::LinkDown { peer, now } => {
                self.now = self.now.max(now);
                self.up.remove(&peer);
                self.links.handle_input(Input::LinkDown { peer, now });
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                self.expire();
                self.links.handle_input(Input::Tick { now });
            }
            Input::Heard { peer, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::Heard { peer, now });
            }
            // Membership comes from plans, not from the roster.
            Input::PeerAppeared { .. } | Input::PeerGone { .. } => {}
        }
    }

    fn poll_output(&mut self) -> Output {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        match self.links.poll_output() {
            Output::Timeout(at) => {
                let expiry = self.seen_order.front().map(|(t, _, _)| *t);
                Output::Timeout(expiry.map_or(at, |e| e.min(at)))
            }
            Output::Disconnect { peer, reason } => {
                self.up.remove(&peer);
                Output::Disconnect { peer, reason }
            }
            other => other,
        }
    }

    fn neighbours(&self) -> Vec<PeerId> {
        self.wanted.iter().cloned().collect()
    }
}

#[cfg(test)]
#[path = "cells_tests.rs"]
mod tests;
