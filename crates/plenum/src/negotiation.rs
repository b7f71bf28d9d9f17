//! Perfect negotiation of one link, sans-IO: where its offer/answer exchange stands, what a
//! remote offer means (a new link, an ICE restart of this one, or glare), and the remote
//! candidates that arrive before the description they belong to. The peer with the larger
//! id is polite: when both offer at once it drops its own and answers; the other keeps its
//! own and ignores theirs. Either way one link results.

use plenum_proto::PeerId;

/// Remote candidates held per link until its remote description is set; more are dropped
/// (a browser gathers a handful per interface and server).
pub(crate) const EARLY_CANDIDATES: usize = 64;

/// A remote ICE candidate as signaling carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) candidate: String,
    pub(crate) sdp_mid: Option<String>,
    pub(crate) sdp_mline_index: Option<u16>,
}

/// What a remote offer means for the link we have with its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnOffer {
    /// A new connection: make a new link (replacing any we have) and answer.
    Fresh,
    /// An ICE restart of the connection we have: answer it on this link.
    Restart,
    /// Glare, and we are impolite: ours stands, theirs is ignored.
    Ignore,
}

/// Whether we are the polite side towards `peer`.
pub(crate) fn polite(me: &PeerId, peer: &PeerId) -> bool {
    me > peer
}

/// One link's offer/answer state. `C` is a remote candidate as the transport takes it.
#[derive(Debug)]
pub(crate) struct Negotiation<C> {
    /// We sent an offer and have no answer yet.
    offering: bool,
    /// The remote description is set: candidates go straight in.
    remote_set: bool,
    /// The DTLS fingerprints of the far side's description: an offer with the same ones
    /// renegotiates this connection (an ICE restart) instead of replacing it.
    remote_prints: Vec<String>,
    /// Candidates that came before the remote description, in order.
    early: Vec<C>,
}

impl<C> Default for Negotiation<C> {
    fn default() -> Self {
        Self {
            offering: false,
            remote_set: false,
            remote_prints: Vec::new(),
            early: Vec::new(),
        }
    }
}

impl<C> Negotiation<C> {
    /// The fingerprints of the far side's description, once set.
    #[cfg(test)]
    pub(crate) fn remote_prints(&self) -> &[String] {
        &self.remote_prints
    }

    #[cfg(test)]
    pub(crate) fn is_offering(&self) -> bool {
        self.offering
    }

    /// What an offer (`sdp`) from the far side means, `polite` as we are towards it.
    pub(crate) fn on_offer(&self, polite: bool, sdp: &str) -> OnOffer {
        if self.offering {
            // Glare, on a new link or on an ICE restart.
            return if polite {
                OnOffer::Fresh
            } else {
                OnOffer::Ignore
            };
        }
        if self.same_session(sdp) {
            OnOffer::Restart
        } else {
            OnOffer::Fresh
        }
    }

    /// Whether `sdp` renegotiates this connection: the far side's certificate is the one
    /// it already presented.
    fn same_session(&self, sdp: &str) -> bool {
        self.remote_set
            && !self.remote_prints.is_empty()
            && plenum_proto::identity::fingerprints(sdp) == self.remote_prints
    }

    /// We sent an offer (a first one or a restart).
    pub(crate) fn offered(&mut self) {
        self.offering = true;
    }

    /// Whether an answer now has an offer of ours to answer.
    pub(crate) fn expects_answer(&self) -> bool {
        self.offering
    }

    /// The far side's description (`sdp`, offer or answer) is set. Returns the candidates
    /// that waited for it, to be added now in order.
    pub(crate) fn remote_set(&mut self, sdp: &str, answer: bool) -> Vec<C> {
        self.remote_prints = plenum_proto::identity::fingerprints(sdp);
        self.remote_set = true;
        if answer {
            self.offering = false;
        }
        std::mem::take(&mut self.early)
    }

