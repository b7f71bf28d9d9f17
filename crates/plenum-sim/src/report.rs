//! The figures of a run.

use super::*;

impl Sim {
    pub(crate) fn report(&mut self, wall: Duration) -> SimReport {
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
            media: self.media_load(&degrees),
            wall_ms: wall.as_millis() as u64,
        }
    }
}

impl Sim {
    /// One presenter's stream through the room as it stands (see [`MediaLoad`]).
    fn media_load(&self, degrees: &[usize]) -> MediaLoad {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].alive)
            .collect();
        let others = live.len().saturating_sub(1);
        let tree = |n: usize| match &self.nodes[n].overlay {
            Overlay::Tree(t) => Some(t),
            _ => None,
        };
        let (presenter, uploads, reached) = if live.iter().any(|n| tree(*n).is_some()) {
            let root = live
                .iter()
                .copied()
                .find(|n| tree(*n).is_some_and(|t| t.is_root()));
            // Every attached node forwards to its children; the root's children get it
            // first-hand.
            let uploads: Vec<(usize, usize)> = live
                .iter()
                .map(|n| (*n, tree(*n).map_or(0, |t| t.children().len())))
                .collect();
            let reached = live
                .iter()
                .filter(|n| Some(**n) != root && tree(**n).is_some_and(|t| t.depth().is_some()))
                .count();
            (root, uploads, reached)
        } else if let Some(directory) = &self.directory {
            self.stage_load(directory, &live)
        } else {
            let presenter = live.first().copied();
            let uploads = live
                .iter()
                .map(|n| {
                    (
                        *n,
                        if Some(*n) == presenter {
                            degrees[*n]
                        } else {
                            0
                        },
                    )
                })
                .collect();
            let reached = presenter.map_or(0, |p| degrees[p]);
            (presenter, uploads, reached)
        };
        let presenter_upload = presenter
            .and_then(|p| uploads.iter().find(|(n, _)| *n == p))
            .map_or(0, |(_, u)| *u);
        let forwarding: Vec<usize> = uploads
            .iter()
            .filter(|(n, u)| Some(*n) != presenter && *u > 0)
            .map(|(_, u)| *u)
            .collect();
        let total: usize = uploads.iter().map(|(_, u)| u).sum();
        MediaLoad {
            reach: if others == 0 {
                1.0
            } else {
                round3(reached as f64 / others as f64)
            },
            presenter_upload,
            upload_max: forwarding.iter().copied().max().unwrap_or(0),
            upload_mean: round3(total as f64 / live.len().max(1) as f64),
            forwarders: forwarding.len(),
            download_max: usize::from(reached > 0),
            mesh_presenter_upload: others,
        }
    }
}

impl Sim {
    /// A seated voice through a cells room (the first live peer's): it follows the
    /// broadcast tree of cells rooted at its cell. Once copies are stopped, each edge of
    /// that tree carries it over one of its bridges, the peer at the far end floods its
    /// cell, and the speaker sends it to its own cell: every peer receives it once.
    fn stage_load(
        &self,
        directory: &CellDirectory,
        live: &[usize],
    ) -> (Option<usize>, Vec<(usize, usize)>, usize) {
        let presenter = live.first().copied();
        let index: HashMap<&PeerId, usize> =
            live.iter().map(|n| (&self.nodes[*n].id, *n)).collect();
        let mut uploads: HashMap<usize, usize> = live.iter().map(|n| (*n, 0)).collect();
        let origin = presenter.and_then(|p| directory.cell_of(&self.nodes[p].id));
        let (Some(presenter), Some(origin)) = (presenter, origin) else {
            return (presenter, uploads.into_iter().collect(), 0);
        };
        let layout = directory.layout();
        let mut reached = 0;
        for (cell, members) in directory.cells().iter().enumerate() {
            let cell = cell as u32;
            let others = members.len().saturating_sub(1);
            if cell == origin {
                *uploads.entry(presenter).or_default() += others;
                reached += others;
                continue;
            }
            let parent = layout
                .neighbours(cell)
                .into_iter()
                .map(|(_, n)| n)
                .find(|n| layout.enters_from(origin, cell, *n));
            let bridge = parent.and_then(|p| {
                let key = (p.min(cell), p.max(cell));
                let (low, high) = directory.edges().get(&key)?.first()?;
                Some(if p < cell { (low, high) } else { (high, low) })
            });
            let Some((near, far)) = bridge else {
                continue;
            };
            if let (Some(near), Some(far)) = (index.get(near), index.get(far)) {
                *uploads.entry(*near).or_default() += 1;
                *uploads.entry(*far).or_default() += others;
                reached += members.len();
            }
        }
        (Some(presenter), uploads.into_iter().collect(), reached)
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}
