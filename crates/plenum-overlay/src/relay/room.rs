//! How a relay node stays within its bound: which link it lets go once another replaces it,
//! whom it splices in, and the room it makes for a link the application asked for.

use super::*;

impl RelayNode {
    /// Lets go a link whose peer stays joined to us without it, as far as we know: it is
    /// linked to another of our neighbours (as it last said), one we have held for a
    /// refresh at least (a newer one may have come to us in another's place, and be
    /// letting that link go). Not `keep`, nor one in the middle of a splice. Whether
    /// there was one.
    pub(super) fn drop_redundant(&mut self, keep: &PeerId) -> bool {
        let steady = |q: &PeerId| {
            self.up_since
                .get(q)
                .is_some_and(|at| *at + self.config.refresh <= self.now)
        };
        // Where links are traded to fill buckets, only a link neither side needs for a
        // bucket: else the one let go would ask again, and trading never ends.
        let trading = self.config.max_neighbours >= SPARE_FROM;
        let spare = self
            .up
            .iter()
            .filter(|(p, _)| *p != keep && !self.settling(p))
            .filter(|(p, r)| {
                !trading || (self.links_in(self.id.bucket(r)) >= 2 && self.covered_without_us(p, r))
            })
            .filter(|(p, _)| {
                self.around.get(*p).is_some_and(|theirs| {
                    theirs
                        .iter()
                        .any(|(_, q)| q != keep && *q != self.me && steady(q) && !self.settling(q))
                })
            })
            .max_by_key(|(p, r)| self.let_go_rank(p, r))
            .map(|(p, _)| p.clone());
        match spare {
            Some(peer) => {
                self.let_go(&peer, None, None);
                true
            }
            None => false,
        }
    }

    /// Whether we hold more links than the bound, besides those on their way out.
    pub(super) fn over_bound(&self) -> bool {
        self.up.len() > self.config.max_neighbours + self.leaving.len()
    }

    /// Lets our neighbour `peer` go, not to be asked again for a while. With `instead`,
    /// it links to that peer in our place first and then lets our link go itself (a
    /// link it needed to stay joined to the network is replaced before it is cut);
    /// `newcomer`: the peer we took while full that this makes room for.
    pub(super) fn let_go(
        &mut self,
        peer: &PeerId,
        instead: Option<PeerId>,
        newcomer: Option<PeerId>,
    ) {
        self.shunned
            .insert(peer.clone(), self.now + self.config.refresh * 4);
        let Some(other) = instead else {
            self.drop_link(peer);
            return;
        };
        self.outputs.push_back(RelayOutput::Send {
            peer: peer.clone(),
            msg: RelayMsg::Splice(other.clone()),
        });
        let leaving = Leaving {
            until: self.now + self.config.links.connect_timeout(),
            newcomer,
            instead: other,
            tries: 1,
        };
        self.leaving.insert(peer.clone(), leaving);
    }

    /// A neighbour we told to link to another in our place has not let us go in time
    /// (the other refused it, or is gone). Still over the bound, we decide again (its
    /// newcomer's neighbours may say more by now), and in the end let it go.
    pub(super) fn leaving_late(&mut self, peer: &PeerId) {
        let Some(leaving) = self.leaving.remove(peer) else {
            return;
        };
        if !self.up.contains_key(peer) || !self.over_bound() {
            return;
        }
        if self.drop_redundant(peer) {
            return;
        }
        match leaving.newcomer {
            Some(newcomer) if leaving.tries < 3 && self.up.contains_key(&newcomer) => {
                self.splice_in(&newcomer, leaving.tries);
            }
            // A swap agreed with another peer: asked again as agreed.
            None if leaving.tries < 3 => {
                self.let_go(peer, Some(leaving.instead), None);
                if let Some(l) = self.leaving.get_mut(peer) {
                    l.tries = leaving.tries + 1;
                }
            }
            // The newcomer has links of its own (it came from another part of a split
            // network, or took others while it asked): it is joined through them, and it
            // is its link that goes, not one of ours that may be all that joins a peer.
            Some(newcomer)
                if self.up.contains_key(&newcomer)
                    && self
                        .around
                        .get(&newcomer)
                        .is_some_and(|theirs| theirs.len() >= 2) =>
            {
                self.let_go(&newcomer, None, None);
            }
            _ => self.drop_link(peer),
        }
    }

