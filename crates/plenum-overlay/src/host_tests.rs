// Tests take one real instant as their origin.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;

fn peer(s: &str) -> PeerId {
    PeerId::new(s).unwrap()
}

fn chat() -> ChannelName {
    ChannelName::new("chat").unwrap()
}

/// Host nodes, the server's seat, and links that open as soon as both ends want them;
/// messages arrive at once, in order.
struct Net {
    now: Instant,
    nodes: BTreeMap<PeerId, HostNode>,
    seat: HostSeat,
    wants: BTreeSet<(PeerId, PeerId)>,
    up: BTreeSet<(PeerId, PeerId)>,
    inbox: VecDeque<(PeerId, PeerId, HostMsg)>,
    /// (receiver, origin, data) in the order delivered.
    delivered: Vec<(PeerId, PeerId, Vec<u8>)>,
    hosts: Vec<(PeerId, PeerId)>,
    inits: BTreeSet<(PeerId, PeerId)>,
    overflows: usize,
    claims: usize,
    /// Messages to these peers are lost on the way (a host that dies with them queued).
    cut: BTreeSet<PeerId>,
}

impl Net {
    fn new() -> Self {
        Self {
            now: Instant::now(),
            nodes: BTreeMap::new(),
            seat: HostSeat::new(),
            wants: BTreeSet::new(),
            up: BTreeSet::new(),
            inbox: VecDeque::new(),
            delivered: Vec::new(),
            hosts: Vec::new(),
            inits: BTreeSet::new(),
            overflows: 0,
            claims: 0,
            cut: BTreeSet::new(),
        }
    }

    fn join(&mut self, name: &str) {
        self.join_with(name, HostConfig::default());
    }

    fn join_with(&mut self, name: &str, config: HostConfig) {
        let me = peer(name);
        let init = format!("{{\"name\":\"{name}\"}}").into_bytes();
        let mut node = HostNode::new(me.clone(), config, self.now, 1, 1, Some(init));
        for (p, n) in self.nodes.iter_mut() {
            node.handle_input(Input::PeerAppeared {
                peer: p.clone(),
                origin: Appearance::Roster,
                now: self.now,
            });
            n.handle_input(Input::PeerAppeared {
                peer: me.clone(),
                origin: Appearance::Joined,
                now: self.now,
            });
        }
        let first = self.seat.joined(&me);
        let (holder, epoch) = self.seat.holder();
        node.on_seat(holder.cloned(), epoch, self.now);
        assert_eq!(first.is_some(), node.is_host());
        self.nodes.insert(me, node);
        self.pump();
    }

    /// The peer dies: the server sees its connection end (the seat is vacated at once);
    /// `leave` also reports it gone from the room.
    fn kill(&mut self, name: &str, leave: bool) {
        let dead = peer(name);
        self.nodes.remove(&dead);
        for link in self.up.clone() {
            if link.0 == dead || link.1 == dead {
                self.up.remove(&link);
                let other = if link.0 == dead { &link.1 } else { &link.0 };
                if let Some(n) = self.nodes.get_mut(other) {
                    n.handle_input(Input::LinkDown {
                        peer: dead.clone(),
                        now: self.now,
                    });
                }
            }
        }
        self.wants.retain(|(a, b)| *a != dead && *b != dead);
        if self.seat.vacate(&dead) {
            let epoch = self.seat.holder().1;
            for n in self.nodes.values_mut() {
                n.on_seat(None, epoch, self.now);
            }
        }
        if leave {
            for n in self.nodes.values_mut() {
                n.handle_input(Input::PeerGone {
                    peer: dead.clone(),
                    now: self.now,
                });
            }
        }
        self.pump();
    }

