//! A relay node's routing: new frames and their retries, greedy forwarding towards a
//! target, bridging through the server, and what comes back unreachable.

use super::*;

impl RelayNode {
    pub(super) fn route_new(&mut self, kind: RouteKind, target: PeerId, data: Vec<u8>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.route(kind, target, seq, 0, data);
        seq
    }

    pub(super) fn route(
        &mut self,
        kind: RouteKind,
        target: PeerId,
        seq: u64,
        attempt: u8,
        data: Vec<u8>,
    ) {
        self.remember(self.me.clone(), seen_key(seq, attempt));
        let frame = RouteFrame {
            kind,
            origin: self.me.clone(),
            target,
            seq,
            hops: 0,
            back: false,
            attempt,
            visited: vec![self.me.clone()],
            path: vec![self.me.clone()],
            data,
        };
        self.forward(frame);
    }

    /// Our network cannot reach `target`, the server can: the network is split (or the
    /// target is gone). Asked as a peer with no link, it takes us even when full, and the
    /// parts are one again. Once per four refreshes per target.
    pub(super) fn bridge(&mut self, target: PeerId) {
        let now = self.now;
        if self.up.contains_key(&target) || self.bridged.get(&target).is_some_and(|u| *u > now) {
            return;
        }
        self.bridged
            .insert(target.clone(), now + self.config.refresh * 4);
        self.pending.insert(
            target.clone(),
            now + self.config.links.connect_timeout() * 2,
        );
        self.links.handle_input(Input::PeerAppeared {
            peer: target.clone(),
            origin: Appearance::Joined,
            now,
        });
        self.outputs.push_back(RelayOutput::SignalLink {
            peer: target,
            degree: 0,
        });
    }

    /// A link we asked for will not come (refused, unreachable, timed out); one that
    /// opened meanwhile stays.
    pub(super) fn stop_asking(&mut self, peer: PeerId) {
        self.splice_for.remove(&peer);
        self.offering.remove(&peer);
        if self.pending.remove(&peer).is_some() && !self.up.contains_key(&peer) {
            self.links.handle_input(Input::PeerGone {
                peer,
                now: self.now,
            });
        }
    }

