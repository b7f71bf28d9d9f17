//! The server's side of a cellular room: who sits in which cell, which peers bridge which
//! cells, and which peers must hear that their part of it changed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use plenum_proto::PeerId;
use plenum_proto::overlay::{BridgeLink, CellPlan, TopologySpec};
use plenum_proto::signal::PeerSummary;

use super::layout::Layout;
use crate::ConfigError;

/// Settings of a [`CellDirectory`]; from a room's [`TopologySpec`] or the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellDirectoryConfig {
    cell_size: Option<u16>,
    bridges_per_edge: u16,
    max_cell_size: u16,
    target_cells: u32,
}

impl Default for CellDirectoryConfig {
    fn default() -> Self {
        Self {
            cell_size: None,
            bridges_per_edge: 2,
            max_cell_size: 48,
            target_cells: 100,
        }
    }
}

/// Builder of [`CellDirectoryConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct CellDirectoryConfigBuilder(CellDirectoryConfig);

impl CellDirectoryConfigBuilder {
    /// Most peers per cell; `None` (the default) picks it from the room's size.
    pub fn cell_size(mut self, size: Option<u16>) -> Self {
        self.0.cell_size = size;
        self
    }
    /// Links between each pair of neighbouring cells (default 2).
    pub fn bridges_per_edge(mut self, n: u16) -> Self {
        self.0.bridges_per_edge = n;
        self
    }
    /// The largest cell an automatic cell size makes (default 48).
    pub fn max_cell_size(mut self, n: u16) -> Self {
        self.0.max_cell_size = n;
        self
    }
    /// How many cells an automatic cell size aims for (default 100).
    pub fn target_cells(mut self, n: u32) -> Self {
        self.0.target_cells = n;
        self
    }
    /// Validates the settings.
    pub fn build(self) -> Result<CellDirectoryConfig, ConfigError> {
        let c = self.0;
        if let Some(size) = c.cell_size
            && !(3..=1024).contains(&size)
        {
            return Err(ConfigError::Inconsistent(
                "cell_size must be between 3 and 1024",
            ));
        }
        if !(1..=8).contains(&c.bridges_per_edge) {
            return Err(ConfigError::Inconsistent(
                "bridges_per_edge must be between 1 and 8",
            ));
        }
        if !(3..=1024).contains(&c.max_cell_size) {
            return Err(ConfigError::Inconsistent(
                "max_cell_size must be between 3 and 1024",
            ));
        }
        if c.target_cells == 0 {
            return Err(ConfigError::Zero("target_cells"));
        }
        Ok(c)
    }
}

impl CellDirectoryConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CellDirectoryConfigBuilder {
        CellDirectoryConfigBuilder(Self::default())
    }

    /// The settings of a room's topology; `None` for a full mesh.
    pub fn from_spec(spec: &TopologySpec) -> Result<Option<Self>, ConfigError> {
        match spec {
            TopologySpec::Mesh
            | TopologySpec::Tree { .. }
            | TopologySpec::Relay { .. }
            | TopologySpec::Host {} => Ok(None),
            TopologySpec::Cells {
                cell_size,
                bridges_per_edge,
                max_cell_size,
                target_cells,
            } => Self::builder()
                .cell_size(*cell_size)
                .bridges_per_edge(*bridges_per_edge)
                .max_cell_size(*max_cell_size)
                .target_cells(*target_cells)
                .build()
                .map(Some),
        }
    }

    /// Links between each pair of neighbouring cells.
    pub fn bridges_per_edge(&self) -> u16 {
        self.bridges_per_edge
    }

    /// Most peers per cell in a room of `n`.
    pub fn cap(&self, n: usize) -> usize {
        match self.cell_size {
            Some(size) => usize::from(size),
            None => {
                let wanted = (n * 3).div_ceil(2 * self.target_cells as usize);
                wanted
                    .clamp(8, usize::from(self.max_cell_size).max(8))
                    .min(usize::from(self.max_cell_size))
            }
        }
    }

    /// Cells for a room of `n` laid out anew: cells two thirds full, so that the room can
    /// grow by half before the next layout.
    fn cells_for(&self, n: usize) -> u32 {
        let cap = self.cap(n);
        if n <= cap {
            return 1;
        }
        let fill = (cap * 2 / 3).max(2);
        n.div_ceil(fill).min(u32::MAX as usize) as u32
    }
}

