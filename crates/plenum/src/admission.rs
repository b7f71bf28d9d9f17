//! Who may negotiate a link with us: a peer's credentials (our verify hook's word), its
//! identity key and the numbers of its signed descriptions. Sans-IO: the driver runs the
//! hook and feeds its word back; everything a peer can make us hold here is bounded, and
//! what we know of a peer goes when it leaves.

use std::collections::{BTreeSet, HashMap};

use plenum_proto::PeerId;
use plenum_proto::identity::{PublicKey, verify_link};
use plenum_proto::signal::SignalPayload;

/// Peers whose negotiation may wait for our verify hook at once, and frames held for each.
pub(crate) const HELD_PEERS: usize = 64;
pub(crate) const HELD_FRAMES: usize = 64;
/// Description numbers of departed peers remembered before they are forgotten.
pub(crate) const REPLAY_MEMORY: usize = 1024;

/// What to do with a peer's negotiation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Go on with it.
    Pass(SignalPayload),
    /// Ask the verify hook about these credentials; this and what follows wait for its word.
    Check { credentials: serde_json::Value },
    /// Held until the verify hook's word on the peer.
    Held,
    /// Dropped, for this reason (logged, not reported: a peer offers again).
    Dropped(&'static str),
    /// Its description is not signed by the key its id names, or is a replay.
    Mismatch { kind: &'static str, reason: String },
}

/// The verify hook's word on a peer, and what it means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nobody waits for it (the peer left meanwhile).
    Stale,
    /// Refused: tell it, and do not link it while it stays.
    Refused,
    /// Passed: its held negotiation goes on, in order.
    Passed(Vec<SignalPayload>),
}

#[derive(Debug)]
pub(crate) struct Admission {
    me: PeerId,
    /// A verify hook is configured.
    verify: bool,
    /// Peers our verify hook passed (checked once per stay).
    passed: BTreeSet<PeerId>,
    /// Peers whose verdict is awaited, with what they sent meanwhile.
    awaiting: HashMap<PeerId, Vec<SignalPayload>>,
    /// Peers refused while they stay.
    refused: BTreeSet<PeerId>,
    /// Identity keys proven by a signed description.
    keys: HashMap<PeerId, PublicKey>,
    /// The number of each peer's last signed description (replays are refused).
    seen_seq: HashMap<PeerId, u64>,
}

impl Admission {
    pub(crate) fn new(me: PeerId, verify: bool) -> Self {
        Self {
            me,
            verify,
            passed: BTreeSet::new(),
            awaiting: HashMap::new(),
            refused: BTreeSet::new(),
            keys: HashMap::new(),
            seen_seq: HashMap::new(),
        }
    }

    /// Whether a verify hook gives the word on credentials (otherwise the core compares them
    /// with its own: see [`admit`](Self::admit)).
    pub(crate) fn hooked(&self) -> bool {
        self.verify
    }

    /// Looks at negotiation from `from`, in the order it came. `delegate`: its credentials
    /// are checked even without a hook (a tree child we pass the root's media on to).
    pub(crate) fn admit(&mut self, from: &PeerId, payload: SignalPayload, delegate: bool) -> Admit {
        if self.refused.contains(from) {
            return Admit::Dropped("negotiation from a refused peer");
        }
        if let Some(held) = self.awaiting.get_mut(from) {
            // Its credentials are being checked: everything waits in order, within a bound
            // (a peer's negotiation is a description and a few candidates).
            if matches!(payload, SignalPayload::Offer { .. }) {
                held.retain(|p| !of_a_negotiation(p));
            }
            if held.len() >= HELD_FRAMES {
                return Admit::Dropped("negotiation held past its bound");
            }
            held.push(payload);
            return Admit::Held;
        }
        if let SignalPayload::Offer { credentials, .. } | SignalPayload::Answer { credentials, .. } =
            &payload
            && (self.verify || delegate)
            && !self.passed.contains(from)
        {
            if self.awaiting.len() >= HELD_PEERS {
                // The peer offers again after its connect timeout.
                return Admit::Dropped("too many peers being verified");
            }
            let credentials = credentials.clone().unwrap_or_default();
            self.awaiting.insert(from.clone(), vec![payload]);
            return Admit::Check { credentials };
        }
        let (kind, sdp, key, seq, sig) = match &payload {
            SignalPayload::Offer {
                sdp, key, seq, sig, ..
            } => ("offer", sdp, key, *seq, sig),
            SignalPayload::Answer {
                sdp, key, seq, sig, ..
            } => ("answer", sdp, key, *seq, sig),
            SignalPayload::Candidate { .. }
            | SignalPayload::Tree { .. }
            | SignalPayload::RelayLink { .. }
            | SignalPayload::Refused { .. } => return Admit::Pass(payload),
        };
        let proven = verify_link(kind, from, &self.me, seq, sdp, key, sig)
            .map_err(|e| e.to_string())
            .and_then(|key| match self.seen_seq.get(from) {
                Some(last) if seq <= *last => {
                    Err(format!("replayed description (number {seq}, last {last})"))
                }
                _ => Ok(key),
            });
        match proven {
            Ok(key) => {
                self.keys.insert(from.clone(), key);
                self.seen_seq.insert(from.clone(), seq);
                Admit::Pass(payload)
            }
            Err(reason) => Admit::Mismatch { kind, reason },
        }
    }

