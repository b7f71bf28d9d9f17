//! What the simulator checks while it runs: when a room has settled, the invariants every
//! topology must keep (bounded degrees, one component, delivery), and the first failure.

use super::*;

impl Sim {
    pub(crate) fn settled(&mut self) -> bool {
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

    pub(crate) fn check(&mut self) {
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
    pub(crate) fn fail(&mut self, failure: Failure) {
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
    pub(crate) fn check_invariants(&mut self) {
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
    pub(crate) fn components(&self) -> usize {
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

    pub(crate) fn tree_depth_max(&self) -> Option<u32> {
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

    pub(crate) fn degrees(&self) -> Vec<usize> {
        let mut degree = vec![0usize; self.nodes.len()];
        for ((a, b), l) in &self.links {
            if l.up && self.nodes[*a].alive && self.nodes[*b].alive {
                degree[*a] += 1;
                degree[*b] += 1;
            }
        }
        degree
    }

    /// Takes the most links of one peer into `max_degree` if the room is settled now: in
    /// passing, a peer may hold more (a relay splice keeps the link on its way out until
    /// its replacement is up).
    pub(crate) fn sample_degree(&mut self) {
        if self.settled() {
            let degree = self.degrees().into_iter().max().unwrap_or(0);
            self.max_degree = self.max_degree.max(degree);
        }
    }
}