/// A room of several cells becomes one again when it holds this many fewer peers than a
/// cell may.
const SHRINK_MARGIN: usize = 2;

/// The cell plan of a cellular room, kept by the signaling server.
///
/// Peers go to the smallest cell (cells differ by at most one peer); when every cell is
/// full the room is laid out anew with more cells (a new epoch), keeping as many peers in
/// their cells as it can; when it shrinks to a quarter, with fewer, and when it fits one
/// cell with two places to spare, as one cell (a full mesh). Each edge of the cell
/// graph ([`Layout`]) has `bridges_per_edge` links between distinct peers of its two cells,
/// given to the peers with the fewest bridges so that no peer carries more than two more
/// than its cell mates. Each change marks the peers whose plan it touched; only they are
/// sent a plan ([`poll_plan`](Self::poll_plan)): a join costs its cell and a few bridge
/// ends, not the room. It has no timers: it changes only on joins and leaves.
#[derive(Debug)]
pub struct CellDirectory {
    config: CellDirectoryConfig,
    seed: u64,
    epoch: u32,
    layout: Layout,
    cells: Vec<BTreeSet<PeerId>>,
    by_size: BTreeSet<(usize, u32)>,
    peers: BTreeMap<PeerId, (PeerSummary, u32)>,
    /// Bridge links per cell edge `(low, high)`: pairs of (end in low, end in high).
    edges: BTreeMap<(u32, u32), Vec<(PeerId, PeerId)>>,
    load: BTreeMap<PeerId, u32>,
    dirty: BTreeSet<PeerId>,
    queued: VecDeque<PeerId>,
    /// The room is held in one cell, however many it holds (see
    /// [`hold_one_cell`](Self::hold_one_cell)).
    held: bool,
}

impl CellDirectory {
    /// An empty room. `seed` breaks ties between equally good bridge ends.
    pub fn new(config: CellDirectoryConfig, seed: u64) -> Self {
        let mut d = Self {
            config,
            seed,
            epoch: 1,
            layout: Layout::single(),
            cells: vec![BTreeSet::new()],
            by_size: BTreeSet::new(),
            peers: BTreeMap::new(),
            edges: BTreeMap::new(),
            load: BTreeMap::new(),
            dirty: BTreeSet::new(),
            queued: VecDeque::new(),
            held: false,
        };
        d.by_size.insert((0, 0));
        d
    }

    /// Peers in the room.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The current layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The cell of `peer`.
    pub fn cell_of(&self, peer: &PeerId) -> Option<u32> {
        self.peers.get(peer).map(|(_, c)| *c)
    }

    /// The members of every cell, by cell.
    pub fn cells(&self) -> &[BTreeSet<PeerId>] {
        &self.cells
    }

    /// The bridge links of every cell edge.
    pub fn edges(&self) -> &BTreeMap<(u32, u32), Vec<(PeerId, PeerId)>> {
        &self.edges
    }

    /// Holds a room of one cell in one cell, however it grows (a member that can link
    /// only in a full mesh is in it), or lets it go: a room then over its cell size is
    /// laid out anew at once. A room of several cells is not held (the server does not
    /// let such a member into it).
    pub fn hold_one_cell(&mut self, hold: bool) {
        let hold = hold && self.layout.cell_count() == 1;
        if self.held == hold {
            return;
        }
        self.held = hold;
        let n = self.peers.len();
        if !hold && n > self.config.cap(n) {
            self.relayout();
        }
    }

    /// Whether the room is held in one cell.
    pub fn held(&self) -> bool {
        self.held
    }

    /// A peer enters the room.
    pub fn handle_join(&mut self, peer: PeerSummary) {
        let id = peer.peer.clone();
        if self.peers.contains_key(&id) {
            self.mark(&id);
            return;
        }
        let n = self.peers.len() + 1;
        if !self.held && n > self.layout.cell_count() as usize * self.config.cap(n) {
            self.peers.insert(id, (peer, 0));
            return self.relayout();
        }
        let Some(&(_, cell)) = self.by_size.first() else {
            return;
        };
        self.peers.insert(id.clone(), (peer, cell));
        self.place(&id, cell);
        self.balance(cell);
    }