    pub(super) fn remember(&mut self, origin: PeerId, seq: u64) -> bool {
        if !self.seen.insert((origin.clone(), seq)) {
            return false;
        }
        self.seen_order.push_back((origin, seq));
        if self.seen_order.len() > SEEN_MAX
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Sends `frame` (which is at us) on: to its target if linked, else to the unvisited
    /// neighbour closest to it, else one step back.
    pub(super) fn forward(&mut self, mut frame: RouteFrame) {
        let Some(target) = RelayId::of(&frame.target) else {
            return;
        };
        if frame.hops >= self.config.hop_limit {
            return self.unreachable(frame);
        }
        let next = if self.up.contains_key(&frame.target) {
            Some(frame.target.clone())
        } else {
            // Looking two hops ahead: a neighbour whose own neighbours come closer counts
            // as that close (it says who they are), which steers round the dead ends of
            // a sparse network.
            let reach = |p: &PeerId, r: &RelayId| {
                let own = r.distance(&target);
                let ahead = self.around.get(p).into_iter().flatten();
                ahead
                    .map(|(q, _)| q.distance(&target))
                    .min()
                    .map_or(own, |a| a.min(own))
            };
            let mut ranked: Vec<([u8; 20], [u8; 20], &PeerId)> = self
                .up
                .iter()
                .filter(|(p, _)| !frame.visited.contains(p))
                .map(|(p, r)| (reach(p, r), r.distance(&target), p))
                .collect();
            ranked.sort_unstable();
            // A frame sent again goes another way where there is one: the first went
            // through a peer that may have died unnoticed. Attempt k takes the k-th best of
            // the neighbours that come closer than we are, at every hop.
            let mine = self.id.distance(&target);
            let closer = ranked.iter().take_while(|(d, _, _)| *d < mine).count();
            let pick = if frame.back || closer < 2 {
                0
            } else {
                usize::from(frame.attempt) % closer
            };
            ranked.get(pick).map(|(_, _, p)| (*p).clone())
        };
        frame.hops += 1;
        match next {
            Some(peer) => {
                frame.back = false;
                frame.visited.push(peer.clone());
                frame.path.push(peer.clone());
                self.outputs.push_back(RelayOutput::Send {
                    peer,
                    msg: RelayMsg::Route(frame),
                });
            }
            None => {
                frame.path.pop();
                match frame.path.last().cloned() {
                    Some(prev) => {
                        frame.back = true;
                        self.outputs.push_back(RelayOutput::Send {
                            peer: prev,
                            msg: RelayMsg::Route(frame),
                        });
                    }
                    // Back at the origin with nothing left to try.
                    None => {
                        frame.hops -= 1;
                        self.unreachable(frame);
                    }
                }
            }
        }
    }

    /// `frame` cannot go on: its origin is told (we may be the origin).
    pub(super) fn unreachable(&mut self, frame: RouteFrame) {
        if matches!(frame.kind, RouteKind::Unreachable | RouteKind::Ack) {
            return;
        }
        if frame.origin == self.me {
            return self.not_reached(frame.target, frame.seq, frame.kind);
        }
        let mut data = frame.seq.to_be_bytes().to_vec();
        data.extend_from_slice(frame.target.as_str().as_bytes());
        data.push(codec::kind_byte(frame.kind));
        self.route_new(RouteKind::Unreachable, frame.origin, data);
    }

    /// Our frame `kind` for `target` found no way. A link request: the network is split
    /// (or the target gone), and the server joins the parts. Data changes no link: its
    /// timer sends it again while attempts are left (churn may have cut its way for a
    /// moment), then the application hears. A link of the network's own for data would be
    /// one more change to a network that is settling, each making a full peer let a link
    /// go: it would never settle.
    pub(super) fn not_reached(&mut self, target: PeerId, _seq: u64, kind: RouteKind) {
        if kind != RouteKind::Link {
            return;
        }
        let now = self.now;
        if self.bridged.get(&target).is_some_and(|until| *until > now) {
            // Asked through the server already: it is gone.
            self.forget(&target);
            self.stop_asking(target);
        } else {
            self.bridge(target);
        }
    }

    pub(super) fn on_route(&mut self, from: PeerId, frame: RouteFrame) {
        if frame.hops > self.config.hop_limit {
            return self.drop(from, "hop count beyond the limit");
        }
        if RelayId::of(&frame.target).is_none() || RelayId::of(&frame.origin).is_none() {
            return self.drop(from, "not a relay id");
        }
        if frame.path.last() != Some(&self.me) {
            return self.drop(from, "path does not end here");
        }
        if frame.back {
            // Coming back to us: we are on its path; try our next neighbour.
            if !self
                .seen
                .contains(&(frame.origin.clone(), seen_key(frame.seq, frame.attempt)))
            {
                return self.drop(from, "came back to a peer it never visited");
            }
            return self.forward(frame);
        }
        if !self.remember(frame.origin.clone(), seen_key(frame.seq, frame.attempt)) {
            return self.drop(from, "a copy or a loop");
        }
        for peer in frame.visited.iter().take(64) {
            self.learn(peer);
        }
        if frame.target != self.me {
            return self.forward(frame);
        }
        let RouteFrame {
            kind,
            origin,
            seq,
            hops,
            data,
            path,
            ..
        } = frame;
        if matches!(kind, RouteKind::Data | RouteKind::Signal | RouteKind::Link) {
            // Taken once, acknowledged every time (an acknowledgement may be what got
            // lost). A link request's acknowledgement tells an asker whose application
            // wants the link which of its links to let go for it, if any.
            let first = self.remember(origin.clone(), seen_key(seq, DELIVERED));
            if first {
                match kind {
                    RouteKind::Data => self.outputs.push_back(RelayOutput::Deliver {
                        origin: origin.clone(),
                        hops,
                        data,
                    }),
                    RouteKind::Signal => self.outputs.push_back(RelayOutput::Signal {
                        origin: origin.clone(),
                        data,
                    }),
                    _ => {
                        let degree = data.first().copied().unwrap_or(1);
                        let app = match data.get(1) {
                            Some(links) if degree == 0 => Some((*links, path.as_slice())),
                            _ => None,
                        };
                        self.take_request(origin.clone(), degree, app);
                    }
                }
            }
            let mut ack = seq.to_be_bytes().to_vec();
            if kind == RouteKind::Link
                && let Some(advice) = self.advice.get(&origin)
            {
                ack.extend(codec::encode_peers(advice));
            }
            self.route_new(RouteKind::Ack, origin, ack);
            return;
        }
        match kind {
            RouteKind::Ack => {
                if let Some((seq, advice)) = data.split_first_chunk::<8>() {
                    let acked = self.unacked.remove(&u64::from_be_bytes(*seq));
                    if let Some(u) = acked
                        && u.kind == RouteKind::Link
                        && !advice.is_empty()
                    {
                        self.advised(origin, codec::decode_peers(advice));
                    }
                }
            }
            RouteKind::Refuse if self.splice_for.contains_key(&origin) => {
                // The peer we are to link to in another's place refused: it is not told
                // yet (its own word is on its way, or comes when it retries). Asked again
                // in a while.
                let tries = self.splice_again.get(&origin).map_or(0, |(_, n)| *n);
                if tries < 3 {
                    let at = self.now + self.config.ack_timeout;
                    self.splice_again.insert(origin.clone(), (at, tries + 1));
                }
                self.pending.remove(&origin);
                self.offering.remove(&origin);
                self.links.handle_input(Input::PeerGone {
                    peer: origin,
                    now: self.now,
                });
            }
            RouteKind::Refuse => {
                self.shunned
                    .insert(origin.clone(), self.now + self.config.refresh * 4);
                self.stop_asking(origin);
                for peer in codec::decode_peers(&data) {
                    self.learn(&peer);
                }
                self.fill();
            }
            RouteKind::Unreachable => {
                if let Some((seq, rest)) = data.split_first_chunk::<8>()
                    && let Some((kind, target)) = rest.split_last()
                    && let Ok(target) = std::str::from_utf8(target)
                    && let Ok(target) = PeerId::new(target)
                {
                    let kind = codec::kind_from(*kind).unwrap_or(RouteKind::Data);
                    self.not_reached(target, u64::from_be_bytes(*seq), kind);
                }
            }
            RouteKind::Data | RouteKind::Signal | RouteKind::Link => {}
        }
    }

    pub(super) fn drop(&mut self, from: PeerId, reason: &'static str) {
        self.outputs
            .push_back(RelayOutput::Dropped { from, reason });
    }
}
