// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

//! Two cores joined by a scripted server, each with a real full mesh and a stand-in for
//! its driver that makes descriptions at once: perfect negotiation, ICE restarts, a server
//! that goes away and a stalled link, on a virtual clock.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use plenum_overlay::FullMesh;
use plenum_proto::identity::Identity;
use plenum_proto::signal::{ClientToServer, Role, ServerToClient, SignalPayload};
use plenum_proto::{DisplayName, Envelope, EnvelopeKind, PeerId};

use super::super::{CoreConfig, Input, Output, Queues, RoomCore};
use super::Description;
use crate::lifecycle::{RESTART_GRACE, Transport};
use crate::overlay::Overlay;
use crate::types::{RoomError, RoomEvent};

fn sdp(cert: u32) -> String {
    format!("v=0\r\na=fingerprint:sha-256 {cert:08X}:00\r\n")
}

/// One peer: its core, and the certificate of the connection its driver holds.
struct Side {
    core: RoomCore,
    me: PeerId,
    cert: u32,
}

/// Two sides, the server between them (a queue of frames each way), and what each side
/// was told to do, in order.
struct Pair {
    sides: [Side; 2],
    now: Instant,
    /// Frames on their way through the server, to side 0 and to side 1.
    wire: [VecDeque<ServerToClient>; 2],
    /// Every output of each side, but the server's frames (those are on the wire).
    did: [Vec<Output>; 2],
    next_cert: u32,
}

fn side(seed: u8, now: Instant) -> Side {
    let identity = Identity::from_seed([seed; 32]);
    let me = identity.peer_id();
    let mesh = FullMesh::with_seed(Default::default(), now, u64::from(seed)).with_peer(me.clone());
    let config = CoreConfig {
        me: me.clone(),
        identity,
        credentials: None,
        seq: 1,
        role: Role::Both,
        sparse: false,
        lossy: BTreeSet::new(),
        ping_interval: Duration::from_secs(30),
        ping_attempts: 3,
        queues: Queues {
            per_peer: 16,
            first_peer: 16,
        },
        verify: false,
    };
    Side {
        core: RoomCore::new(config, Overlay::Mesh(Box::new(mesh)), now),
        me,
        cert: 0,
    }
}

impl Pair {
    /// Two peers that each know the other (neither has linked yet); side 0 has the
    /// smaller id (it starts restarts; side 1 is the polite one).
    fn new() -> Self {
        let now = Instant::now();
        let (a, b) = (side(1, now), side(2, now));
        let mut sides = if a.me < b.me { [a, b] } else { [b, a] };
        for i in 0..2 {
            let other = sides[1 - i].me.clone();
            let name = DisplayName::new("p").unwrap();
            sides[i].core.add_member(other, name);
        }
        Self {
            sides,
            now,
            wire: [VecDeque::new(), VecDeque::new()],
            did: [Vec::new(), Vec::new()],
            next_cert: 100,
        }
    }

    fn peer(&self, i: usize) -> PeerId {
        self.sides[i].me.clone()
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now;
        self.sides[i].core.handle_input(now, input);
        self.run(i);
    }

    /// Carries out what side `i` says, as its driver would, until it waits.
    fn run(&mut self, i: usize) {
        loop {
            let output = self.sides[i].core.poll_output();
            let reply = match &output {
                Output::Timeout(_) => return,
                Output::Server(ClientToServer::Signal { to, payload, .. }) => {
                    // To the other side (a peer the pair does not hold hears nothing).
                    if *to == self.sides[1 - i].me {
                        let from = self.sides[i].me.clone();
                        let payload = payload.clone();
                        self.wire[1 - i].push_back(ServerToClient::Signal {
                            from,
                            name: None,
                            role: None,
                            payload,
                        });
                    }
                    continue;
                }
                Output::Offer { peer } => {
                    self.next_cert += 1;
                    self.sides[i].cert = self.next_cert;
                    Some((peer.clone(), Description::Offer))
                }
                Output::RestartIce { peer } => Some((peer.clone(), Description::Offer)),
                Output::Answer { peer, fresh, .. } => {
                    if *fresh {
                        self.next_cert += 1;
                        self.sides[i].cert = self.next_cert;
                    }
                    Some((peer.clone(), Description::Answer))
                }
                _ => None,
            };
            self.did[i].push(output);
            if let Some((peer, kind)) = reply {
                let sdp = sdp(self.sides[i].cert);
                let now = self.now;
                let input = Input::Described { peer, kind, sdp };
                self.sides[i].core.handle_input(now, input);
            }
        }
    }