    /// A remote candidate: returned if it can be added now, else held (the oldest are kept:
    /// past [`EARLY_CANDIDATES`] more are dropped).
    pub(crate) fn candidate(&mut self, candidate: C) -> Option<C> {
        if self.remote_set {
            return Some(candidate);
        }
        if self.early.len() < EARLY_CANDIDATES {
            self.early.push(candidate);
        } else {
            tracing::debug!("too many candidates before the description; dropped");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    fn sdp(cert: u32) -> String {
        format!("v=0\r\na=fingerprint:sha-256 {cert:08X}:00\r\n")
    }

    #[derive(Debug, Clone)]
    enum Msg {
        Offer(String),
        Answer(String),
    }

    /// One side of a link, as the driver keeps it: a connection (its certificate and its
    /// negotiation) that a fresh offer replaces.
    #[derive(Debug, Default)]
    struct Side {
        link: Option<(u32, Negotiation<()>)>,
        /// Remote offers that arrived while we were offering: the collision, seen.
        collided: u32,
    }

    struct Pair {
        ids: [PeerId; 2],
        sides: [Side; 2],
        certs: u32,
        /// Messages in flight to each side, in order (signaling is ordered per pair).
        wire: [VecDeque<Msg>; 2],
    }

    impl Pair {
        fn new() -> Self {
            let id = |n: u32| PeerId::new(format!("{n:040x}")).unwrap();
            Self {
                ids: [id(1), id(2)],
                sides: [Side::default(), Side::default()],
                certs: 0,
                wire: [VecDeque::new(), VecDeque::new()],
            }
        }

        fn new_cert(&mut self) -> u32 {
            self.certs += 1;
            self.certs
        }

        /// Side `i` offers: on a new connection, or (`restart`) on the one it has.
        fn offer(&mut self, i: usize, restart: bool) {
            let cert = match (&self.sides[i].link, restart) {
                (Some((cert, _)), true) => *cert,
                _ => {
                    let cert = self.new_cert();
                    self.sides[i].link = Some((cert, Negotiation::default()));
                    cert
                }
            };
            let Some((_, negotiation)) = &mut self.sides[i].link else {
                unreachable!("made above");
            };
            negotiation.offered();
            self.wire[1 - i].push_back(Msg::Offer(sdp(cert)));
        }

        /// Delivers the next message to side `i`.
        fn deliver(&mut self, i: usize) -> bool {
            let Some(msg) = self.wire[i].pop_front() else {
                return false;
            };
            let polite = polite(&self.ids[i], &self.ids[1 - i]);
            match msg {
                Msg::Offer(offer) => {
                    let verdict = match &self.sides[i].link {
                        Some((_, n)) => {
                            if n.is_offering() {
                                self.sides[i].collided += 1;
                            }
                            n.on_offer(polite, &offer)
                        }
                        None => OnOffer::Fresh,
                    };
                    let cert = match verdict {
                        OnOffer::Ignore => return true,
                        OnOffer::Restart => self.sides[i].link.as_ref().map(|(c, _)| *c),
                        OnOffer::Fresh => {
                            let cert = self.new_cert();
                            self.sides[i].link = Some((cert, Negotiation::default()));
                            Some(cert)
                        }
                    };
                    let (Some(cert), Some((_, n))) = (cert, &mut self.sides[i].link) else {
                        unreachable!("a link is there");
                    };
                    n.remote_set(&offer, false);
                    self.wire[1 - i].push_back(Msg::Answer(sdp(cert)));
                }
                Msg::Answer(answer) => {
                    if let Some((_, n)) = &mut self.sides[i].link
                        && n.expects_answer()
                    {
                        n.remote_set(&answer, true);
                    }
                }
            }
            true
        }

        /// Both ends hold one connection: each knows the other's certificate, nobody waits.
        fn linked(&self) -> bool {
            let ends = (&self.sides[0].link, &self.sides[1].link);
            let (Some((a, na)), Some((b, nb))) = ends else {
                return false;
            };
            !na.is_offering()
                && !nb.is_offering()
                && na.remote_prints == plenum_proto::identity::fingerprints(&sdp(*b))
                && nb.remote_prints == plenum_proto::identity::fingerprints(&sdp(*a))
        }
    }

    #[test]
    fn offers_that_cross_end_in_one_link_the_impolite_sides() {
        let mut pair = Pair::new();
        // Both offer before either hears the other.
        pair.offer(0, false);
        pair.offer(1, false);
        let impolite_cert = pair.sides[0].link.as_ref().map(|(c, _)| *c);
        while pair.deliver(0) | pair.deliver(1) {}
        // The collision happened, on both sides.
        assert_eq!((pair.sides[0].collided, pair.sides[1].collided), (1, 1));
        assert!(pair.linked());
        // The impolite side (the smaller id) kept its connection; the polite one answered it.
        assert_eq!(pair.sides[0].link.as_ref().map(|(c, _)| *c), impolite_cert);
    }

    #[test]
    fn restarts_that_cross_keep_one_link() {
        let mut pair = Pair::new();
        pair.offer(0, false);
        while pair.deliver(0) | pair.deliver(1) {}
        assert!(pair.linked());
        let before = pair.sides[0].link.as_ref().map(|(c, _)| *c);
        pair.offer(0, true);
        pair.offer(1, true);
        while pair.deliver(0) | pair.deliver(1) {}
        assert_eq!((pair.sides[0].collided, pair.sides[1].collided), (1, 1));
        assert!(pair.linked());
        assert_eq!(
            pair.sides[0].link.as_ref().map(|(c, _)| *c),
            before,
            "the impolite side restarted its own connection, it did not make a new one"
        );
    }

    #[test]
    fn a_restart_without_glare_is_answered_on_the_same_connection() {
        let mut pair = Pair::new();
        pair.offer(1, false);
        while pair.deliver(0) | pair.deliver(1) {}
        let certs = pair.certs;
        pair.offer(1, true);
        while pair.deliver(0) | pair.deliver(1) {}
        assert!(pair.linked());
        assert_eq!(pair.certs, certs, "no new connection on either side");
    }

    #[test]
    fn candidates_wait_for_their_description_within_a_bound() {
        let mut n = Negotiation::<u32>::default();
        for c in 0..(EARLY_CANDIDATES as u32 + 10) {
            assert_eq!(n.candidate(c), None);
        }
        let early = n.remote_set(&sdp(1), false);
        assert_eq!(early, (0..EARLY_CANDIDATES as u32).collect::<Vec<_>>());
        assert_eq!(n.candidate(99), Some(99));
    }

    #[test]
    fn an_answer_without_an_offer_is_not_expected() {
        let mut n = Negotiation::<()>::default();
        assert!(!n.expects_answer());
        n.offered();
        assert!(n.expects_answer());
        n.remote_set(&sdp(1), true);
        assert!(!n.expects_answer());
    }

    proptest! {
        /// Either side offers, on a new connection or as a restart, at any point of any
        /// interleaving of deliveries: once every message is delivered the two ends hold
        /// one connection.
        #[test]
        fn any_interleaving_ends_in_one_link(
            script in proptest::collection::vec((0usize..2, 0u8..4), 1..40)
        ) {
            let mut pair = Pair::new();
            pair.offer(0, false);
            for (side, what) in script {
                match what {
                    0 => { pair.deliver(side); }
                    1 => { pair.deliver(side); pair.deliver(1 - side); }
                    // A restart is offered only on a link that is there and not offering,
                    // as the driver does.
                    2 if pair.sides[side].link.as_ref().is_some_and(|(_, n)| !n.is_offering()) => {
                        pair.offer(side, true);
                    }
                    _ => { pair.deliver(1 - side); }
                }
            }
            while pair.deliver(0) | pair.deliver(1) {}
            prop_assert!(pair.linked(), "{:?}", (&pair.sides[0], &pair.sides[1]));
        }
    }
}