    /// The verify hook's word on `peer`.
    pub(crate) fn verdict(&mut self, peer: &PeerId, ok: bool) -> Verdict {
        let Some(held) = self.awaiting.remove(peer) else {
            return Verdict::Stale;
        };
        if ok {
            self.passed.insert(peer.clone());
            Verdict::Passed(held)
        } else {
            self.refused.insert(peer.clone());
            Verdict::Refused
        }
    }

    /// No link to `peer` while it stays.
    pub(crate) fn refuse(&mut self, peer: &PeerId) {
        self.awaiting.remove(peer);
        self.refused.insert(peer.clone());
    }

    pub(crate) fn is_refused(&self, peer: &PeerId) -> bool {
        self.refused.contains(peer)
    }

    /// Checks `peer` afresh on its next description, as if it had never been refused (a
    /// tree asks for the link anew: the peer asked again, perhaps with other credentials).
    /// What it proved is kept, and so is the replay guard.
    pub(crate) fn lift_refusal(&mut self, peer: &PeerId) {
        self.refused.remove(peer);
        self.passed.remove(peer);
    }

    /// The identity key `peer` proved, if it did.
    pub(crate) fn key(&self, peer: &PeerId) -> Option<&PublicKey> {
        self.keys.get(peer)
    }

    /// `peer` left: if it comes back, its credentials are checked again and its key proven
    /// again. The number of its last description is kept for a while (a replay of an old
    /// one stays refused), among at most [`REPLAY_MEMORY`] peers; past that, those of peers
    /// `present` does not name are forgotten.
    pub(crate) fn forget(&mut self, peer: &PeerId, present: impl Fn(&PeerId) -> bool) {
        self.passed.remove(peer);
        self.awaiting.remove(peer);
        self.refused.remove(peer);
        self.keys.remove(peer);
        if self.seen_seq.len() > REPLAY_MEMORY {
            self.seen_seq.retain(|p, _| present(p));
        }
    }

    /// How much is held, for the bounds' tests.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let frames = self.awaiting.values().map(Vec::len).max().unwrap_or(0);
        (self.awaiting.len(), frames)
    }
}

/// Peers of a cellular or relay room whose negotiation arrived before a plan (or the
/// overlay) named them: held until one does (a plan reaches the two ends of a new link at
/// slightly different times).
pub(crate) const EARLY_PEERS: usize = 64;
/// Frames held per such peer; past it the oldest goes.
pub(crate) const EARLY_FRAMES: usize = 16;

/// Whether `payload` belongs to one negotiation: a new offer from its peer starts over, and
/// what was held for the older one (its offer, an answer, candidates) would only break the
/// new link if it were replayed (a peer offers again once its connect timeout passes).
fn of_a_negotiation(payload: &SignalPayload) -> bool {
    matches!(
        payload,
        SignalPayload::Offer { .. }
            | SignalPayload::Answer { .. }
            | SignalPayload::Candidate { .. }
    )
}

/// Negotiation from peers we do not know yet, in order, within bounds.
#[derive(Debug, Default)]
pub(crate) struct Early {
    held: HashMap<PeerId, std::collections::VecDeque<SignalPayload>>,
}