    /// A peer leaves the room (or was given up).
    pub fn handle_leave(&mut self, peer: &PeerId) {
        let Some((_, cell)) = self.peers.remove(peer) else {
            return;
        };
        self.unplace(peer, cell);
        self.load.remove(peer);
        self.dirty.remove(peer);
        let n = self.peers.len();
        let cells = self.layout.cell_count() as usize;
        // Back to one cell (a full mesh) once the room fits it with two seats to spare, so
        // that a peer coming and going at the size does not split and join it each time.
        let fits_one = n + SHRINK_MARGIN <= self.config.cap(n);
        if cells > 1 && (fits_one || n * 4 < cells * self.config.cap(n) || n < cells * 2) {
            return self.relayout();
        }
        self.balance(cell);
        // Keep cells within one peer of each other: the biggest gives one up.
        if let Some(&(big, from)) = self.by_size.last()
            && big > self.cells[cell as usize].len() + 1
        {
            let mover = self.cells[from as usize]
                .iter()
                .min_by_key(|p| (self.load.get(*p).copied().unwrap_or(0), (*p).clone()))
                .cloned();
            if let Some(mover) = mover {
                self.unplace(&mover, from);
                if let Some(entry) = self.peers.get_mut(&mover) {
                    entry.1 = cell;
                }
                self.place(&mover, cell);
                self.balance(from);
                self.balance(cell);
            }
        }
    }

    /// The next plan to send: to whom, and what.
    pub fn poll_plan(&mut self) -> Option<(PeerId, CellPlan)> {
        if self.queued.is_empty() {
            self.queued.extend(std::mem::take(&mut self.dirty));
        }
        while let Some(peer) = self.queued.pop_front() {
            if let Some(plan) = self.plan(&peer) {
                return Some((peer, plan));
            }
        }
        None
    }

    /// The current plan of `peer` (for a peer that resumed its session).
    pub fn plan(&self, peer: &PeerId) -> Option<CellPlan> {
        let cell = self.cell_of(peer)?;
        let members = self.cells[cell as usize]
            .iter()
            .filter_map(|p| self.peers.get(p).map(|(s, _)| s.clone()))
            .collect();
        let mut bridges = Vec::new();
        for (_, other) in self.layout.neighbours(cell) {
            let key = (cell.min(other), cell.max(other));
            for (lo, hi) in self.edges.get(&key).into_iter().flatten() {
                let (mine, theirs) = if cell < other { (lo, hi) } else { (hi, lo) };
                if mine == peer
                    && let Some((summary, _)) = self.peers.get(theirs)
                {
                    bridges.push(BridgeLink {
                        peer: summary.clone(),
                        cell: other,
                    });
                }
            }
        }
        Some(CellPlan {
            epoch: self.epoch,
            radices: self.layout.radices().to_vec(),
            cell,
            members,
            bridges,
        })
    }

    fn mark(&mut self, peer: &PeerId) {
        if self.peers.contains_key(peer) {
            self.dirty.insert(peer.clone());
        }
    }

    fn resize(&mut self, cell: u32, before: usize, after: usize) {
        self.by_size.remove(&(before, cell));
        self.by_size.insert((after, cell));
    }

    /// Puts `peer` in `cell`: its cell mates hear of it, the cell's edges get their ends.
    fn place(&mut self, peer: &PeerId, cell: u32) {
        let before = self.cells[cell as usize].len();
        self.cells[cell as usize].insert(peer.clone());
        self.resize(cell, before, before + 1);
        self.load.entry(peer.clone()).or_insert(0);
        self.mark_cell(cell);
        self.fix_edges(cell);
    }

    /// Takes `peer` out of `cell`; its bridge links go to cell mates.
    fn unplace(&mut self, peer: &PeerId, cell: u32) {
        let before = self.cells[cell as usize].len();
        if !self.cells[cell as usize].remove(peer) {
            return;
        }
        self.resize(cell, before, before - 1);
        self.mark_cell(cell);
        self.fix_edges(cell);
    }

    /// Fixes every edge of `cell`; the cells at their far ends may have lost or gained
    /// bridge ends, so they are balanced too.
    fn fix_edges(&mut self, cell: u32) {
        let neighbours = self.layout.neighbours(cell);
        for (_, other) in &neighbours {
            self.fix_edge(cell, *other);
        }
        for (_, other) in neighbours {
            self.balance(other);
        }
    }

    fn mark_cell(&mut self, cell: u32) {
        let members: Vec<PeerId> = self.cells[cell as usize].iter().cloned().collect();
        for p in members {
            self.mark(&p);
        }
    }