    /// Delivers what the server holds for side `i`.
    fn deliver(&mut self, i: usize) {
        while let Some(frame) = self.wire[i].pop_front() {
            self.input(i, Input::Server(frame));
        }
    }

    fn count(&self, i: usize, what: impl Fn(&Output) -> bool) -> usize {
        self.did[i].iter().filter(|o| what(o)).count()
    }

    fn offering(&self, i: usize) -> bool {
        let other = self.peer(1 - i);
        self.sides[i]
            .core
            .links
            .get(&other)
            .is_some_and(|book| book.negotiation.is_offering())
    }

    /// Side `i`'s link comes up: connected, its channel open.
    fn up(&mut self, i: usize) {
        let peer = self.peer(1 - i);
        let state = Transport::Connected;
        self.input(
            i,
            Input::Transport {
                peer: peer.clone(),
                state,
            },
        );
        self.input(i, Input::ChannelOpen { peer });
    }

    /// A clean first link: side 0 offers, side 1 answers, both come up.
    fn linked() -> Self {
        let mut pair = Self::new();
        let b = pair.peer(1);
        pair.sides[0].core.offer_to(b);
        pair.run(0);
        pair.deliver(1);
        pair.deliver(0);
        pair.up(0);
        pair.up(1);
        pair.did = [Vec::new(), Vec::new()];
        pair
    }
}

fn answers(fresh: bool) -> impl Fn(&Output) -> bool {
    move |o| matches!(o, Output::Answer { fresh: f, .. } if *f == fresh)
}

fn took_answer(o: &Output) -> bool {
    matches!(o, Output::TakeAnswer { .. })
}

#[test]
fn offers_that_collide_leave_one_link_the_polite_side_answers() {
    let mut pair = Pair::new();
    let (a, b) = (pair.peer(0), pair.peer(1));
    pair.sides[0].core.offer_to(b);
    pair.sides[1].core.offer_to(a);
    pair.run(0);
    pair.run(1);
    // The collision is real: both offers are on the wire while both sides offer.
    assert_eq!((pair.wire[0].len(), pair.wire[1].len()), (1, 1));
    assert!(pair.offering(0) && pair.offering(1));
    pair.deliver(0);
    pair.deliver(1);
    // The impolite side (the smaller id) keeps its offer; the polite one answers it on a
    // new link.
    assert_eq!(pair.count(0, answers(true)), 0);
    assert_eq!(pair.count(1, answers(true)), 1);
    pair.deliver(0);
    assert_eq!(pair.count(0, took_answer), 1);
    assert!(!pair.offering(0) && !pair.offering(1), "settled");
    // Nothing more is on the wire: one exchange, one link.
    assert!(pair.wire.iter().all(VecDeque::is_empty));
}

#[test]
fn a_lost_path_is_restarted_by_one_side_and_answered_on_the_same_link() {
    let mut pair = Pair::linked();
    for i in 0..2 {
        let peer = pair.peer(1 - i);
        let state = Transport::Disconnected;
        pair.input(i, Input::Transport { peer, state });
    }
    let restarts = |o: &Output| matches!(o, Output::RestartIce { .. });
    assert_eq!((pair.count(0, restarts), pair.count(1, restarts)), (1, 0));
    let down = |o: &Output| matches!(o, Output::Event(RoomEvent::LinkDown { .. }));
    assert_eq!((pair.count(0, down), pair.count(1, down)), (1, 1));
    pair.deliver(1);
    assert_eq!(pair.count(1, answers(false)), 1, "{:?}", pair.did[1]);
    assert_eq!(pair.count(1, answers(true)), 0, "no new link");
    pair.deliver(0);
    assert_eq!(pair.count(0, took_answer), 1);
    // The path returns: both report it back, and ask for keyframes.
    for i in 0..2 {
        let peer = pair.peer(1 - i);
        let state = Transport::Connected;
        pair.input(i, Input::Transport { peer, state });
        let back = |o: &Output| matches!(o, Output::Keyframes { .. });
        assert_eq!(pair.count(i, back), 1);
    }
}

