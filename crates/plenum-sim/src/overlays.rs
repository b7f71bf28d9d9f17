//! The outputs of the tree and relay nodes, carried out on the simulated network.

use super::*;

impl Sim {
    /// What a tree node asks beyond links: messages over links or through the server, and
    /// broadcasts delivered.
    pub(crate) fn tree_output(&mut self, node: usize, output: TreeOutput) {
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
    pub(crate) fn crown(&mut self) {
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
    pub(crate) fn relay_output(&mut self, node: usize, output: RelayOutput) {
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
    pub(crate) fn delivered(&mut self, node: usize, data: &[u8], hops: u8) {
        if let Some(b) = broadcast_index(data) {
            let entry = self.deliveries.entry((b, node)).or_insert((0, hops));
            entry.0 += 1;
        }
    }
}