    fn rank(&self, peer: &PeerId, key: (u32, u32)) -> u64 {
        let mut h = self.seed ^ 0xcbf2_9ce4_8422_2325 ^ (u64::from(key.0) << 32 | u64::from(key.1));
        for b in peer.as_str().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h
    }

    /// The least loaded peer of `cell` not in `taken`.
    fn best_end(&self, cell: u32, key: (u32, u32), taken: &BTreeSet<&PeerId>) -> Option<PeerId> {
        self.cells[cell as usize]
            .iter()
            .filter(|p| !taken.contains(p))
            .min_by_key(|p| (self.load.get(*p).copied().unwrap_or(0), self.rank(p, key)))
            .cloned()
    }

    fn add_load(&mut self, peer: &PeerId, delta: i32) {
        if let Some(l) = self.load.get_mut(peer) {
            *l = l.saturating_add_signed(delta);
        }
        self.mark(peer);
    }

    /// Drops the edge's links whose ends left their cells and adds links until it has
    /// `bridges_per_edge` (or as many as the smaller cell allows).
    fn fix_edge(&mut self, a: u32, b: u32) {
        let key = (a.min(b), a.max(b));
        let mut pairs = self.edges.remove(&key).unwrap_or_default();
        let (lo, hi) = (&self.cells[key.0 as usize], &self.cells[key.1 as usize]);
        let want = usize::from(self.config.bridges_per_edge)
            .min(lo.len())
            .min(hi.len());
        let mut dropped = Vec::new();
        pairs.retain(|(x, y)| {
            let keep = lo.contains(x) && hi.contains(y);
            if !keep {
                dropped.push((x.clone(), y.clone()));
            }
            keep
        });
        while pairs.len() > want {
            if let Some(p) = pairs.pop() {
                dropped.push(p);
            }
        }
        for (x, y) in dropped {
            self.add_load(&x, -1);
            self.add_load(&y, -1);
        }
        while pairs.len() < want {
            let taken_lo: BTreeSet<&PeerId> = pairs.iter().map(|(x, _)| x).collect();
            let taken_hi: BTreeSet<&PeerId> = pairs.iter().map(|(_, y)| y).collect();
            let (Some(x), Some(y)) = (
                self.best_end(key.0, key, &taken_lo),
                self.best_end(key.1, key, &taken_hi),
            ) else {
                break;
            };
            self.add_load(&x, 1);
            self.add_load(&y, 1);
            pairs.push((x, y));
        }
        if !pairs.is_empty() {
            self.edges.insert(key, pairs);
        }
    }

    /// Moves bridge ends from the most to the least loaded peers of `cell` until their
    /// loads differ by at most two.
    fn balance(&mut self, cell: u32) {
        for _ in 0..self.cells[cell as usize].len() * 2 {
            let members = &self.cells[cell as usize];
            let load = |p: &PeerId| self.load.get(p).copied().unwrap_or(0);
            let (Some(most), Some(least)) = (
                members
                    .iter()
                    .max_by_key(|p| (load(p), (*p).clone()))
                    .cloned(),
                members
                    .iter()
                    .min_by_key(|p| (load(p), (*p).clone()))
                    .cloned(),
            ) else {
                return;
            };
            // A spread of two is let be: moving a bridge costs two links, and a newcomer
            // would otherwise take one at every join.
            if load(&most) <= load(&least) + 2 {
                return;
            }
            let mut moved = false;
            for (_, other) in self.layout.neighbours(cell) {
                let key = (cell.min(other), cell.max(other));
                let low_side = cell == key.0;
                let Some(pairs) = self.edges.get_mut(&key) else {
                    continue;
                };
                let side = |pair: &(PeerId, PeerId)| {
                    if low_side {
                        pair.0.clone()
                    } else {
                        pair.1.clone()
                    }
                };
                if pairs.iter().any(|pr| side(pr) == least) {
                    continue;
                }
                let Some(pair) = pairs.iter_mut().find(|pr| side(pr) == most) else {
                    continue;
                };
                let far = if low_side {
                    pair.0 = least.clone();
                    pair.1.clone()
                } else {
                    pair.1 = least.clone();
                    pair.0.clone()
                };
                self.add_load(&most, -1);
                self.add_load(&least, 1);
                self.mark(&far);
                moved = true;
                break;
            }
            if !moved {
                return;
            }
        }
    }