#[test]
fn restarts_that_collide_leave_one_link() {
    let mut pair = Pair::linked();
    for i in 0..2 {
        let peer = pair.peer(1 - i);
        let state = Transport::Disconnected;
        pair.input(i, Input::Transport { peer, state });
    }
    // Side 0's restart is slow to arrive: side 1's grace runs out and it restarts too.
    pair.now += RESTART_GRACE + Duration::from_millis(600);
    pair.input(1, Input::Tick);
    let restarts = |o: &Output| matches!(o, Output::RestartIce { .. });
    assert_eq!((pair.count(0, restarts), pair.count(1, restarts)), (1, 1));
    assert!(pair.offering(0) && pair.offering(1), "the restarts collide");
    pair.deliver(0);
    pair.deliver(1);
    // Glare again: the impolite side keeps its own, the polite side makes a new link.
    assert_eq!(
        pair.count(0, answers(true)) + pair.count(0, answers(false)),
        0
    );
    assert_eq!(pair.count(1, answers(true)), 1);
    pair.deliver(0);
    assert_eq!(pair.count(0, took_answer), 1);
    assert!(pair.wire.iter().all(VecDeque::is_empty));
}

#[test]
fn while_the_server_is_away_frames_wait_in_order_and_a_peer_it_lost_stays_linked() {
    let mut pair = Pair::linked();
    let b = pair.peer(1);
    pair.input(
        0,
        Input::ServerLost {
            reason: "restart".into(),
        },
    );
    let lost = |o: &Output| {
        matches!(
            o,
            Output::Event(RoomEvent::Error(RoomError::SignalingLost(_)))
        )
    };
    assert_eq!(pair.count(0, lost), 1);
    // A restart offer and a candidate made meanwhile wait for the server.
    pair.input(
        0,
        Input::Transport {
            peer: b.clone(),
            state: Transport::Disconnected,
        },
    );
    let candidate = crate::negotiation::Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    pair.input(
        0,
        Input::Gathered {
            peer: b.clone(),
            candidate,
        },
    );
    assert!(pair.wire[1].is_empty());
    assert!(pair.sides[0].core.holds_for_server());
    // The restarted server says the peer left (it lost its session): our link to it is
    // up, so it stays.
    pair.input(
        0,
        Input::Server(ServerToClient::PeerLeft { peer: b.clone() }),
    );
    assert!(pair.sides[0].core.is_member(&b));
    let left = |o: &Output| matches!(o, Output::Event(RoomEvent::PeerLeave { .. }));
    assert_eq!(pair.count(0, left), 0);
    // Back: what waited goes, in order.
    pair.input(0, Input::ServerBack { peers: Vec::new() });
    let kinds: Vec<&str> = pair.wire[1]
        .iter()
        .map(|f| match f {
            ServerToClient::Signal {
                payload: SignalPayload::Offer { .. },
                ..
            } => "offer",
            ServerToClient::Signal {
                payload: SignalPayload::Candidate { .. },
                ..
            } => "candidate",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["offer", "candidate"]);
    // When the link goes too, the peer the server lost is gone.
    pair.input(
        0,
        Input::Stalled {
            peer: b.clone(),
            queued: 1,
        },
    );
    assert_eq!(pair.count(0, left), 1);
    assert!(!pair.sides[0].core.is_member(&b));
}

#[test]
fn a_stalled_link_is_closed_and_the_others_carry_on() {
    let mut pair = Pair::linked();
    let b = pair.peer(1);
    let c = Identity::from_seed([3; 32]).peer_id();
    let core = &mut pair.sides[0].core;
    core.add_member(c.clone(), DisplayName::new("c").unwrap());
    core.links.entry(c.clone()).or_default();
    pair.input(0, Input::ChannelOpen { peer: c.clone() });
    pair.input(
        0,
        Input::Stalled {
            peer: b.clone(),
            queued: 4096,
        },
    );
    let stalled = |o: &Output| {
        matches!(
            o,
            Output::Event(RoomEvent::Error(RoomError::LinkStalled {
                queued: 4096,
                ..
            }))
        )
    };
    assert_eq!(pair.count(0, stalled), 1);
    assert!(pair.did[0].contains(&Output::Close { peer: b.clone() }));
    // The other link still carries our words and answers pings.
    pair.did[0].clear();
    let announcement = plenum_proto::StreamAnnouncement::Remove { stream: "s".into() };
    pair.input(0, Input::Stream(announcement));
    let writes: Vec<&PeerId> = pair.did[0]
        .iter()
        .filter_map(|o| match o {
            Output::Write { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(writes, [&c]);
    let ping = Envelope::control(EnvelopeKind::Ping, 7).encode().into();
    pair.input(
        0,
        Input::Envelope {
            peer: c.clone(),
            bytes: ping,
        },
    );
    let pong = bytes::Bytes::from(Envelope::control(EnvelopeKind::Pong, 7).encode());
    assert!(pair.did[0].contains(&Output::Write {
        peer: c,
        bytes: pong
    }));
}

mod converge {
    use proptest::prelude::*;

    use super::*;

    /// One thing that happens to the pair.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Side `i` makes a new link and offers (its topology asked for one).
        Offer(usize),
        /// The server hands side `i` the oldest frame it holds for it.
        Deliver(usize),
        /// Side `i`'s transport reports the path gone, or back.
        Down(usize),
        Up(usize),
        /// Time passes for side `i` (restart grace and retries).
        Wait(usize),
        /// Side `i`'s data channel opens.
        Open(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        (0usize..2, 0u8..11).prop_map(|(i, k)| match k {
            0 => Step::Offer(i),
            1 => Step::Down(i),
            2 => Step::Up(i),
            3 => Step::Wait(i),
            4 => Step::Open(i),
            _ => Step::Deliver(i),
        })
    }

    /// The fingerprint line side `i`'s connection presents.
    fn prints(pair: &Pair, i: usize) -> Vec<String> {
        plenum_proto::identity::fingerprints(&sdp(pair.sides[i].cert))
    }

    proptest! {
        /// Whatever the two sides do and in whatever order the server passes their
        /// frames, once everything is delivered (and time passes for restarts) they agree
        /// on one connection: neither waits for an answer, and each has set the other's
        /// current description as its remote one.
        #[test]
        fn any_order_of_offers_restarts_and_delivery_ends_in_one_agreed_link(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let mut pair = Pair::new();
            let (a, b) = (pair.peer(0), pair.peer(1));
            // There is a link to agree on: side 0 starts one.
            pair.sides[0].core.offer_to(b);
            pair.run(0);
            for s in steps {
                match s {
                    Step::Offer(i) => {
                        let other = if i == 0 { pair.peer(1) } else { a.clone() };
                        pair.sides[i].core.offer_to(other);
                        pair.run(i);
                    }
                    Step::Deliver(i) => {
                        if let Some(frame) = pair.wire[i].pop_front() {
                            pair.input(i, Input::Server(frame));
                        }
                    }
                    Step::Down(i) | Step::Up(i) => {
                        let peer = pair.peer(1 - i);
                        let state = if matches!(s, Step::Down(_)) {
                            Transport::Disconnected
                        } else {
                            Transport::Connected
                        };
                        pair.input(i, Input::Transport { peer, state });
                    }
                    Step::Wait(i) => {
                        pair.now += Duration::from_secs(1);
                        pair.input(i, Input::Tick);
                    }
                    Step::Open(i) => {
                        let peer = pair.peer(1 - i);
                        pair.input(i, Input::ChannelOpen { peer });
                    }
                }
            }
            // Everything in flight arrives; the paths are up.
            for _ in 0..20 {
                pair.deliver(0);
                pair.deliver(1);
                if pair.wire.iter().all(VecDeque::is_empty) {
                    break;
                }
            }
            prop_assert!(pair.wire.iter().all(VecDeque::is_empty), "still talking");
            for i in 0..2 {
                let other = pair.peer(1 - i);
                let book = pair.sides[i].core.links.get(&other);
                prop_assert!(book.is_some(), "side {i} has no link");
                let book = book.unwrap();
                prop_assert!(!book.negotiation.is_offering(), "side {i} still waits for an answer");
                prop_assert_eq!(
                    book.negotiation.remote_prints(),
                    &prints(&pair, 1 - i)[..],
                    "side {} set another connection than side {}'s", i, 1 - i
                );
            }
        }
    }
}