    /// Whether `newcomer` is full, as it last said, with two links besides ours.
    fn filled_up(&self, newcomer: &PeerId) -> bool {
        self.around.get(newcomer).is_some_and(|a| {
            a.len() >= self.config.max_neighbours
                && a.iter().filter(|(_, p)| *p != self.me).count() >= 2
        })
    }

    /// A newcomer we spliced a neighbour to says it is full: it will refuse that
    /// neighbour, so we decide again now rather than when the splice times out.
    pub(super) fn newcomer_filled(&mut self, newcomer: &PeerId) {
        if !self.filled_up(newcomer) {
            return;
        }
        let stuck: Vec<PeerId> = self
            .leaving
            .iter()
            .filter(|(_, l)| l.instead == *newcomer && l.newcomer.as_ref() == Some(newcomer))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in stuck {
            self.leaving_late(&peer);
        }
    }

    /// A newcomer we took while full, as a peer with no link, said its neighbours (or
    /// did not in time): we let a link go, and the one we let go links in our place to
    /// the newcomer if it has room, else to one of its neighbours (which took it while it
    /// had no link, so most likely has room itself).
    pub(super) fn splice_in(&mut self, newcomer: &PeerId, tries: u8) {
        self.splicing.remove(newcomer);
        if !self.over_bound() || !self.up.contains_key(newcomer) || self.drop_redundant(newcomer) {
            return;
        }
        let Some(evict) = self.link_to_let_go(newcomer) else {
            // Every other link is in a splice already: decided again once one is done.
            let until = self.now + self.config.ack_timeout;
            self.splicing.insert(newcomer.clone(), until);
            return;
        };
        let theirs = self.around.get(newcomer);
        if self.filled_up(newcomer) {
            // It filled up with links of its own while we waited: it is joined through
            // two others at least, has no room for the one we would hand it, and its
            // neighbours (which took it while it had room) are most likely full as well.
            // Its link goes. (At a bound of two, a full newcomer may hang on us alone:
            // the splice is kept.)
            self.let_go(newcomer, None, None);
            return;
        }
        let room = theirs.is_none_or(|a| a.len() < self.config.max_neighbours);
        let instead = match (room, theirs, RelayId::of(&evict)) {
            (false, Some(theirs), Some(e)) => theirs
                .iter()
                .filter(|(_, p)| *p != self.me && *p != evict)
                .min_by_key(|(r, _)| r.distance(&e))
                .map(|(_, p)| p.clone()),
            _ => None,
        };
        let instead = instead.unwrap_or_else(|| newcomer.clone());
        self.let_go(&evict, Some(instead), Some(newcomer.clone()));
        if let Some(l) = self.leaving.get_mut(&evict) {
            l.tries = tries + 1;
        }
    }

    /// A link our application asked for is up: over the bound, we let go the neighbour
    /// its target named (which stays joined to us through the network, or links in our
    /// place to the one the target let go). Until it names one (its acknowledgement may
    /// still be on its way) we wait an acknowledgement timeout, then let one go as any
    /// full peer would.
    pub(super) fn make_room_for(&mut self, target: &PeerId) {
        if !self.over_bound() || !self.up.contains_key(target) {
            self.told.remove(target);
            self.awaiting_room.remove(target);
            return;
        }
        match self.told.remove(target) {
            Some((go, instead)) if self.up.contains_key(&go) && go != *target => {
                self.awaiting_room.remove(target);
                self.let_go(&go, instead, None);
            }
            _ => match self.awaiting_room.get(target) {
                Some(until) if self.now >= *until => {
                    self.awaiting_room.remove(target);
                    if !self.drop_redundant(target)
                        && let Some(evict) = self.link_to_let_go(target)
                    {
                        self.let_go(&evict, None, None);
                    }
                }
                Some(_) => {}
                None => {
                    let until = self.now + self.config.ack_timeout;
                    self.awaiting_room.insert(target.clone(), until);
                }
            },
        }
    }