    /// Lays the room out anew for its size: more or fewer cells, a new epoch. Peers stay in
    /// their cell where the cell remains and has room; the rest fill the smallest cells.
    fn relayout(&mut self) {
        let n = self.peers.len();
        let cap = self.config.cap(n);
        let mut count = self.config.cells_for(n);
        let mut layout = Layout::for_cells(count, cap.min(usize::from(u16::MAX)) as u16);
        while layout.cell_count() as usize > n.max(1) && count > 1 {
            count -= 1;
            layout = Layout::for_cells(count, cap.min(usize::from(u16::MAX)) as u16);
        }
        let cells = layout.cell_count() as usize;
        let keep = n / cells.max(1);
        let mut fresh: Vec<BTreeSet<PeerId>> = vec![BTreeSet::new(); cells];
        let mut pool = Vec::new();
        let epoch = self.epoch + 1;
        for (id, (_, old)) in &self.peers {
            pool.push((old, self.rank(id, (epoch, 0)), id.clone()));
        }
        // Within each old cell, a seeded order decides who stays.
        pool.sort();
        let mut rest = Vec::new();
        for (old, _, id) in pool {
            match fresh.get_mut(*old as usize) {
                Some(cell) if cell.len() < keep => {
                    cell.insert(id);
                }
                _ => rest.push(id),
            }
        }
        self.epoch = epoch;
        self.layout = layout;
        self.by_size = fresh
            .iter()
            .enumerate()
            .map(|(c, m)| (m.len(), c as u32))
            .collect();
        self.cells = fresh;
        for id in rest {
            if let Some(&(size, cell)) = self.by_size.first() {
                self.cells[cell as usize].insert(id);
                self.resize(cell, size, size + 1);
            }
        }
        for (c, members) in self.cells.iter().enumerate() {
            for id in members {
                if let Some(entry) = self.peers.get_mut(id) {
                    entry.1 = c as u32;
                }
            }
        }
        self.edges.clear();
        self.load = self.peers.keys().map(|p| (p.clone(), 0)).collect();
        for cell in 0..cells as u32 {
            for (_, other) in self.layout.neighbours(cell) {
                if other > cell {
                    self.fix_edge(cell, other);
                }
            }
        }
        for cell in 0..cells as u32 {
            self.balance(cell);
        }
        self.dirty = self.peers.keys().cloned().collect();
        self.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_proto::DisplayName;

    fn summary(i: usize) -> PeerSummary {
        PeerSummary {
            peer: PeerId::new(format!("p{i:04}")).unwrap(),
            name: DisplayName::new(format!("peer {i}")).unwrap(),
            publish: true,
            role: Default::default(),
        }
    }

    fn drain(d: &mut CellDirectory) -> Vec<(PeerId, CellPlan)> {
        std::iter::from_fn(|| d.poll_plan()).collect()
    }

    fn fixed(size: u16) -> CellDirectory {
        let config = CellDirectoryConfig::builder()
            .cell_size(Some(size))
            .build()
            .unwrap();
        CellDirectory::new(config, 7)
    }

    #[test]
    fn a_small_room_is_one_cell_and_every_member_hears_of_a_newcomer() {
        let mut d = fixed(6);
        for i in 0..5 {
            d.handle_join(summary(i));
        }
        drain(&mut d);
        d.handle_join(summary(5));
        let plans = drain(&mut d);
        assert_eq!(plans.len(), 6, "the newcomer and its five cell mates");
        for (_, plan) in &plans {
            assert_eq!(plan.radices, Vec::<u16>::new());
            assert_eq!(plan.members.len(), 6);
            assert!(plan.bridges.is_empty());
        }
    }

    #[test]
    fn outgrowing_the_cell_splits_the_room_with_bridges_between_the_cells() {
        let mut d = fixed(6);
        for i in 0..7 {
            d.handle_join(summary(i));
        }
        let plans = drain(&mut d);
        assert_eq!(d.layout().radices(), &[2]);
        assert_eq!(d.epoch(), 2);
        assert_eq!(plans.len(), 7, "a new layout tells everyone");
        let sizes: Vec<usize> = d.cells().iter().map(BTreeSet::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 7);
        assert!(sizes.iter().all(|s| (3..=4).contains(s)), "{sizes:?}");
        let pairs = &d.edges()[&(0, 1)];
        assert_eq!(pairs.len(), 2);
        // Each bridge end is named in its own plan, pointing at the other end.
        for (x, y) in pairs {
            let plan = d.plan(x).unwrap();
            assert!(
                plan.bridges
                    .iter()
                    .any(|b| &b.peer.peer == y && b.cell == 1)
            );
        }
    }

    #[test]
    fn a_held_room_stays_one_cell_past_its_size_and_splits_once_let_go() {
        let mut d = fixed(6);
        for i in 0..5 {
            d.handle_join(summary(i));
        }
        drain(&mut d);
        d.hold_one_cell(true);
        assert!(d.held());
        for i in 5..9 {
            d.handle_join(summary(i));
        }
        let plans = drain(&mut d);
        assert_eq!(d.layout().cell_count(), 1, "held: one cell of nine");
        assert_eq!(d.epoch(), 1);
        assert!(
            plans
                .iter()
                .all(|(_, p)| p.members.len() == 9 && p.bridges.is_empty())
        );
        // Let go, the nine are laid out anew at once, and everyone is told.
        d.hold_one_cell(false);
        assert!(!d.held());
        assert_eq!(d.layout().cell_count(), 3, "nine in cells two thirds full");
        assert_eq!(drain(&mut d).len(), 9);
        // A room of several cells cannot be held.
        d.hold_one_cell(true);
        assert!(!d.held());
    }

    #[test]
    fn a_room_that_shrinks_to_fit_one_cell_with_room_to_spare_is_one_cell_again() {
        let mut d = fixed(6);
        for i in 0..7 {
            d.handle_join(summary(i));
        }
        drain(&mut d);
        assert_eq!(d.layout().cell_count(), 2);
        // Six would fill the cell: the room stays split until it is down to four.
        d.handle_leave(&summary(6).peer);
        d.handle_leave(&summary(5).peer);
        assert_eq!(d.layout().cell_count(), 2);
        d.handle_leave(&summary(4).peer);
        let plans = drain(&mut d);
        assert_eq!(d.layout().cell_count(), 1);
        assert_eq!(d.epoch(), 3);
        assert_eq!(plans.len(), 4, "a new layout tells everyone");
        for (_, plan) in &plans {
            assert_eq!(plan.members.len(), 4);
            assert!(plan.bridges.is_empty());
        }
    }

    #[test]
    fn a_join_in_a_big_room_touches_its_cell_and_a_few_bridge_ends() {
        let mut d = CellDirectory::new(CellDirectoryConfig::default(), 1);
        for i in 0..3000 {
            d.handle_join(summary(i));
        }
        drain(&mut d);
        let cells = d.layout().cell_count();
        d.handle_join(summary(3000));
        let plans = drain(&mut d);
        let cell = d.cell_of(&summary(3000).peer).unwrap();
        let size = d.cells()[cell as usize].len();
        assert_eq!(d.layout().cell_count(), cells, "no new layout");
        assert!(
            plans.len() >= size && plans.len() <= size + 12,
            "{} plans for a cell of {size}",
            plans.len()
        );
    }

    #[test]
    fn a_departed_bridge_is_replaced_and_its_partner_told() {
        let mut d = fixed(6);
        for i in 0..20 {
            d.handle_join(summary(i));
        }
        drain(&mut d);
        let (&key, pairs) = d.edges().iter().next().unwrap();
        let (gone, partner) = pairs[0].clone();
        d.handle_leave(&gone);
        let plans = drain(&mut d);
        assert!(
            plans.iter().any(|(p, _)| *p == partner),
            "the partner hears of the new end"
        );
        let pairs = &d.edges()[&key];
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|(x, y)| *x != gone && *y != gone));
    }

    #[test]
    fn topology_options_are_validated() {
        assert!(
            CellDirectoryConfig::builder()
                .cell_size(Some(2))
                .build()
                .is_err()
        );
        assert!(
            CellDirectoryConfig::builder()
                .bridges_per_edge(0)
                .build()
                .is_err()
        );
        assert!(
            CellDirectoryConfig::builder()
                .target_cells(0)
                .build()
                .is_err()
        );
        assert!(
            CellDirectoryConfig::from_spec(&TopologySpec::Mesh)
                .unwrap()
                .is_none()
        );
        assert!(
            CellDirectoryConfig::from_spec(&TopologySpec::cells(Some(6)))
                .unwrap()
                .is_some()
        );
    }
}