    fn post(&mut self, name: &str, text: &str) {
        let now = self.now;
        self.nodes
            .get_mut(&peer(name))
            .unwrap()
            .post(chat(), text.as_bytes().to_vec(), now);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(100);
            let now = self.now;
            for n in self.nodes.values_mut() {
                n.handle_input(Input::Tick { now });
            }
            self.pump();
        }
    }

    fn pump(&mut self) {
        loop {
            let mut busy = false;
            let ids: Vec<PeerId> = self.nodes.keys().cloned().collect();
            for id in &ids {
                while let Some(node) = self.nodes.get_mut(id) {
                    match node.poll_output() {
                        HostOutput::Timeout(_) => break,
                        out => {
                            busy = true;
                            self.carry(id, out);
                        }
                    }
                }
            }
            while let Some((to, from, msg)) = self.inbox.pop_front() {
                busy = true;
                if self.up.contains(&link(&to, &from))
                    && !self.cut.contains(&to)
                    && let Some(n) = self.nodes.get_mut(&to)
                {
                    n.handle_msg(from, msg, self.now);
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn carry(&mut self, id: &PeerId, out: HostOutput) {
        let now = self.now;
        match out {
            HostOutput::Connect { peer: p, .. } => {
                self.wants.insert((id.clone(), p.clone()));
                if self.wants.contains(&(p.clone(), id.clone())) && self.up.insert(link(id, &p)) {
                    for (a, b) in [(id, &p), (&p, id)] {
                        if let Some(n) = self.nodes.get_mut(a) {
                            n.handle_input(Input::LinkUp {
                                peer: b.clone(),
                                now,
                            });
                        }
                    }
                }
            }
            HostOutput::Disconnect { peer: p, .. } => {
                self.wants.remove(&(id.clone(), p.clone()));
                if self.up.remove(&link(id, &p))
                    && let Some(n) = self.nodes.get_mut(&p)
                {
                    n.handle_input(Input::LinkDown {
                        peer: id.clone(),
                        now,
                    });
                }
            }
            HostOutput::Send { peer: p, msg } => {
                // Through the wire codec, as in the engine.
                let env = msg.to_envelope();
                let msg = HostMsg::from_envelope(&env).unwrap();
                self.inbox.push_back((p, id.clone(), msg));
            }
            HostOutput::Claim { epoch } => {
                self.claims += 1;
                match self.seat.claim(id, epoch) {
                    Claim::Granted(e) => {
                        for n in self.nodes.values_mut() {
                            n.on_seat(Some(id.clone()), e, now);
                        }
                    }
                    Claim::Refused { holder, epoch } => {
                        if let Some(n) = self.nodes.get_mut(id) {
                            n.on_seat(holder, epoch, now);
                        }
                    }
                }
            }
            HostOutput::Deliver { origin, data, .. } => {
                self.delivered.push((id.clone(), origin, data));
            }
            HostOutput::Host { peer: p, .. } => self.hosts.push((id.clone(), p)),
            HostOutput::InitData { peer: p, data } => {
                assert_eq!(
                    data,
                    format!("{{\"name\":\"{}\"}}", p.as_str()).into_bytes()
                );
                self.inits.insert((id.clone(), p));
            }
            HostOutput::Overflow { dropped } => self.overflows += dropped,
            HostOutput::Heartbeat { .. } | HostOutput::Synced(_) | HostOutput::Timeout(_) => {}
        }
    }

    fn got(&self, receiver: &str, text: &str) -> usize {
        self.delivered
            .iter()
            .filter(|(r, _, d)| r.as_str() == receiver && d == text.as_bytes())
            .count()
    }

    fn hosts_now(&self) -> Vec<PeerId> {
        self.nodes
            .values()
            .filter(|n| n.is_host())
            .map(|n| n.me.clone())
            .collect()
    }
}

fn link(a: &PeerId, b: &PeerId) -> (PeerId, PeerId) {
    if a < b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

#[test]
fn the_first_peer_hosts_and_the_others_link_to_it_alone() {
    let mut net = Net::new();
    for p in ["a", "b", "c", "d"] {
        net.join(p);
    }
    assert_eq!(net.hosts_now(), vec![peer("a")]);
    // N - 1 links, all at the host.
    assert_eq!(net.up.len(), 3);
    assert!(
        net.up
            .iter()
            .all(|(x, y)| x.as_str() == "a" || y.as_str() == "a")
    );
    for p in ["b", "c", "d"] {
        let n = &net.nodes[&peer(p)];
        assert!(n.synced(), "{p} in step");
        assert_eq!(n.neighbours(), vec![peer("a")]);
    }
    // Every peer has every other's join data, the late ones included.
    for r in ["a", "b", "c", "d"] {
        for p in ["a", "b", "c", "d"] {
            assert_eq!(
                net.inits.contains(&(peer(r), peer(p))),
                r != p,
                "{r} has {p}"
            );
        }
    }
}

#[test]
fn a_message_reaches_every_other_peer_once() {
    let mut net = Net::new();
    for p in ["a", "b", "c"] {
        net.join(p);
    }
    net.post("b", "from b");
    net.post("a", "from a");
    assert_eq!((net.got("a", "from b"), net.got("c", "from b")), (1, 1));
    assert_eq!(net.got("b", "from b"), 0);
    assert_eq!((net.got("b", "from a"), net.got("c", "from a")), (1, 1));
    assert_eq!(net.nodes[&peer("b")].waiting(), 0, "acknowledged");
}

#[test]
fn one_new_host_is_chosen_and_failover_loses_and_repeats_nothing() {
    let mut net = Net::new();
    for p in ["a", "b", "c", "d"] {
        net.join(p);
    }
    net.post("c", "before");
    net.kill("a", false);
    assert!(net.hosts_now().is_empty());
    for p in ["b", "c", "d"] {
        assert!(!net.nodes[&peer(p)].synced());
    }
    // Sent while there is no host: queued.
    net.post("c", "during c");
    net.post("d", "during d");
    assert_eq!(net.got("b", "during c"), 0);
    // "b" ranks first: it claims at once.
    net.advance(Duration::from_millis(500));
    assert_eq!(net.hosts_now(), vec![peer("b")]);
    assert_eq!(net.claims, 1, "one claim, no contest");
    for (r, texts) in [
        ("b", &["during c", "during d", "before"][..]),
        ("c", &["during d"]),
        ("d", &["during c", "before"]),
    ] {
        for t in texts {
            assert_eq!(net.got(r, t), 1, "{r} got {t:?} once");
        }
    }
    // And afterwards, through the new host.
    net.post("d", "after");
    assert_eq!((net.got("b", "after"), net.got("c", "after")), (1, 1));
    assert!(
        net.up
            .iter()
            .all(|(x, y)| x.as_str() == "b" || y.as_str() == "b")
    );
}

#[test]
fn what_a_dying_host_acknowledged_but_did_not_pass_on_arrives_once() {
    for lost_at in [&["d"][..], &["b", "d"]] {
        let mut net = Net::new();
        for p in ["a", "b", "c", "d"] {
            net.join(p);
        }
        net.cut = lost_at.iter().map(|p| peer(p)).collect();
        net.post("c", "last words");
        assert_eq!(
            net.nodes[&peer("c")].waiting(),
            0,
            "the host acknowledged it"
        );
        assert_eq!(net.got("d", "last words"), 0);
        net.cut.clear();
        net.kill("a", false);
        net.advance(Duration::from_secs(2));
        assert_eq!(net.hosts_now(), vec![peer("b")]);
        for r in ["b", "d"] {
            assert_eq!(net.got(r, "last words"), 1, "{r}, lost at {lost_at:?}");
        }
    }
}

#[test]
fn a_candidate_that_is_gone_too_is_followed_by_the_next() {
    let mut net = Net::new();
    for p in ["a", "b", "c", "d"] {
        net.join(p);
    }
    // "b" dies unnoticed by the others' rosters; the host goes right after.
    net.nodes.remove(&peer("b"));
    net.kill("a", false);
    net.advance(Duration::from_millis(500));
    assert!(net.hosts_now().is_empty(), "c waits its turn");
    net.advance(Duration::from_millis(1000));
    assert_eq!(net.hosts_now(), vec![peer("c")]);
    net.post("d", "hello");
    assert_eq!(net.got("c", "hello"), 1);
}

#[test]
fn simultaneous_claims_seat_one_host() {
    let mut net = Net::new();
    for p in ["a", "b", "c", "d"] {
        net.join(p);
    }
    net.kill("a", false);
    // Everyone claims at once (as peers whose rosters differ might).
    let epoch = net.seat.holder().1;
    let now = net.now;
    for id in ["d", "c", "b"] {
        let n = net.nodes.get_mut(&peer(id)).unwrap();
        n.outputs.push_back(HostOutput::Claim { epoch });
        n.handle_input(Input::Tick { now });
    }
    net.pump();
    assert_eq!(net.hosts_now().len(), 1);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.hosts_now().len(), 1);
    let host = net.hosts_now()[0].clone();
    for n in net.nodes.values() {
        assert_eq!(n.host().0, Some(&host));
        assert!(n.synced());
    }
}

#[test]
fn posts_queue_while_alone_and_overflow_drops_the_oldest() {
    let mut net = Net::new();
    let small = HostConfig::builder().queue_max(2).build().unwrap();
    net.join("a");
    net.join_with("b", small);
    net.kill("a", false);
    for t in ["1", "2", "3"] {
        net.post("b", t);
    }
    assert_eq!(net.overflows, 1);
    assert_eq!(net.nodes[&peer("b")].waiting(), 2);
    net.join("c");
    net.advance(Duration::from_secs(2));
    // "b" is the only candidate: it hosts, "c" links to it; what "b" posted while alone
    // went to the room as it was (nobody), and "c" joined fresh.
    assert_eq!(net.hosts_now(), vec![peer("b")]);
    assert!(net.nodes[&peer("c")].synced());
    assert_eq!(net.got("c", "1"), 0);
}

#[test]
fn join_data_for_another_peer_from_a_non_host_is_refused() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    let now = net.now;
    let b = net.nodes.get_mut(&peer("b")).unwrap();
    b.handle_msg(
        peer("x"),
        HostMsg::Init {
            peer: peer("a"),
            data: b"{}".to_vec(),
        },
        now,
    );
    assert_eq!(b.refused(), 1);
    // A post to a peer that is not the host is not relayed.
    b.handle_msg(
        peer("x"),
        HostMsg::Post {
            seq: 1,
            channel: chat(),
            data: b"x".to_vec(),
        },
        now,
    );
    assert_eq!(b.refused(), 2);
    net.pump();
    assert!(net.delivered.is_empty());
}

#[test]
fn an_old_seat_word_is_ignored() {
    let now = Instant::now();
    let mut n = HostNode::new(peer("b"), HostConfig::default(), now, 1, 1, None);
    n.on_seat(Some(peer("c")), 3, now);
    n.on_seat(Some(peer("a")), 2, now);
    assert_eq!(n.host(), (Some(&peer("c")), 3));
    n.on_seat(None, 3, now);
    assert_eq!(n.host(), (None, 3));
}

#[test]
fn what_is_kept_for_a_failover_is_bounded_in_bytes_and_count() {
    let now = Instant::now();
    let small = HostConfig::builder().queue_max(4).build().unwrap();
    let mut host = HostNode::new(peer("a"), small.clone(), now, 1, 1, None);
    host.on_seat(Some(peer("a")), 1, now);
    // Thirty 1 MiB messages: the replay log keeps 16 MiB of them, the newest.
    for _ in 0..30 {
        host.post(chat(), vec![0; 1 << 20], now);
    }
    assert_eq!(host.log.len(), 16);
    assert_eq!(host.log_bytes, 16 << 20);
    // A peer's acknowledged posts: at most twice the queue, even within `keep`.
    let mut b = HostNode::new(peer("b"), small, now, 1, 1, None);
    b.handle_input(Input::PeerAppeared {
        peer: peer("a"),
        origin: Appearance::Roster,
        now,
    });
    b.on_seat(Some(peer("a")), 1, now);
    b.handle_input(Input::LinkUp {
        peer: peer("a"),
        now,
    });
    b.handle_msg(peer("a"), HostMsg::Synced { epoch: 1 }, now);
    assert!(b.synced());
    for i in 0..20 {
        b.post(chat(), vec![i], now);
        b.handle_msg(peer("a"), HostMsg::Ack { seq: i as u64 + 1 }, now);
    }
    assert_eq!(b.waiting(), 0);
    assert!(b.posts.len() <= 8, "{} kept", b.posts.len());
}