    /// The target of a link our application asked for says which neighbour we let go
    /// once it is up (`[go]`), and whom that one links to in our place (`[go, other]`).
    pub(super) fn advised(&mut self, target: PeerId, advice: Vec<PeerId>) {
        let mut advice = advice.into_iter();
        let Some(go) = advice.next() else {
            return;
        };
        self.told.insert(target.clone(), (go, advice.next()));
        if self.up.contains_key(&target) {
            self.make_room_for(&target);
        }
    }

    /// Whether `peer` (a neighbour, with id `r`) holds another link than ours in the
    /// bucket our link is in for it (buckets are symmetric), as it last said.
    pub(super) fn covered_without_us(&self, peer: &PeerId, r: &RelayId) -> bool {
        let b = self.id.bucket(r);
        self.around.get(peer).is_some_and(|theirs| {
            theirs
                .iter()
                .any(|(q, p)| *p != self.me && r.bucket(q) == b)
        })
    }

    /// A link that neither side needs: we hold another in its bucket, and so does the
    /// peer. None below [`SPARE_FROM`] neighbours.
    pub(super) fn spare_link(&self) -> Option<PeerId> {
        if self.config.max_neighbours < SPARE_FROM {
            return None;
        }
        self.up
            .iter()
            .filter(|(p, _)| !self.settling(p))
            .filter(|(p, r)| self.links_in(self.id.bucket(r)) >= 2 && self.covered_without_us(p, r))
            .max_by_key(|(_, r)| (self.links_in(self.id.bucket(r)), self.id.distance(r)))
            .map(|(p, _)| p.clone())
    }

    pub(super) fn links_in(&self, bucket: Option<usize>) -> usize {
        self.up
            .values()
            .filter(|q| self.id.bucket(q) == bucket)
            .count()
    }

    /// Which link to let go when over the bound (not `keep`): one neither side needs,
    /// else one we hold another in its bucket for, else one whose peer keeps other links
    /// (so nobody is left alone); the bucket we hold most links in, farthest first.
    pub(super) fn link_to_let_go(&self, keep: &PeerId) -> Option<PeerId> {
        self.up
            .iter()
            .filter(|(p, _)| *p != keep && !self.settling(p))
            .max_by_key(|(p, r)| self.let_go_rank(p, r))
            .map(|(p, _)| p.clone())
    }

    /// Whether the link to `peer` is not to be let go for another: an application asked
    /// for it, or it is in the middle of a splice of ours (on its way out, or a newcomer
    /// that one of those links to).
    pub(super) fn settling(&self, peer: &PeerId) -> bool {
        self.asked.contains(peer)
            || self.leaving.contains_key(peer)
            || self.splicing.contains_key(peer)
            || self
                .leaving
                .values()
                .any(|l| l.instead == *peer || l.newcomer.as_ref() == Some(peer))
    }

    /// How readily the link to `peer` (id `r`) is let go: highest first.
    pub(super) fn let_go_rank(
        &self,
        peer: &PeerId,
        r: &RelayId,
    ) -> (bool, bool, bool, usize, [u8; 20]) {
        let ours = self.links_in(self.id.bucket(r));
        let theirs = self.covered_without_us(peer, r);
        let keeps_others = self.around.get(peer).is_some_and(|a| a.len() >= 2);
        (
            ours >= 2 && theirs,
            ours >= 2,
            keeps_others,
            ours,
            self.id.distance(r),
        )
    }
}