impl Early {
    /// Holds `payload` from `from`. False if it was dropped: too many unknown peers.
    pub(crate) fn hold(&mut self, from: PeerId, payload: SignalPayload) -> bool {
        if !self.held.contains_key(&from) && self.held.len() >= EARLY_PEERS {
            return false;
        }
        let held = self.held.entry(from).or_default();
        if matches!(payload, SignalPayload::Offer { .. }) {
            held.retain(|p| !of_a_negotiation(p));
        }
        if held.len() >= EARLY_FRAMES {
            held.pop_front();
        }
        held.push_back(payload);
        true
    }

    /// What `peer` sent before we knew it, oldest first; none is held after.
    pub(crate) fn take(&mut self, peer: &PeerId) -> Vec<SignalPayload> {
        self.held.remove(peer).map(Vec::from).unwrap_or_default()
    }

    /// `peer` left.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.held.remove(peer);
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let frames = self
            .held
            .values()
            .map(std::collections::VecDeque::len)
            .max();
        (self.held.len(), frames.unwrap_or(0))
    }
}

/// Negotiation as peers send it, for tests here and in the room's core.
#[cfg(test)]
pub(crate) mod fixtures {
    use plenum_proto::identity::{Identity, sign_link};

    use super::*;

    /// An offer from `from` to `to`, signed, numbered `seq`.
    pub(crate) fn offer(
        from: &Identity,
        to: &PeerId,
        seq: u64,
        credentials: Option<&str>,
    ) -> SignalPayload {
        let sdp = format!("v=0\r\na=fingerprint:sha-256 {seq:02X}:AB\r\n");
        let sig = sign_link(from, "offer", to, seq, &sdp).unwrap();
        SignalPayload::Offer {
            sdp,
            credentials: credentials.map(serde_json::Value::from),
            key: from.public().encode(),
            seq,
            sig,
        }
    }

