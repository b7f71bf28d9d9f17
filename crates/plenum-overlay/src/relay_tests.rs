// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;

fn drain(node: &mut RelayNode) -> Vec<RelayOutput> {
    let mut out = Vec::new();
    loop {
        match node.poll_output() {
            RelayOutput::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

/// A 40-hex id from a seed.
fn rid(seed: u64) -> PeerId {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234;
    let mut hex = String::new();
    for _ in 0..3 {
        hex.push_str(&format!("{:016x}", crate::splitmix64(&mut s)));
    }
    PeerId::new(&hex[..40]).unwrap()
}

fn config(max: usize) -> RelayConfig {
    RelayConfig::builder().max_neighbours(max).build().unwrap()
}

#[test]
fn ids_are_forty_hex_digits_and_buckets_count_shared_bits() {
    let a = RelayId::of(&PeerId::new("00".repeat(20)).unwrap()).unwrap();
    let b = RelayId::of(&PeerId::new(format!("80{}", "00".repeat(19))).unwrap()).unwrap();
    let c = RelayId::of(&PeerId::new(format!("{}01", "00".repeat(19))).unwrap()).unwrap();
    assert_eq!(a.bucket(&b), Some(0));
    assert_eq!(a.bucket(&c), Some(159));
    assert_eq!(a.bucket(&a), None);
    assert!(RelayId::of(&PeerId::new("short").unwrap()).is_none());
    assert!(RelayId::of(&PeerId::new("zz".repeat(20)).unwrap()).is_none());
    assert!(RelayNode::new(PeerId::new("n1").unwrap(), config(4), Instant::now(), 1).is_none());
}

#[test]
fn a_lone_node_asks_through_the_server_and_a_target_nobody_reaches_is_unreachable() {
    let t0 = Instant::now();
    let mut a = RelayNode::new(rid(1), config(4), t0, 1).unwrap();
    a.handle_input(Input::PeerAppeared {
        peer: rid(2),
        origin: Appearance::Roster,
        now: t0,
    });
    let out = drain(&mut a);
    assert!(out.contains(&RelayOutput::SignalLink {
        peer: rid(2),
        degree: 0
    }));
    assert!(out.contains(&RelayOutput::Connect {
        peer: rid(2),
        initiate: false
    }));
    // No link: a frame has nowhere to go; it is tried again at each acknowledgement
    // timeout, three times, and then the target is unreachable.
    let seq = a.send(rid(3), b"hi".to_vec()).unwrap();
    assert!(
        !drain(&mut a)
            .iter()
            .any(|o| matches!(o, RelayOutput::Unreachable { .. }))
    );
    let mut now = t0;
    let mut gave_up = false;
    for _ in 0..3 {
        now += Duration::from_secs(2);
        a.handle_input(Input::Tick { now });
        gave_up |= drain(&mut a).contains(&RelayOutput::Unreachable {
            target: rid(3),
            seq,
        });
    }
    assert!(gave_up, "unreachable after its attempts");
    assert_eq!(a.send(rid(1), vec![]), Err(RelaySendError::ToSelf));
    assert!(matches!(
        a.send(PeerId::new("nope").unwrap(), vec![]),
        Err(RelaySendError::BadTarget(_))
    ));
}

#[test]
fn forged_looping_and_stray_frames_are_dropped() {
    let t0 = Instant::now();
    let mut a = RelayNode::new(rid(1), config(4), t0, 1).unwrap();
    a.link_requested(rid(2), 0);
    drain(&mut a);
    a.handle_input(Input::LinkUp {
        peer: rid(2),
        now: t0,
    });
    drain(&mut a);
    let frame = |hops: u8, seq: u64| RouteFrame {
        kind: RouteKind::Data,
        origin: rid(2),
        target: rid(1),
        seq,
        hops,
        back: false,
        attempt: 0,
        visited: vec![rid(2), rid(1)],
        path: vec![rid(2), rid(1)],
        data: vec![7],
    };
    a.handle_msg(rid(2), RelayMsg::Route(frame(200, 1)), t0);
    assert!(drain(&mut a).contains(&RelayOutput::Dropped {
        from: rid(2),
        reason: "hop count beyond the limit"
    }));
    a.handle_msg(rid(2), RelayMsg::Route(frame(1, 2)), t0);
    assert!(drain(&mut a).contains(&RelayOutput::Deliver {
        origin: rid(2),
        hops: 1,
        data: vec![7]
    }));
    a.handle_msg(rid(2), RelayMsg::Route(frame(1, 2)), t0);
    assert!(drain(&mut a).contains(&RelayOutput::Dropped {
        from: rid(2),
        reason: "a copy or a loop"
    }));
    let mut stray = frame(1, 3);
    stray.target = PeerId::new("not-hex").unwrap();
    a.handle_msg(rid(2), RelayMsg::Route(stray), t0);
    assert!(drain(&mut a).contains(&RelayOutput::Dropped {
        from: rid(2),
        reason: "not a relay id"
    }));
    a.handle_msg(rid(9), RelayMsg::Route(frame(1, 4)), t0);
    assert!(drain(&mut a).contains(&RelayOutput::Dropped {
        from: rid(9),
        reason: "not a neighbour"
    }));
}

/// What the network hands a node.
enum Delivery {
    Msg(PeerId, RelayMsg),
    Input(Input),
    LinkRequest(PeerId, u8),
}

/// Relay nodes wired together with instant links and an instant server.
struct Net {
    now: Instant,
    nodes: BTreeMap<PeerId, RelayNode>,
    dead: BTreeSet<PeerId>,
    wants: BTreeSet<(PeerId, PeerId)>,
    up: BTreeSet<(PeerId, PeerId)>,
    queue: VecDeque<(PeerId, Delivery)>,
    got: BTreeMap<(PeerId, u64), Vec<u8>>,
    unreachable: Vec<(PeerId, u64)>,
    hops: Vec<u8>,
    max: usize,
    next: u64,
}

impl Net {
    fn new(n: usize, max: usize) -> Self {
        let mut net = Self {
            now: Instant::now(),
            nodes: BTreeMap::new(),
            dead: BTreeSet::new(),
            wants: BTreeSet::new(),
            up: BTreeSet::new(),
            queue: VecDeque::new(),
            got: BTreeMap::new(),
            unreachable: Vec::new(),
            hops: Vec::new(),
            max,
            next: 0,
        };
        for _ in 0..n {
            net.add();
        }
        net.settle();
        net
    }

    /// A newcomer that the server hands a sample of the room.
    fn add(&mut self) -> PeerId {
        self.next += 1;
        let me = rid(self.next);
        let mut node = RelayNode::new(me.clone(), config(self.max), self.now, self.next).unwrap();
        let alive: Vec<&PeerId> = self
            .nodes
            .keys()
            .filter(|p| !self.dead.contains(*p))
            .collect();
        for peer in welcome_sample(alive.into_iter(), &me, 8, 8, self.next) {
            node.handle_input(Input::PeerAppeared {
                peer,
                origin: Appearance::Roster,
                now: self.now,
            });
        }
        self.nodes.insert(me.clone(), node);
        self.run();
        me
    }

    fn key(a: &PeerId, b: &PeerId) -> (PeerId, PeerId) {
        (a.min(b).clone(), a.max(b).clone())
    }

    fn run(&mut self) {
        for _ in 0..1_000_000 {
            let ids: Vec<PeerId> = self.nodes.keys().cloned().collect();
            let mut any = false;
            for me in ids {
                if self.dead.contains(&me) {
                    continue;
                }
                let outs = drain(self.nodes.get_mut(&me).unwrap());
                any |= !outs.is_empty();
                for o in outs {
                    self.route(&me, o);
                }
            }
            while let Some((to, d)) = self.queue.pop_front() {
                any = true;
                if self.dead.contains(&to) {
                    continue;
                }
                let Some(node) = self.nodes.get_mut(&to) else {
                    continue;
                };
                match d {
                    Delivery::Msg(from, msg) => node.handle_msg(from, msg, self.now),
                    Delivery::Input(input) => node.handle_input(input),
                    Delivery::LinkRequest(from, degree) => node.link_requested(from, degree),
                }
            }
            if !any {
                return;
            }
        }
        panic!("the network never settled");
    }

    /// Time passes: refreshes run and missing neighbours are looked for.
    fn settle(&mut self) {
        for _ in 0..6 {
            self.now += Duration::from_secs(6);
            let now = self.now;
            let ids: Vec<PeerId> = self.nodes.keys().cloned().collect();
            for id in ids {
                if !self.dead.contains(&id) {
                    // Live links are heard from (their heartbeats).
                    let linked: Vec<PeerId> = self
                        .up
                        .iter()
                        .filter_map(|(a, b)| {
                            if *a == id {
                                Some(b.clone())
                            } else if *b == id {
                                Some(a.clone())
                            } else {
                                None
                            }
                        })
                        .collect();
                    let node = self.nodes.get_mut(&id).unwrap();
                    for peer in linked {
                        node.handle_input(Input::Heard { peer, now });
                    }
                    node.handle_input(Input::Tick { now });
                }
            }
            self.run();
        }
    }

    fn route(&mut self, me: &PeerId, o: RelayOutput) {
        let now = self.now;
        match o {
            RelayOutput::Connect { peer, .. } => {
                self.wants.insert((me.clone(), peer.clone()));
                if self.wants.contains(&(peer.clone(), me.clone()))
                    && !self.dead.contains(&peer)
                    && self.up.insert(Self::key(me, &peer))
                {
                    for (a, b) in [(me.clone(), peer.clone()), (peer, me.clone())] {
                        self.queue
                            .push_back((a, Delivery::Input(Input::LinkUp { peer: b, now })));
                    }
                }
            }
            RelayOutput::Disconnect { peer } => {
                self.wants.remove(&(me.clone(), peer.clone()));
                self.wants.remove(&(peer.clone(), me.clone()));
                if self.up.remove(&Self::key(me, &peer)) {
                    self.queue.push_back((
                        peer,
                        Delivery::Input(Input::LinkDown {
                            peer: me.clone(),
                            now,
                        }),
                    ));
                }
            }
            RelayOutput::Send { peer, msg } if self.up.contains(&Self::key(me, &peer)) => {
                // Through the wire format, as the engine sends it.
                let msg = RelayMsg::from_envelope(&msg.to_envelope()).unwrap();
                self.queue.push_back((peer, Delivery::Msg(me.clone(), msg)));
            }
            RelayOutput::SignalLink { peer, degree } => {
                self.queue
                    .push_back((peer, Delivery::LinkRequest(me.clone(), degree)));
            }
            RelayOutput::Deliver { origin, data, hops } => {
                assert!(hops <= 32, "a frame made {hops} hops");
                self.hops.push(hops);
                let seq = u64::from_be_bytes(data[..8].try_into().unwrap());
                let prev = self.got.insert((me.clone(), seq), data);
                assert!(
                    prev.is_none(),
                    "{} got unicast {seq} from {} twice",
                    me.as_str(),
                    origin.as_str()
                );
            }
            RelayOutput::Unreachable { target, seq } => {
                self.unreachable.push((target, seq));
            }
            _ => {}
        }
    }

    fn kill(&mut self, who: &PeerId) {
        self.dead.insert(who.clone());
        let now = self.now;
        let linked: Vec<PeerId> = self
            .up
            .iter()
            .filter(|(a, b)| a == who || b == who)
            .map(|(a, b)| if a == who { b.clone() } else { a.clone() })
            .collect();
        for peer in linked {
            self.up.remove(&Self::key(who, &peer));
            self.queue.push_back((
                peer,
                Delivery::Input(Input::LinkDown {
                    peer: who.clone(),
                    now,
                }),
            ));
        }
        self.run();
    }

    fn alive(&self) -> Vec<PeerId> {
        self.nodes
            .keys()
            .filter(|p| !self.dead.contains(*p))
            .cloned()
            .collect()
    }

    /// Neighbour bound held, both ends agreeing, and one connected network.
    fn check(&self) {
        let alive = self.alive();
        for me in &alive {
            let n = self.nodes[me].neighbours();
            assert!(
                n.len() <= self.max,
                "{} has {} neighbours",
                me.as_str(),
                n.len()
            );
            for peer in &n {
                if !self.nodes[peer].neighbours().contains(me) {
                    let a = &self.nodes[me];
                    let b = &self.nodes[peer];
                    eprintln!(
                        "A up {:?} pending {:?} mesh {:?}",
                        a.up,
                        a.pending.keys().collect::<Vec<_>>(),
                        a.links.neighbours()
                    );
                    eprintln!(
                        "B up {:?} pending {:?} mesh {:?}",
                        b.up,
                        b.pending.keys().collect::<Vec<_>>(),
                        b.links.neighbours()
                    );
                    eprintln!(
                        "harness up: {} dead {}",
                        self.up.contains(&Self::key(me, peer)),
                        self.dead.contains(peer)
                    );
                }
                assert!(
                    self.nodes[peer].neighbours().contains(me),
                    "{} and {} disagree",
                    me.as_str(),
                    peer.as_str()
                );
            }
        }
        let mut reached = BTreeSet::new();
        let mut stack = vec![alive[0].clone()];
        while let Some(p) = stack.pop() {
            if reached.insert(p.clone()) {
                stack.extend(self.nodes[&p].neighbours());
            }
        }
        assert_eq!(reached.len(), alive.len(), "the network is split");
    }

    /// Sends unicast `seq` from `from` to `to`; true if it arrived (once).
    fn unicast(&mut self, from: &PeerId, to: &PeerId, seq: u64) -> bool {
        self.nodes
            .get_mut(from)
            .unwrap()
            .send(to.clone(), seq.to_be_bytes().to_vec())
            .unwrap();
        self.run();
        self.got.contains_key(&(to.clone(), seq))
    }
}

#[test]
fn two_neighbours_each_still_reach_every_pair() {
    let mut net = Net::new(12, 2);
    net.check();
    let alive = net.alive();
    let mut seq = 0;
    for a in &alive {
        for b in &alive {
            if a != b {
                seq += 1;
                assert!(net.unicast(a, b, seq), "{} to {}", a.as_str(), b.as_str());
            }
        }
    }
    // Nobody has this id: the sender hears so.
    net.unicast(&alive[0], &rid(9999), 10_000);
    // Within its attempts (each waits for an acknowledgement).
    net.settle();
    assert_eq!(net.unreachable.last().map(|(t, _)| t), Some(&rid(9999)));
}

#[test]
fn buckets_make_routes_short() {
    let mut net = Net::new(300, 20);
    net.check();
    let alive = net.alive();
    for i in 0..200u64 {
        let a = alive[(i as usize * 7) % alive.len()].clone();
        let b = alive[(i as usize * 13 + 5) % alive.len()].clone();
        if a != b {
            assert!(net.unicast(&a, &b, i + 1));
        }
    }
    // Greedy over buckets: about log2(300) = 8 hops at worst, not a walk through the room.
    let mut hops = net.hops.clone();
    hops.sort_unstable();
    let p99 = hops[hops.len() * 99 / 100];
    assert!(p99 <= 10, "hops p99 {p99}: {hops:?}");
}

#[test]
fn a_lost_neighbour_is_bridged_through_its_other_neighbours() {
    let mut net = Net::new(10, 2);
    net.check();
    let victim = net.alive()[3].clone();
    net.kill(&victim);
    net.settle();
    net.check();
    let alive = net.alive();
    assert!(net.unicast(&alive[0], &alive[alive.len() - 1], 1));
}

#[test]
fn options_are_validated() {
    assert!(RelayConfig::builder().max_neighbours(0).build().is_err());
    assert!(RelayConfig::builder().hop_limit(1).build().is_err());
    assert!(RelayConfig::builder().known_per_bucket(0).build().is_err());
    assert!(RelayConfig::builder().build().is_ok());
}

mod networks {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Networks of any size and bound: the bound held, one connected network, every
        /// unicast delivered exactly once within the hop limit; after peers die and others
        /// join, the same again. Short routes need a neighbour per bucket, about log2(N)
        /// of them; with two or three each the network is a chain or near it, which
        /// depth-first routing crosses within the hop limit up to 14 peers.
        #[test]
        fn relay_networks_deliver_and_repair((n, max) in prop_oneof![(2usize..14, 2usize..4), (2usize..150, 8usize..16)], kills in proptest::collection::vec(any::<u16>(), 0..6), joins in 0usize..6) {
            let mut net = Net::new(n, max);
            net.check();
            let mut seq = 0u64;
            let sends = |net: &mut Net, seq: &mut u64| {
                let alive = net.alive();
                for i in 0..alive.len().min(30) {
                    let a = &alive[(i * 7) % alive.len()];
                    let b = &alive[(i * 11 + 1) % alive.len()];
                    if a != b {
                        *seq += 1;
                        assert!(net.unicast(a, b, *seq), "unicast {} from {} to {} lost (unreachable: {:?})", seq, a.as_str(), b.as_str(), net.unreachable.last());
                    }
                }
            };
            sends(&mut net, &mut seq);
            for k in &kills {
                let alive = net.alive();
                if alive.len() <= 2 {
                    break;
                }
                let victim = alive[usize::from(*k) % alive.len()].clone();
                net.kill(&victim);
            }
            for _ in 0..joins {
                net.add();
            }
            net.settle();
            net.check();
            sends(&mut net, &mut seq);
        }
    }
}

/// Links `a` and `b` as two neighbours.
fn neighbours(a: &mut RelayNode, b: &mut RelayNode, a_id: PeerId, b_id: PeerId, now: Instant) {
    a.link_requested(b_id.clone(), 0);
    a.handle_input(Input::LinkUp { peer: b_id, now });
    b.link_requested(a_id.clone(), 0);
    b.handle_input(Input::LinkUp { peer: a_id, now });
    drain(a);
    drain(b);
}

/// The routed frames in `out`, by the neighbour they go to.
fn routed(out: &[RelayOutput]) -> Vec<(PeerId, RouteFrame)> {
    out.iter()
        .filter_map(|o| match o {
            RelayOutput::Send {
                peer,
                msg: RelayMsg::Route(f),
            } => Some((peer.clone(), f.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_routed_link_request_is_acknowledged_and_sent_again_until_it_is() {
    let t0 = Instant::now();
    let (a_id, b_id, c_id) = (rid(1), rid(2), rid(3));
    let mut a = RelayNode::new(a_id.clone(), config(4), t0, 1).unwrap();
    let mut b = RelayNode::new(b_id.clone(), config(4), t0, 2).unwrap();
    let mut c = RelayNode::new(c_id.clone(), config(4), t0, 3).unwrap();
    neighbours(&mut a, &mut b, a_id.clone(), b_id.clone(), t0);
    neighbours(&mut b, &mut c, b_id.clone(), c_id.clone(), t0);
    // A asks C, which is not its neighbour: the request goes through B.
    a.connect(c_id.clone());
    let first = routed(&drain(&mut a));
    assert!(
        matches!(&first[..], [(via, f)] if *via == b_id && f.kind == RouteKind::Link && f.attempt == 0),
        "{first:?}"
    );
    // It is lost on the way (B's link to C was closing, say): two seconds later A sends
    // it again, as its next attempt.
    let later = t0 + Duration::from_secs(2);
    a.handle_input(Input::Tick { now: later });
    let again = routed(&drain(&mut a));
    let (_, frame) = again
        .iter()
        .find(|(_, f)| f.kind == RouteKind::Link)
        .expect("sent again");
    assert_eq!(frame.attempt, 1);
    // This one arrives; C takes it once, however many copies come, and acknowledges
    // each.
    let mut at_b = frame.clone();
    b.handle_msg(a_id.clone(), RelayMsg::Route(at_b.clone()), later);
    let to_c = routed(&drain(&mut b));
    assert_eq!(to_c.len(), 1);
    at_b = to_c[0].1.clone();
    c.handle_msg(b_id.clone(), RelayMsg::Route(at_b.clone()), later);
    let out = drain(&mut c);
    assert!(out.contains(&RelayOutput::Connect {
        peer: a_id.clone(),
        initiate: true
    }));
    let ack = routed(&out)
        .into_iter()
        .find(|(_, f)| f.kind == RouteKind::Ack)
        .expect("acknowledged");
    let mut copy = at_b.clone();
    copy.attempt = 2;
    c.handle_msg(b_id.clone(), RelayMsg::Route(copy), later);
    let out = drain(&mut c);
    assert!(!out.iter().any(|o| matches!(o, RelayOutput::Connect { .. })));
    assert!(routed(&out).iter().any(|(_, f)| f.kind == RouteKind::Ack));
    // The acknowledgement comes back through B: A sends the request no more.
    b.handle_msg(c_id.clone(), RelayMsg::Route(ack.1), later);
    let back = routed(&drain(&mut b));
    a.handle_msg(b_id.clone(), RelayMsg::Route(back[0].1.clone()), later);
    drain(&mut a);
    a.handle_input(Input::Tick {
        now: later + Duration::from_secs(5),
    });
    assert!(
        !routed(&drain(&mut a))
            .iter()
            .any(|(_, f)| f.kind == RouteKind::Link)
    );
}

fn hex_id(first: u8, last: u8) -> PeerId {
    PeerId::new(format!("{first:02x}{}{last:02x}", "00".repeat(18))).unwrap()
}

/// `x` (id 0), full at `SPARE_FROM` links: to `a` and `b`, each of which says it also
/// holds a link to `others`, and to peers alone in buckets 2, 3, ...
fn full_node(a: PeerId, b: PeerId, others: [PeerId; 2], now: Instant) -> RelayNode {
    let x = hex_id(0, 0);
    let mut node = RelayNode::new(x.clone(), config(SPARE_FROM), now, 1).unwrap();
    let mut links = vec![(a, others[0].clone()), (b, others[1].clone())];
    for bucket in 2..SPARE_FROM as u8 {
        links.push((hex_id(0x80 >> bucket, 9), hex_id(0x80 >> bucket, 10)));
    }
    for (peer, other) in links {
        let other = &other;
        node.link_requested(peer.clone(), 1);
        node.handle_input(Input::LinkUp {
            peer: peer.clone(),
            now,
        });
        let list = vec![x.clone(), other.clone()];
        node.handle_msg(peer, RelayMsg::Neighbours(list), now);
    }
    drain(&mut node);
    node
}

#[test]
fn a_full_peer_lets_a_link_go_that_neither_side_needs_to_fill_an_empty_bucket() {
    let t0 = Instant::now();
    // `a` and `b` both sit in our farthest bucket (their ids start with bit 1), and each
    // holds another link in that bucket of its own (to a peer starting with bit 0).
    let (a, b) = (hex_id(0x80, 1), hex_id(0x80, 2));
    let mut x = full_node(a.clone(), b.clone(), [hex_id(1, 1), hex_id(1, 2)], t0);
    // `c` (bucket 1) asks to fill its bucket 1: taken, though we are full.
    let c = hex_id(0x40, 0);
    x.link_requested(c.clone(), 3);
    let out = drain(&mut x);
    assert!(
        out.contains(&RelayOutput::Connect {
            peer: c.clone(),
            initiate: true
        }),
        "{out:?}"
    );
    // Once it is up, one of the two bucket-0 links goes; no splice (`c` has links).
    x.handle_input(Input::LinkUp {
        peer: c.clone(),
        now: t0,
    });
    let out = drain(&mut x);
    let gone: Vec<&PeerId> = out
        .iter()
        .filter_map(|o| match o {
            RelayOutput::Disconnect { peer } => Some(peer),
            _ => None,
        })
        .collect();
    assert!(gone == [&a] || gone == [&b], "{out:?}");
    assert!(!out.iter().any(|o| matches!(
        o,
        RelayOutput::Send {
            msg: RelayMsg::Splice(_),
            ..
        }
    )));
    assert_eq!(x.neighbours().len(), SPARE_FROM);
    assert!(x.neighbours().contains(&c));
}

#[test]
fn a_full_peer_whose_links_are_all_needed_refuses() {
    let t0 = Instant::now();
    // `a` is our only link in bucket 0 and `b` our only one in bucket 1.
    let (a, b) = (hex_id(0x80, 1), hex_id(0x40, 1));
    let mut x = full_node(a, b, [hex_id(1, 1), hex_id(1, 2)], t0);
    let c = hex_id(0x00, 0x80);
    x.link_requested(c.clone(), 3);
    let out = drain(&mut x);
    assert!(
        !out.iter()
            .any(|o| matches!(o, RelayOutput::Connect { peer, .. } if *peer == c))
    );
    assert!(
        routed(&out)
            .iter()
            .any(|(_, f)| f.kind == RouteKind::Refuse && f.target == c),
        "{out:?}"
    );
    // A peer with no link at all is taken even so.
    x.link_requested(c.clone(), 0);
    assert!(drain(&mut x).contains(&RelayOutput::Connect {
        peer: c,
        initiate: true
    }));
}

/// A node linked to B that the application asked for a link to C; its clock's origin.
fn asking_through_a_neighbour() -> (Instant, RelayNode, PeerId, PeerId) {
    let t0 = Instant::now();
    let (a_id, b_id, c_id) = (rid(1), rid(2), rid(3));
    let mut a = RelayNode::new(a_id.clone(), config(4), t0, 1).unwrap();
    let mut b = RelayNode::new(b_id.clone(), config(4), t0, 2).unwrap();
    neighbours(&mut a, &mut b, a_id, b_id.clone(), t0);
    a.connect(c_id.clone());
    (t0, a, b_id, c_id)
}

/// A second of `a`'s time to `now`, its neighbour B heard from all along; what it said.
fn second_with(a: &mut RelayNode, b: &PeerId, now: Instant) -> Vec<RelayOutput> {
    a.handle_input(Input::Heard {
        peer: b.clone(),
        now,
    });
    a.handle_input(Input::Tick { now });
    drain(a)
}

#[test]
fn an_asked_link_that_does_not_open_is_asked_again_then_reported_failed() {
    let (t0, mut a, b_id, c_id) = asking_through_a_neighbour();
    // C never answers (its answer is lost, say): each attempt's request is a new frame,
    // asking as a peer with no link would (degree 0: a full C takes it too). Requests
    // the network's own mending makes meanwhile give their real degree.
    let mut requests = BTreeSet::new();
    let mut failed_at = None;
    let mut out = drain(&mut a);
    for second in 1..=90 {
        for o in &out {
            match o {
                RelayOutput::Send {
                    msg: RelayMsg::Route(f),
                    ..
                } if f.kind == RouteKind::Link
                    && f.target == c_id
                    && f.data.first() == Some(&0)
                    && failed_at.is_none() =>
                {
                    requests.insert(f.seq);
                }
                RelayOutput::LinkFailed { peer } => {
                    assert_eq!(*peer, c_id);
                    assert!(failed_at.is_none(), "reported twice");
                    failed_at = Some(second);
                }
                _ => {}
            }
        }
        // B stays (its heartbeats come back); the requests go on over B.
        out = second_with(&mut a, &b_id, t0 + Duration::from_secs(second));
    }
    assert_eq!(
        requests.len(),
        usize::from(CONNECT_ATTEMPTS),
        "{requests:?}"
    );
    assert!(failed_at.is_some(), "the failure is reported");
    // Asked for again, it is tried afresh.
    a.connect(c_id.clone());
    assert!(
        routed(&drain(&mut a))
            .iter()
            .any(|(_, f)| f.kind == RouteKind::Link && !requests.contains(&f.seq))
    );
}

#[test]
fn an_asked_link_that_opened_is_never_reported_failed() {
    let (t0, mut a, b_id, c_id) = asking_through_a_neighbour();
    drain(&mut a);
    let up = t0 + Duration::from_secs(1);
    a.handle_input(Input::LinkUp {
        peer: c_id.clone(),
        now: up,
    });
    drain(&mut a);
    // Its link closes later.
    let down = t0 + Duration::from_secs(30);
    a.handle_input(Input::LinkDown {
        peer: c_id.clone(),
        now: down,
    });
    // Whatever the mending asks of C meanwhile fails: nothing is reported, as the
    // application's request was met.
    let mut out = drain(&mut a);
    for second in 31..=120 {
        out.extend(second_with(&mut a, &b_id, t0 + Duration::from_secs(second)));
    }
    assert!(
        !out.iter()
            .any(|o| matches!(o, RelayOutput::LinkFailed { .. })),
        "{out:?}"
    );
}

/// B's report to A that its frame `seq` of `kind` for `target` found no way.
fn unreachable_report(b: &PeerId, a: &PeerId, report: u64, seq: u64, target: &PeerId) -> RelayMsg {
    let mut data = seq.to_be_bytes().to_vec();
    data.extend_from_slice(target.as_str().as_bytes());
    data.push(codec::kind_byte(RouteKind::Link));
    RelayMsg::Route(RouteFrame {
        kind: RouteKind::Unreachable,
        origin: b.clone(),
        target: a.clone(),
        seq: report,
        hops: 1,
        back: false,
        attempt: 0,
        visited: vec![b.clone(), a.clone()],
        path: vec![b.clone(), a.clone()],
        data,
    })
}

/// The link request among what `a` says now.
fn link_request(a: &mut RelayNode) -> Option<RouteFrame> {
    routed(&drain(a))
        .into_iter()
        .map(|(_, f)| f)
        .find(|f| f.kind == RouteKind::Link)
}

#[test]
fn an_asked_link_whose_target_is_unreachable_is_asked_again_once_the_network_can_mend() {
    let (t0, mut a, b_id, c_id) = asking_through_a_neighbour();
    let a_id = rid(1);
    let request = link_request(&mut a).expect("a request");
    // The network is split: the request finds no way, and neither does the one asked
    // over the network in place of the server (which is away), so the attempt ends at
    // once.
    let report = unreachable_report(&b_id, &a_id, 900, request.seq, &c_id);
    a.handle_msg(b_id.clone(), report, t0);
    assert!(drain(&mut a).contains(&RelayOutput::SignalLink {
        peer: c_id.clone(),
        degree: 0
    }));
    a.ask_over_network(c_id.clone(), 0);
    let over = link_request(&mut a).expect("asked over the network");
    let report = unreachable_report(&b_id, &a_id, 901, over.seq, &c_id);
    a.handle_msg(b_id.clone(), report, t0);
    drain(&mut a);
    let asked_before = |out: &[RelayOutput], seen: &[u64]| {
        routed(out)
            .iter()
            .any(|(_, f)| f.kind == RouteKind::Link && f.target == c_id && !seen.contains(&f.seq))
    };
    let seen = [request.seq, over.seq];
    // Not at once: one refresh (5 s) for the network to mend first.
    for second in 1..5 {
        let out = second_with(&mut a, &b_id, t0 + Duration::from_secs(second));
        assert!(!asked_before(&out, &seen), "asked again at {second} s");
        assert!(
            !out.iter()
                .any(|o| matches!(o, RelayOutput::LinkFailed { .. }))
        );
    }
    let out: Vec<RelayOutput> = (5..=7)
        .flat_map(|s| second_with(&mut a, &b_id, t0 + Duration::from_secs(s)))
        .collect();
    assert!(asked_before(&out, &seen), "the second attempt: {out:?}");
}

/// A node linked to `peers` (asked by each as by a peer with no link), its clock's origin.
fn linked_to(me: PeerId, max: usize, peers: &[PeerId]) -> (Instant, RelayNode) {
    let t0 = Instant::now();
    let mut node = RelayNode::new(me, config(max), t0, 1).unwrap();
    for p in peers {
        node.link_requested(p.clone(), 0);
        node.handle_input(Input::LinkUp {
            peer: p.clone(),
            now: t0,
        });
    }
    drain(&mut node);
    (t0, node)
}

fn disconnects(out: &[RelayOutput]) -> Vec<PeerId> {
    out.iter()
        .filter_map(|o| match o {
            RelayOutput::Disconnect { peer } => Some(peer.clone()),
            _ => None,
        })
        .collect()
}

fn offers_to(out: &[RelayOutput], peer: &PeerId) -> bool {
    out.contains(&RelayOutput::Connect {
        peer: peer.clone(),
        initiate: true,
    })
}

#[test]
fn a_request_from_a_peer_we_hold_a_link_to_is_taken_once_our_end_closes() {
    let (x, b) = (rid(1), rid(2));
    let (t0, mut node) = linked_to(x, 4, std::slice::from_ref(&b));
    // B asks again: its end of our link is gone (it would not ask otherwise), ours does not
    // know yet. Nothing to offer while ours stands, but the request is not forgotten.
    node.link_requested(b.clone(), 1);
    assert!(!offers_to(&drain(&mut node), &b));
    // Our end closes (silent, or its close arrives): B is offered a link at once.
    let later = t0 + Duration::from_secs(3);
    node.handle_input(Input::LinkDown {
        peer: b.clone(),
        now: later,
    });
    assert!(offers_to(&drain(&mut node), &b));
}

#[test]
fn a_request_older_than_the_link_is_dropped_once_the_peer_is_heard() {
    let (x, b) = (rid(1), rid(2));
    let (t0, mut node) = linked_to(x, 4, std::slice::from_ref(&b));
    node.link_requested(b.clone(), 1);
    drain(&mut node);
    // B's end stands (we hear it): the request crossed the link's opening.
    node.handle_input(Input::Heard {
        peer: b.clone(),
        now: t0 + Duration::from_secs(1),
    });
    // When the link closes later (B lets it go), it is not made again for that request.
    node.handle_input(Input::LinkDown {
        peer: b.clone(),
        now: t0 + Duration::from_secs(2),
    });
    assert!(!offers_to(&drain(&mut node), &b));
}

#[test]
fn data_that_cannot_arrive_asks_for_no_link() {
    let (x, b, nobody) = (rid(1), rid(2), rid(3));
    let (t0, mut node) = linked_to(x, 4, std::slice::from_ref(&b));
    let seq = node.send(nobody.clone(), b"hi".to_vec()).unwrap();
    let mut out = drain(&mut node);
    for s in 1..=8 {
        let now = t0 + Duration::from_secs(s);
        node.handle_input(Input::Heard {
            peer: b.clone(),
            now,
        });
        node.handle_input(Input::Tick { now });
        out.extend(drain(&mut node));
    }
    assert!(out.contains(&RelayOutput::Unreachable {
        target: nobody.clone(),
        seq
    }));
    // A link for every late frame made a settling network re-link without end.
    assert!(
        !out.iter()
            .any(|o| matches!(o, RelayOutput::SignalLink { .. })),
        "{out:?}"
    );
}

#[test]
fn a_peer_told_to_link_in_anothers_place_keeps_that_link_until_its_own_is_up() {
    let (e, t, y, n) = (rid(1), rid(2), rid(3), rid(4));
    let (t0, mut node) = linked_to(e, 2, &[t.clone(), y.clone()]);
    // T, full, took a newcomer N and hands it our link.
    node.handle_msg(t.clone(), RelayMsg::Splice(n.clone()), t0);
    let out = drain(&mut node);
    assert!(out.contains(&RelayOutput::SignalLink {
        peer: n.clone(),
        degree: 2
    }));
    // Until our link to N is up, the one to T stays: it may be all that joins us.
    assert!(disconnects(&out).is_empty(), "{out:?}");
    assert_eq!(node.neighbours().len(), 2);
    node.handle_input(Input::LinkUp {
        peer: n.clone(),
        now: t0,
    });
    let out = drain(&mut node);
    // Then T goes, told at once by our list without it.
    assert_eq!(disconnects(&out), vec![t.clone()]);
    assert!(out.iter().any(|o| matches!(
        o,
        RelayOutput::Send { peer, msg: RelayMsg::Neighbours(list) } if *peer == t && !list.contains(&t)
    )));
    assert_eq!(node.neighbours(), {
        let mut v = vec![y, n];
        v.sort();
        v
    });
}

#[test]
fn a_newcomer_that_fills_up_during_its_splice_is_let_go_at_once() {
    let t0 = Instant::now();
    let (a, b) = (hex_id(0x80, 1), hex_id(0x40, 1));
    let mut x = full_node(a, b, [hex_id(1, 1), hex_id(1, 2)], t0);
    let me = x.me.clone();
    // A peer with no link asks: taken though we are full, and once it is up and says it
    // has no other link, one of ours is told to link to it in our place.
    let n = hex_id(0x20, 0x77);
    x.link_requested(n.clone(), 0);
    drain(&mut x);
    x.handle_input(Input::LinkUp {
        peer: n.clone(),
        now: t0,
    });
    drain(&mut x);
    x.handle_msg(n.clone(), RelayMsg::Neighbours(vec![me.clone()]), t0);
    let spliced = drain(&mut x)
        .into_iter()
        .find_map(|o| match o {
            RelayOutput::Send {
                peer,
                msg: RelayMsg::Splice(to),
            } if to == n => Some(peer),
            _ => None,
        })
        .expect("a neighbour is told to link to the newcomer");
    assert!(!x.within_bound());
    // Meanwhile the newcomer took links from others until it is full: it would refuse
    // the spliced neighbour. Its link goes now, not when the splice times out.
    let mut list = vec![me];
    list.extend((0..SPARE_FROM as u8 - 1).map(|i| hex_id(0x21, i)));
    x.handle_msg(n.clone(), RelayMsg::Neighbours(list), t0);
    let out = drain(&mut x);
    assert_eq!(disconnects(&out), vec![n.clone()], "{out:?}");
    assert!(x.within_bound());
    assert!(x.neighbours().contains(&spliced));
}

/// `x`, full at two neighbours (`t` on the way from the asker, `e` off it), asked over the
/// network for a link by `r`'s application; `r` is full too and reached `x` through its
/// neighbour `p1`. What `x` said.
fn asked_by_a_full_asker() -> (RelayNode, Instant, [PeerId; 5], Vec<RelayOutput>) {
    let (x, t, e, r, p1) = (rid(1), rid(2), rid(3), rid(4), rid(5));
    let (t0, mut node) = linked_to(x.clone(), 2, &[t.clone(), e.clone()]);
    let way = vec![r.clone(), p1.clone(), t.clone(), x.clone()];
    let request = RouteFrame {
        kind: RouteKind::Link,
        origin: r.clone(),
        target: x.clone(),
        seq: 7,
        hops: 3,
        back: false,
        attempt: 0,
        visited: way.clone(),
        path: way,
        // Its application insists (0); it holds two links.
        data: vec![0, 2],
    };
    node.handle_msg(t.clone(), RelayMsg::Route(request), t0);
    let out = drain(&mut node);
    (node, t0, [x, t, e, r, p1], out)
}

#[test]
fn a_full_peer_takes_an_applications_link_and_tells_the_full_asker_which_link_to_let_go() {
    let (_, _, [_, _, e, r, p1], out) = asked_by_a_full_asker();
    assert!(offers_to(&out, &r), "taken, not ignored: {out:?}");
    // The acknowledgement says: let `p1` go, and it links to `e` (which we let go) in our
    // places. Two links for two, every degree as it was, everyone joined.
    let ack = routed(&out)
        .into_iter()
        .map(|(_, f)| f)
        .find(|f| f.kind == RouteKind::Ack && f.target == r)
        .expect("acknowledged");
    assert_eq!(ack.data[..8], 7u64.to_be_bytes());
    assert_eq!(codec::decode_peers(&ack.data[8..]), vec![p1, e]);
}

#[test]
fn a_full_peer_lets_its_link_off_the_way_go_only_once_it_is_replaced() {
    let (mut node, t0, [_, t, e, r, p1], _) = asked_by_a_full_asker();
    node.handle_input(Input::LinkUp {
        peer: r.clone(),
        now: t0,
    });
    let out = drain(&mut node);
    // `e` links to `p1` in our place; until it has, our link to it stays.
    assert!(out.contains(&RelayOutput::Send {
        peer: e.clone(),
        msg: RelayMsg::Splice(p1.clone())
    }));
    assert!(disconnects(&out).is_empty(), "{out:?}");
    // Nobody is told of three neighbours at two.
    assert!(
        !out.iter()
            .any(|o| matches!(o, RelayOutput::Neighbours(n) if n.len() > 2))
    );
    // `e` linked to `p1` and let us go: its list says so.
    node.handle_msg(e.clone(), RelayMsg::Neighbours(vec![p1, rid(9)]), t0);
    let out = drain(&mut node);
    assert!(disconnects(&out).contains(&e));
    let mut now = vec![r, t];
    now.sort();
    assert!(out.contains(&RelayOutput::Neighbours(now)), "{out:?}");
}

#[test]
fn a_full_asker_lets_go_the_link_its_target_names_once_it_is_replaced() {
    let (r, p1, f, x, e) = (rid(4), rid(5), rid(6), rid(1), rid(3));
    let (t0, mut node) = linked_to(r.clone(), 2, &[p1.clone(), f.clone()]);
    node.connect(x.clone());
    let request = link_request(&mut node).expect("asked over the network");
    assert_eq!(request.data, vec![0, 2], "insisting, and saying it is full");
    // The target's acknowledgement: let `p1` go, to `e`.
    let mut data = request.seq.to_be_bytes().to_vec();
    data.extend(codec::encode_peers(&[p1.clone(), e.clone()]));
    let ack = RouteFrame {
        kind: RouteKind::Ack,
        origin: x.clone(),
        target: r.clone(),
        seq: 40,
        hops: 2,
        back: false,
        attempt: 0,
        visited: vec![x.clone(), p1.clone(), r.clone()],
        path: vec![x.clone(), p1.clone(), r.clone()],
        data,
    };
    node.handle_msg(p1.clone(), RelayMsg::Route(ack), t0);
    drain(&mut node);
    node.handle_input(Input::LinkUp {
        peer: x.clone(),
        now: t0,
    });
    let out = drain(&mut node);
    assert!(out.contains(&RelayOutput::Send {
        peer: p1.clone(),
        msg: RelayMsg::Splice(e.clone())
    }));
    assert!(disconnects(&out).is_empty(), "{out:?}");
    node.handle_msg(p1.clone(), RelayMsg::Neighbours(vec![e, rid(8)]), t0);
    assert!(disconnects(&drain(&mut node)).contains(&p1));
    let mut now = vec![f, x];
    now.sort();
    assert_eq!(node.neighbours(), now);
}

#[path = "relay_sim_tests.rs"]
mod simulation;
