//! A relay node's side of link requests: taking one, holding it while we ask ourselves, or
//! planning the room a full node makes for it.

use super::*;

impl RelayNode {
    /// Someone asked us for a link through the server (its degree: its open links, 0 when
    /// it has none or its application insists): take it if there is room; if not,
    /// refuse with our neighbours closest to it, unless it has no link at all, in which
    /// case we take it and hand it one of ours.
    pub fn link_requested(&mut self, from: PeerId, their_degree: u8) {
        self.take_request(from, their_degree, None);
    }

    /// A link request, through the server or routed. `app`: the asker's application
    /// wants the link; its open links and the way the request came (asker first).
    pub(super) fn take_request(
        &mut self,
        from: PeerId,
        their_degree: u8,
        app: Option<(u8, &[PeerId])>,
    ) {
        if from == self.me || RelayId::of(&from).is_none() {
            return;
        }
        self.learn(&from);
        if self.up.contains_key(&from) {
            // It does not see our link, or it would not ask: its end is gone and ours does
            // not know yet (a half-open link), or the request is older than the link.
            // Which one shows soon: taken if our link closes before the asker gives up.
            let asked = Asked {
                degree: their_degree,
                app: app.map(|(links, way)| (links, way.to_vec())),
                until: self.now + self.config.links.connect_timeout() * 2,
            };
            self.asked_while_up.insert(from, asked);
            return;
        }
        if self.offering.contains_key(&from) && self.pending.contains_key(&from) {
            // We are offering already (a copy of its request, or one held meanwhile):
            // starting again would only undo the negotiation under way.
            return;
        }
        let ours = self.alone_ask.as_ref() == Some(&from);
        if self.reserved() && !ours {
            let handed = self.alone_ask.as_ref().and_then(|p| self.around.get(p));
            if handed.is_some_and(|theirs| theirs.iter().any(|(_, p)| *p == from)) {
                // A neighbour of the peer that took us: the one it hands over.
                self.reserve = false;
            } else if their_degree == 0 && app.is_none() {
                // Another peer with no link: it waits until our place is no longer kept.
                self.held.insert(from, (their_degree, self.now));
                return;
            }
        }
        // We asked it too (or are told to link to it in another's place): both want the
        // link, whoever is full. One side offers, the smaller id: were both to start
        // again, each would undo the other's offer.
        let asking = self.pending.contains_key(&from) || self.splice_for.contains_key(&from);
        if asking && self.me > from {
            return;
        }
        let full = !asking && self.degree() >= self.config.max_neighbours;
        if let Some((links, way)) = app {
            self.asked.insert(from.clone());
            self.plan_room(&from, links, way, full);
        } else if their_degree == 0 {
            // A peer with no link is taken even when full: once it is up, if we are over
            // the bound (full now, or once the links we are taking meanwhile open), one of
            // our links goes and links to the newcomer instead.
            self.lone.insert(from.clone());
        } else if full && self.spare_link().is_none() {
            // Or one asking to fill an empty bucket when it holds a link that neither side
            // needs. Not this one: it learns our neighbours nearest to it instead.
            let target = RelayId::of(&from);
            let mut near: Vec<(&PeerId, &RelayId)> = self.up.iter().collect();
            if let Some(t) = target {
                near.sort_by_key(|(_, r)| r.distance(&t));
            }
            let near: Vec<PeerId> = near.into_iter().take(4).map(|(p, _)| p.clone()).collect();
            let data = codec::encode_peers(&near);
            self.route_new(RouteKind::Refuse, from, data);
            return;
        }
        // We offer. If we were waiting for its offer (we asked it too, perhaps through a
        // server that is gone), we stop waiting: one side must offer. The link layer must
        // forget any older attempt, or it would take the appearance for one it knows and
        // offer nothing.
        if asking || self.links.neighbours().contains(&from) {
            self.links.handle_input(Input::PeerGone {
                peer: from.clone(),
                now: self.now,
            });
        }
        self.pending.insert(
            from.clone(),
            self.now + self.config.links.connect_timeout() * 2,
        );
        self.offering
            .entry(from.clone())
            .or_insert((self.now, false));
        self.links.handle_input(Input::PeerAppeared {
            peer: from,
            origin: Appearance::Roster,
            now: self.now,
        });
    }

    /// A link the application of `asker` wants, which came along `way`: who lets what go
    /// once it is up, so that both ends stay within the bound and the network stays
    /// joined. Along the way, the asker's first hop `a` and our last `b` stay joined to
    /// us both. If we are full we let `b` go; if the asker is, it lets `a` go (told in our
    /// acknowledgement). If both are, `b` must stay, so we let go a neighbour off the way
    /// instead and it links to `a` in our place: a swap of two links for two, which
    /// leaves every degree as it was and every peer joined.
    pub(super) fn plan_room(
        &mut self,
        asker: &PeerId,
        their_links: u8,
        way: &[PeerId],
        full: bool,
    ) {
        self.room.remove(asker);
        self.advice.remove(asker);
        let n = way.len();
        if n < 3 || way[0] != *asker || way[n - 1] != self.me {
            if full {
                // No way known (a direct neighbour's stale request): as for a lone peer.
                self.lone.insert(asker.clone());
            }
            return;
        }
        let (a, b) = (way[1].clone(), way[n - 2].clone());
        let they_full = usize::from(their_links) >= self.config.max_neighbours;
        let off_way = self
            .up
            .iter()
            .filter(|(p, _)| **p != a && **p != b && *p != asker)
            .filter(|(p, _)| !self.settling(p))
            .max_by_key(|(p, r)| self.let_go_rank(p, r))
            .map(|(p, _)| p.clone());
        match (full, they_full, off_way) {
            (true, true, Some(drop)) => {
                self.advice
                    .insert(asker.clone(), vec![a.clone(), drop.clone()]);
                self.room
                    .insert(asker.clone(), Room::Swap { drop, partner: a });
            }
            (true, _, _) => {
                self.room.insert(asker.clone(), Room::LetGo(b));
            }
            (false, true, _) => {
                self.advice.insert(asker.clone(), vec![a]);
            }
            (false, false, _) => {}
        }
    }
}