    /// A host candidate numbered `n`.
    pub(crate) fn candidate(n: u32) -> SignalPayload {
        SignalPayload::Candidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use plenum_proto::identity::Identity;
    use proptest::prelude::*;

    use super::fixtures::candidate;
    use super::*;

    struct Peer {
        identity: Identity,
    }

    impl Peer {
        fn new(seed: u8) -> Self {
            Self {
                identity: Identity::from_seed([seed; 32]),
            }
        }

        fn id(&self) -> PeerId {
            self.identity.peer_id()
        }

        fn offer(&self, to: &PeerId, seq: u64, credentials: Option<&str>) -> SignalPayload {
            fixtures::offer(&self.identity, to, seq, credentials)
        }
    }

    #[test]
    fn a_signed_offer_passes_and_proves_its_key() {
        let (me, them) = (Peer::new(1), Peer::new(2));
        let mut admission = Admission::new(me.id(), false);
        let offer = them.offer(&me.id(), 5, None);
        assert_eq!(
            admission.admit(&them.id(), offer.clone(), false),
            Admit::Pass(offer)
        );
        assert!(admission.key(&them.id()).is_some());
    }

    #[test]
    fn a_replayed_or_older_description_is_a_mismatch() {
        let (me, them) = (Peer::new(1), Peer::new(2));
        let mut admission = Admission::new(me.id(), false);
        let first = them.offer(&me.id(), 5, None);
        assert!(matches!(
            admission.admit(&them.id(), first.clone(), false),
            Admit::Pass(_)
        ));
        assert!(matches!(
            admission.admit(&them.id(), first, false),
            Admit::Mismatch { kind: "offer", reason } if reason.contains("replayed")
        ));
        let older = them.offer(&me.id(), 4, None);
        assert!(matches!(
            admission.admit(&them.id(), older, false),
            Admit::Mismatch { .. }
        ));
        // Leaving does not wipe the number: the old description stays refused.
        admission.forget(&them.id(), |_| false);
        let again = them.offer(&me.id(), 5, None);
        assert!(matches!(
            admission.admit(&them.id(), again, false),
            Admit::Mismatch { .. }
        ));
        assert!(
            admission.key(&them.id()).is_none(),
            "its key is proven again"
        );
    }

    #[test]
    fn an_offer_signed_by_another_key_or_for_another_peer_is_a_mismatch() {
        let (me, them, forger) = (Peer::new(1), Peer::new(2), Peer::new(3));
        let mut admission = Admission::new(me.id(), false);
        // Signed by the forger, claimed to be from `them`.
        let forged = forger.offer(&me.id(), 1, None);
        assert!(matches!(
            admission.admit(&them.id(), forged, false),
            Admit::Mismatch { .. }
        ));
        // Signed for someone else.
        let elsewhere = them.offer(&forger.id(), 1, None);
        assert!(matches!(
            admission.admit(&them.id(), elsewhere, false),
            Admit::Mismatch { .. }
        ));
    }

    #[test]
    fn a_verify_hold_keeps_order_and_releases_on_its_verdict() {
        let (me, them) = (Peer::new(1), Peer::new(2));
        let mut admission = Admission::new(me.id(), true);
        let offer = them.offer(&me.id(), 1, Some("token"));
        assert_eq!(
            admission.admit(&them.id(), offer.clone(), false),
            Admit::Check {
                credentials: serde_json::Value::from("token")
            }
        );
        assert_eq!(
            admission.admit(&them.id(), candidate(1), false),
            Admit::Held
        );
        assert_eq!(
            admission.admit(&them.id(), candidate(2), false),
            Admit::Held
        );
        let Verdict::Passed(held) = admission.verdict(&them.id(), true) else {
            panic!("passed");
        };
        assert_eq!(held, vec![offer.clone(), candidate(1), candidate(2)]);
        // Held frames then go through admission again, and pass: checked once per stay.
        assert!(matches!(
            admission.admit(&them.id(), offer, false),
            Admit::Pass(_)
        ));
        assert_eq!(admission.verdict(&them.id(), true), Verdict::Stale);
    }

    #[test]
    fn a_delegate_check_holds_without_a_hook() {
        let (me, them) = (Peer::new(1), Peer::new(2));
        let mut admission = Admission::new(me.id(), false);
        assert!(!admission.hooked());
        let offer = them.offer(&me.id(), 1, Some("code"));
        assert_eq!(
            admission.admit(&them.id(), offer.clone(), true),
            Admit::Check {
                credentials: serde_json::Value::from("code")
            }
        );
        assert_eq!(
            admission.admit(&them.id(), candidate(1), false),
            Admit::Held
        );
        let Verdict::Passed(held) = admission.verdict(&them.id(), true) else {
            panic!("passed");
        };
        assert_eq!(held, vec![offer, candidate(1)]);
    }

    #[test]
    fn a_refused_peer_is_not_heard_until_it_leaves() {
        let (me, them) = (Peer::new(1), Peer::new(2));
        let mut admission = Admission::new(me.id(), true);
        let offer = them.offer(&me.id(), 1, Some("bad"));
        assert!(matches!(
            admission.admit(&them.id(), offer, false),
            Admit::Check { .. }
        ));
        assert_eq!(admission.verdict(&them.id(), false), Verdict::Refused);
        assert!(admission.is_refused(&them.id()));
        let again = them.offer(&me.id(), 2, Some("bad"));
        assert!(matches!(
            admission.admit(&them.id(), again, false),
            Admit::Dropped(_)
        ));
        admission.forget(&them.id(), |_| true);
        let back = them.offer(&me.id(), 3, Some("good"));
        assert!(matches!(
            admission.admit(&them.id(), back, false),
            Admit::Check { .. }
        ));
    }

    #[test]
    fn holds_are_bounded_per_peer_and_in_peers() {
        let me = Peer::new(1);
        let mut admission = Admission::new(me.id(), true);
        let them = Peer::new(2);
        admission.admit(&them.id(), them.offer(&me.id(), 1, None), false);
        for n in 0..(HELD_FRAMES as u32 * 2) {
            admission.admit(&them.id(), candidate(n), false);
        }
        assert_eq!(admission.held().1, HELD_FRAMES);
        for seed in 3..=u8::MAX {
            let peer = Peer::new(seed);
            admission.admit(&peer.id(), peer.offer(&me.id(), 1, None), false);
        }
        assert_eq!(admission.held().0, HELD_PEERS);
        let late = Peer::new(0);
        assert_eq!(
            admission.admit(&late.id(), late.offer(&me.id(), 1, None), false),
            Admit::Dropped("too many peers being verified")
        );
    }

    #[test]
    fn replay_memory_is_bounded_to_present_peers_past_its_limit() {
        let me = Peer::new(1);
        let mut admission = Admission::new(me.id(), false);
        for n in 0..=REPLAY_MEMORY as u64 {
            admission
                .seen_seq
                .insert(PeerId::new(format!("{n:040x}")).expect("hex id"), n);
        }
        let gone = PeerId::new(format!("{:040x}", 0)).expect("hex id");
        admission.forget(&gone, |p| p.as_str().ends_with('1'));
        assert!(admission.seen_seq.len() < REPLAY_MEMORY);
    }

    #[test]
    fn early_negotiation_is_held_in_order_within_bounds_and_released_once() {
        let mut early = Early::default();
        let first = Peer::new(1).id();
        for n in 0..(EARLY_FRAMES as u32 + 4) {
            assert!(early.hold(first.clone(), candidate(n)));
        }
        // The newest EARLY_FRAMES are kept, in order.
        let kept: Vec<_> = (4..EARLY_FRAMES as u32 + 4).map(candidate).collect();
        assert_eq!(early.take(&first), kept);
        assert!(early.take(&first).is_empty(), "released once");
        for seed in 0..EARLY_PEERS as u8 {
            assert!(early.hold(Peer::new(seed + 10).id(), candidate(0)));
        }
        assert!(
            !early.hold(Peer::new(200).id(), candidate(0)),
            "a peer too many"
        );
        // A peer already held still adds to its own.
        assert!(early.hold(Peer::new(10).id(), candidate(1)));
        early.forget(&Peer::new(10).id());
        assert_eq!(early.sizes().0, EARLY_PEERS - 1);
        assert!(early.hold(Peer::new(200).id(), candidate(0)), "room again");
    }

    #[test]
    fn a_held_offer_is_replaced_by_a_newer_one_with_everything_that_came_for_it() {
        let me = Peer::new(100);
        let peer = Peer::new(1);
        let relay = SignalPayload::RelayLink { degree: 2 };
        let (old, new) = (peer.offer(&me.id(), 1, None), peer.offer(&me.id(), 2, None));
        // Held while unnamed: the stale offer and its candidates go, the rest stays in order.
        let mut early = Early::default();
        for p in [
            old.clone(),
            candidate(1),
            relay.clone(),
            new.clone(),
            candidate(2),
        ] {
            assert!(early.hold(peer.id(), p));
        }
        assert_eq!(
            early.take(&peer.id()),
            vec![relay, new.clone(), candidate(2)]
        );
        // Held while our verify hook runs: the same.
        let mut admission = Admission::new(me.id(), true);
        let first = peer.offer(&me.id(), 1, Some("c"));
        assert!(matches!(
            admission.admit(&peer.id(), first, false),
            Admit::Check { .. }
        ));
        assert!(matches!(
            admission.admit(&peer.id(), candidate(1), false),
            Admit::Held
        ));
        assert!(matches!(
            admission.admit(&peer.id(), new.clone(), false),
            Admit::Held
        ));
        assert!(matches!(
            admission.admit(&peer.id(), candidate(2), false),
            Admit::Held
        ));
        match admission.verdict(&peer.id(), true) {
            Verdict::Passed(held) => assert_eq!(held, vec![new, candidate(2)]),
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        /// Any order of offers (signed right or not), candidates, verdicts and departures
        /// from up to eight peers: no panic, and nothing held past its bounds.
        #[test]
        fn any_sequence_stays_within_bounds(
            steps in proptest::collection::vec((0u8..8, 0u8..6, any::<bool>()), 0..200)
        ) {
            let me = Peer::new(100);
            let peers: Vec<Peer> = (0..8).map(Peer::new).collect();
            let mut admission = Admission::new(me.id(), true);
            for (n, (who, what, flag)) in steps.into_iter().enumerate() {
                let peer = &peers[usize::from(who)];
                let seq = n as u64;
                match what {
                    0 => { admission.admit(&peer.id(), peer.offer(&me.id(), seq, Some("c")), false); }
                    1 => { admission.admit(&peer.id(), candidate(seq as u32), false); }
                    2 => { admission.verdict(&peer.id(), flag); }
                    3 => admission.forget(&peer.id(), |_| flag),
                    4 => admission.refuse(&peer.id()),
                    _ => {
                        // Signed by another peer: never passes.
                        let other = &peers[(usize::from(who) + 1) % peers.len()];
                        let forged = other.offer(&me.id(), seq, Some("c"));
                        let admitted = admission.admit(&peer.id(), forged, false);
                        prop_assert!(!matches!(admitted, Admit::Pass(_)));
                    }
                }
                let (peers_held, frames) = admission.held();
                prop_assert!(peers_held <= HELD_PEERS && frames <= HELD_FRAMES);
            }
        }
    }
}
