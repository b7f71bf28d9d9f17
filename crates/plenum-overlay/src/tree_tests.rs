// Tests take one real instant as the origin of their virtual clock, then only add to it.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use plenum_proto::overlay::TopologySpec;

use super::*;

fn id(s: &str) -> PeerId {
    PeerId::new(s).unwrap()
}

fn config(max_degree: usize) -> TreeConfig {
    TreeConfig::builder()
        .max_degree(max_degree)
        .build()
        .unwrap()
}

fn drain(node: &mut TreeNode) -> Vec<TreeOutput> {
    let mut out = Vec::new();
    loop {
        match node.poll_output() {
            TreeOutput::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

#[test]
fn the_root_takes_a_joiner_and_frees_the_slot_of_one_that_never_links() {
    let t0 = Instant::now();
    let mut root = TreeNode::root(id("r"), config(1), t0, 1);
    drain(&mut root);
    let join = |who: &str| TreeMsg::Join {
        requester: id(who),
        subtree: 1,
        lost: None,
    };
    root.handle_msg(id("a"), join("a"), t0);
    let out = drain(&mut root);
    assert!(out.contains(&TreeOutput::Signal {
        to: Addressee::Peer(id("a")),
        msg: TreeMsg::Accept { depth: 1 }
    }));
    assert!(out.contains(&TreeOutput::Connect {
        peer: id("a"),
        initiate: true
    }));
    // Its one slot is held: "b" waits (no linked child to hand it to).
    root.handle_msg(id("b"), join("b"), t0);
    assert!(
        drain(&mut root)
            .iter()
            .all(|o| !matches!(o, TreeOutput::Signal { .. }))
    );
    // "a" never links: after the request timeout its slot goes to "b".
    let later = t0 + Duration::from_secs(31);
    root.handle_input(Input::Tick { now: later });
    let out = drain(&mut root);
    assert!(out.contains(&TreeOutput::Disconnect { peer: id("a") }));
    assert!(out.contains(&TreeOutput::Signal {
        to: Addressee::Peer(id("b")),
        msg: TreeMsg::Accept { depth: 1 }
    }));
}

#[test]
fn a_full_node_hands_a_join_to_its_smallest_subtree() {
    let t0 = Instant::now();
    let mut root = TreeNode::root(id("r"), config(2), t0, 1);
    for (child, size) in [("a", 5), ("b", 2)] {
        root.handle_msg(
            id(child),
            TreeMsg::Join {
                requester: id(child),
                subtree: size,
                lost: None,
            },
            t0,
        );
        root.handle_input(Input::LinkUp {
            peer: id(child),
            now: t0,
        });
    }
    drain(&mut root);
    assert_eq!(root.subtree(), 8);
    root.handle_msg(
        id("c"),
        TreeMsg::Join {
            requester: id("c"),
            subtree: 1,
            lost: None,
        },
        t0,
    );
    assert_eq!(
        drain(&mut root),
        vec![TreeOutput::Send {
            peer: id("b"),
            msg: TreeMsg::Join {
                requester: id("c"),
                subtree: 1,
                lost: None,
            }
        }]
    );
    // b takes it and says so: the root's state counts it (what it handed is not told
    // until then).
    root.handle_msg(id("b"), TreeMsg::Subtree { size: 3 }, t0);
    let out = drain(&mut root);
    assert!(
        out.iter()
            .any(|o| matches!(o, TreeOutput::State { subtree: 9, .. })),
        "{out:?}"
    );
    // Said again, nothing new.
    root.handle_msg(id("b"), TreeMsg::Subtree { size: 3 }, t0);
    assert!(drain(&mut root).is_empty());
}

#[test]
fn a_join_is_not_handed_to_the_parent_its_requester_lost() {
    let t0 = Instant::now();
    let mut root = TreeNode::root(id("r"), config(2), t0, 1);
    for (child, size) in [("a", 5), ("b", 2)] {
        let join = TreeMsg::Join {
            requester: id(child),
            subtree: size,
            lost: None,
        };
        root.handle_msg(id(child), join, t0);
        root.handle_input(Input::LinkUp {
            peer: id(child),
            now: t0,
        });
    }
    drain(&mut root);
    // "b" has the smaller subtree, but its child "c" says it lost "b": "b" may be dead
    // before the root notices.
    let join = TreeMsg::Join {
        requester: id("c"),
        subtree: 1,
        lost: Some(id("b")),
    };
    root.handle_msg(id("c"), join.clone(), t0);
    assert_eq!(
        drain(&mut root),
        vec![TreeOutput::Send {
            peer: id("a"),
            msg: join
        }]
    );
}

#[test]
fn an_orphan_names_its_lost_parent_and_asks_the_root_again_when_unanswered() {
    let t0 = Instant::now();
    let mut node = TreeNode::join(id("n"), config(2), t0, 1);
    drain(&mut node);
    node.handle_msg(id("p"), TreeMsg::Accept { depth: 2 }, t0);
    node.handle_input(Input::LinkUp {
        peer: id("p"),
        now: t0,
    });
    node.handle_msg(
        id("p"),
        TreeMsg::Welcome {
            depth: 2,
            grandparent: Some(id("g")),
            root: Some(id("r")),
            root_name: Some(DisplayName::new("Rita").unwrap()),
        },
        t0,
    );
    let out = drain(&mut node);
    assert_eq!(
        node.root_id(),
        Some(id("r")),
        "the parent's welcome names the root"
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            TreeOutput::State { root_name: Some(name), .. } if name.as_str() == "Rita"
        )),
        "and says its name: {out:?}"
    );
    node.handle_input(Input::LinkDown {
        peer: id("p"),
        now: t0,
    });
    let asked = TreeMsg::Join {
        requester: id("n"),
        subtree: 1,
        lost: Some(id("p")),
    };
    assert!(drain(&mut node).contains(&TreeOutput::Signal {
        to: Addressee::Peer(id("g")),
        msg: asked.clone()
    }));
    // Nobody answers (the request was handed to a peer that died): the root is asked.
    let later = t0 + Duration::from_secs(6);
    node.handle_input(Input::Tick { now: later });
    assert!(drain(&mut node).contains(&TreeOutput::Signal {
        to: Addressee::Root,
        msg: asked
    }));
}

/// A parent-to-be that does not link (it refused our credentials, or died on the way) is
/// asked of the root again after `retry_after`, not at once: a refused node would bounce
/// through the tree without rest. The node that took us as a candidate tells its parent
/// its subtree again when it drops us, so a join counted as handed to it is counted no
/// longer.
#[test]
fn a_parent_that_never_links_is_asked_again_after_a_while_and_a_dropped_candidate_is_told() {
    let t0 = Instant::now();
    let mut node = TreeNode::join(id("n"), config(2), t0, 1);
    drain(&mut node);
    node.handle_msg(id("p"), TreeMsg::Accept { depth: 2 }, t0);
    drain(&mut node);
    node.handle_input(Input::LinkDown {
        peer: id("p"),
        now: t0,
    });
    let asks = |out: &[TreeOutput]| {
        out.iter().any(|o| {
            matches!(
                o,
                TreeOutput::Signal {
                    to: Addressee::Root,
                    msg: TreeMsg::Join { .. }
                }
            )
        })
    };
    assert!(!asks(&drain(&mut node)), "asked again at once");
    node.handle_input(Input::Tick {
        now: t0 + Duration::from_secs(6),
    });
    assert!(asks(&drain(&mut node)), "not asked again");

    // The other side: a node under a parent takes a candidate that never links.
    let mut mid = TreeNode::join(id("m"), config(2), t0, 2);
    mid.handle_msg(id("q"), TreeMsg::Accept { depth: 1 }, t0);
    mid.handle_input(Input::LinkUp {
        peer: id("q"),
        now: t0,
    });
    mid.handle_msg(
        id("q"),
        TreeMsg::Join {
            requester: id("c"),
            subtree: 1,
            lost: None,
        },
        t0,
    );
    drain(&mut mid);
    mid.handle_input(Input::PeerGone {
        peer: id("c"),
        now: t0,
    });
    assert!(
        drain(&mut mid).contains(&TreeOutput::Send {
            peer: id("q"),
            msg: TreeMsg::Subtree { size: 1 }
        }),
        "the parent is not told"
    );
}

#[test]
fn a_second_offer_is_declined_and_a_stray_broadcast_ignored() {
    let t0 = Instant::now();
    let mut node = TreeNode::join(id("n"), config(2), t0, 1);
    let out = drain(&mut node);
    assert!(out.contains(&TreeOutput::Signal {
        to: Addressee::Root,
        msg: TreeMsg::Join {
            requester: id("n"),
            subtree: 1,
            lost: None,
        }
    }));
    node.handle_msg(id("p"), TreeMsg::Accept { depth: 3 }, t0);
    assert!(drain(&mut node).contains(&TreeOutput::Connect {
        peer: id("p"),
        initiate: false
    }));
    node.handle_msg(id("q"), TreeMsg::Accept { depth: 2 }, t0);
    assert_eq!(
        drain(&mut node),
        vec![TreeOutput::Signal {
            to: Addressee::Peer(id("q")),
            msg: TreeMsg::Decline
        }]
    );
    node.handle_input(Input::LinkUp {
        peer: id("p"),
        now: t0,
    });
    let out = drain(&mut node);
    assert!(out.contains(&TreeOutput::ParentConnect(id("p"))));
    assert_eq!(node.depth(), Some(3));
    // Data from a peer that is neither parent nor child would bypass the tree.
    let data = TreeMsg::Data {
        origin: id("o"),
        seq: 1,
        hops: 0,
        data: vec![1],
    };
    node.handle_msg(id("stranger"), data.clone(), t0);
    assert!(drain(&mut node).is_empty());
    node.handle_msg(id("p"), data.clone(), t0);
    assert!(drain(&mut node).iter().any(|o| matches!(
        o,
        TreeOutput::Message {
            from_parent: true,
            hops: 1,
            ..
        }
    )));
    node.handle_msg(id("p"), data, t0);
    assert!(drain(&mut node).is_empty(), "a copy is dropped");
}

/// What the network hands a node.
enum Delivery {
    Msg(PeerId, TreeMsg),
    Input(Input),
}

/// Tree nodes wired together with instant links and an instant server.
struct Net {
    now: Instant,
    nodes: BTreeMap<PeerId, TreeNode>,
    root: PeerId,
    /// Root claimants standing by, next first: not in the tree until crowned.
    standby: Vec<PeerId>,
    dead: BTreeSet<PeerId>,
    wants: BTreeSet<(PeerId, PeerId)>,
    up: BTreeSet<(PeerId, PeerId)>,
    queue: VecDeque<(PeerId, Delivery)>,
    got: BTreeMap<(PeerId, Vec<u8>), u32>,
    /// Hands each node was told of: (the node, whose hand, its name, raised).
    hands: Vec<(PeerId, PeerId, String, bool)>,
    /// The stage each node was last told of.
    stages: BTreeMap<PeerId, Option<PeerId>>,
    /// The name each node was told with the stage, last.
    stage_names: BTreeMap<PeerId, Option<DisplayName>>,
}

impl Net {
    fn new(n: usize, max_degree: usize) -> Self {
        Self::with(n, config(max_degree))
    }

    /// `n` nodes (the root first) and two standbys, all with `config`.
    fn with(n: usize, config: TreeConfig) -> Self {
        let now = Instant::now();
        let root = id("n000");
        let mut net = Self {
            now,
            nodes: BTreeMap::new(),
            root: root.clone(),
            standby: Vec::new(),
            dead: BTreeSet::new(),
            wants: BTreeSet::new(),
            up: BTreeSet::new(),
            queue: VecDeque::new(),
            got: BTreeMap::new(),
            hands: Vec::new(),
            stages: BTreeMap::new(),
            stage_names: BTreeMap::new(),
        };
        net.nodes
            .insert(root.clone(), TreeNode::root(root, config.clone(), now, 0));
        for s in ["s0", "s1"] {
            net.standby.push(id(s));
            net.nodes
                .insert(id(s), TreeNode::standby(id(s), config.clone(), now, 7));
        }
        for i in 1..n {
            let me = id(&format!("n{i:03}"));
            net.nodes.insert(
                me.clone(),
                TreeNode::join(me, config.clone(), now, i as u64),
            );
            net.run();
        }
        net
    }

    fn key(a: &PeerId, b: &PeerId) -> (PeerId, PeerId) {
        (a.min(b).clone(), a.max(b).clone())
    }

    fn run(&mut self) {
        for _ in 0..100_000 {
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
            while let Some((to, input)) = self.queue.pop_front() {
                any = true;
                if !self.dead.contains(&to)
                    && let Some(node) = self.nodes.get_mut(&to)
                {
                    match input {
                        Delivery::Msg(from, msg) => node.handle_msg(from, msg, self.now),
                        Delivery::Input(input) => node.handle_input(input),
                    }
                }
            }
            if !any {
                return;
            }
        }
        panic!("the tree never settled");
    }

    fn route(&mut self, me: &PeerId, o: TreeOutput) {
        let now = self.now;
        match o {
            TreeOutput::Connect { peer, .. } => {
                self.wants.insert((me.clone(), peer.clone()));
                if self.wants.contains(&(peer.clone(), me.clone())) && !self.dead.contains(&peer) {
                    self.up.insert(Self::key(me, &peer));
                    self.queue.push_back((
                        me.clone(),
                        Delivery::Input(Input::LinkUp {
                            peer: peer.clone(),
                            now,
                        }),
                    ));
                    self.queue.push_back((
                        peer,
                        Delivery::Input(Input::LinkUp {
                            peer: me.clone(),
                            now,
                        }),
                    ));
                }
            }
            TreeOutput::Disconnect { peer } => {
                self.wants.remove(&(me.clone(), peer.clone()));
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
            TreeOutput::Send { peer, msg } if self.up.contains(&Self::key(me, &peer)) => {
                self.queue.push_back((peer, Delivery::Msg(me.clone(), msg)));
            }
            TreeOutput::Signal { to, msg } => {
                let to = match to {
                    Addressee::Root => self.root.clone(),
                    Addressee::Peer(p) => p,
                };
                self.queue.push_back((to, Delivery::Msg(me.clone(), msg)));
            }
            TreeOutput::Message { data, .. } => {
                *self.got.entry((me.clone(), data)).or_default() += 1;
            }
            TreeOutput::Hand { peer, name, raised } => {
                self.hands
                    .push((me.clone(), peer, name.as_str().to_owned(), raised));
            }
            TreeOutput::Stage { speaker, name } => {
                self.stages.insert(me.clone(), speaker);
                self.stage_names.insert(me.clone(), name);
            }
            _ => {}
        }
    }

    fn kill(&mut self, who: &PeerId) {
        self.dead.insert(who.clone());
        let now = self.now;
        // The server crowns the next standby before the orphans' requests reach it.
        if *who == self.root && !self.standby.is_empty() {
            self.root = self.standby.remove(0);
            self.nodes.get_mut(&self.root).unwrap().promote();
        }
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

    /// A node that joins now.
    fn add(&mut self, name: &str) -> PeerId {
        let me = id(name);
        let node = TreeNode::join(me.clone(), config(2), self.now, 99);
        self.nodes.insert(me.clone(), node);
        self.run();
        me
    }

    /// The stage as each live node holds it.
    fn stage_everywhere(&self) -> BTreeSet<Option<PeerId>> {
        self.alive()
            .into_iter()
            .map(|p| self.nodes[p].stage().cloned())
            .collect()
    }

    fn alive(&self) -> Vec<&PeerId> {
        self.nodes
            .keys()
            .filter(|p| !self.dead.contains(*p) && !self.standby.contains(p))
            .collect()
    }

    /// One root, every other live node attached, parents and children agreeing, no cycle,
    /// degrees held; returns the deepest depth.
    fn check(&self, max_degree: usize) -> u32 {
        let mut deepest = 0;
        for me in self.alive() {
            let node = &self.nodes[me];
            assert!(node.attached(), "{} is not in the tree", me.as_str());
            assert!(node.children().len() <= max_degree);
            for child in node.children() {
                assert_eq!(
                    self.nodes[&child].parent(),
                    Some(me),
                    "{} disowns its parent",
                    child.as_str()
                );
            }
            // Walk up: the root within as many steps as there are nodes.
            let mut at = me.clone();
            let mut steps = 0;
            while let Some(p) = self.nodes[&at].parent() {
                at = p.clone();
                steps += 1;
                assert!(steps <= self.nodes.len(), "a cycle through {}", me.as_str());
            }
            assert_eq!(at, self.root);
            assert_eq!(
                node.depth(),
                Some(steps as u32),
                "{} has a wrong depth",
                me.as_str()
            );
            deepest = deepest.max(steps as u32);
        }
        deepest
    }

    fn broadcast(&mut self, from: &PeerId, tag: u8) -> usize {
        let now = self.now;
        self.nodes
            .get_mut(from)
            .unwrap()
            .handle_input(Input::Broadcast {
                data: vec![tag],
                now,
            });
        self.run();
        let mut reached = 0;
        for me in self.alive() {
            let n = self.got.get(&(me.clone(), vec![tag])).copied().unwrap_or(0);
            assert!(n <= 1, "{} got broadcast {tag} {n} times", me.as_str());
            reached += n as usize;
        }
        reached
    }
}

/// A live node without children.
fn leaf(net: &Net) -> PeerId {
    net.alive()
        .into_iter()
        .find(|p| net.nodes[*p].children().is_empty())
        .cloned()
        .expect("a leaf")
}

#[test]
fn fifteen_nodes_of_degree_two_form_a_balanced_tree_and_a_leaf_reaches_everyone() {
    let mut net = Net::new(15, 2);
    let depth = net.check(2);
    // Fifteen nodes in a binary tree: depth 3 at best; within one of it.
    assert!(depth <= 4, "depth {depth}");
    let leaf = leaf(&net);
    assert_eq!(net.broadcast(&leaf, 1), 14);
}

#[test]
fn a_dead_inner_node_is_healed_with_its_subtrees_and_broadcasts_reach_everyone() {
    let mut net = Net::new(31, 2);
    net.check(2);
    let inner = net
        .alive()
        .into_iter()
        .find(|p| **p != net.root && !net.nodes[*p].children().is_empty())
        .unwrap()
        .clone();
    let orphans = net.nodes[&inner].children();
    let grandchildren: Vec<Vec<PeerId>> = orphans.iter().map(|o| net.nodes[o].children()).collect();
    net.kill(&inner);
    net.check(2);
    // The orphans rejoined keeping their own children.
    for (orphan, kept) in orphans.iter().zip(grandchildren) {
        assert_eq!(
            net.nodes[orphan].children(),
            kept,
            "{} lost its subtree",
            orphan.as_str()
        );
    }
    let leaf = leaf(&net);
    assert_eq!(net.broadcast(&leaf, 2), 29);
}

#[test]
fn a_dead_root_is_replaced_by_its_standby_and_the_tree_reforms_under_it() {
    let mut net = Net::new(20, 3);
    net.check(3);
    let old = net.root.clone();
    let orphans = net.nodes[&old].children();
    let kept: Vec<Vec<PeerId>> = orphans.iter().map(|o| net.nodes[o].children()).collect();
    net.kill(&old);
    assert_eq!(net.root, id("s0"));
    assert!(net.nodes[&net.root].is_root());
    net.check(3);
    for (orphan, kept) in orphans.iter().zip(kept) {
        assert_eq!(
            net.nodes[orphan].children(),
            kept,
            "{} lost its subtree",
            orphan.as_str()
        );
    }
    let leaf = leaf(&net);
    assert_eq!(net.broadcast(&leaf, 3), net.alive().len() - 1);
}

#[test]
fn a_presentations_root_takes_more_children_than_the_rest_and_is_a_star_until_full() {
    let config = TreeConfig::builder()
        .max_degree(2)
        .root_degree(Some(5))
        .build()
        .unwrap();
    // The presenter and five viewers: a star.
    let mut net = Net::with(6, config.clone());
    assert_eq!(net.check(5), 1, "every viewer linked to the root");
    assert_eq!(net.nodes[&net.root].children().len(), 5);
    // Four more go below the root's children, two at most under each.
    for i in 0..4 {
        let me = id(&format!("m{i:03}"));
        let node = TreeNode::join(me.clone(), config.clone(), net.now, 50 + i);
        net.nodes.insert(me, node);
        net.run();
    }
    assert_eq!(net.check(5), 2);
    assert_eq!(net.nodes[&net.root].children().len(), 5);
    for p in net.alive() {
        if *p != net.root {
            assert!(
                net.nodes[p].children().len() <= 2,
                "{} took too many",
                p.as_str()
            );
        }
    }
    // A standby crowned in the root's place takes as many as the root did.
    let old = net.root.clone();
    net.kill(&old);
    assert!(net.nodes[&net.root].is_root());
    net.check(5);
    assert_eq!(net.nodes[&net.root].children().len(), 5);
    assert_eq!(net.broadcast(&leaf(&net), 4), net.alive().len() - 1);
}

#[test]
fn a_standby_is_silent_until_promoted() {
    let t0 = Instant::now();
    let mut s = TreeNode::standby(id("s"), config(2), t0, 1);
    assert!(drain(&mut s).is_empty());
    assert!(!s.attached());
    s.promote();
    let out = drain(&mut s);
    assert!(out.contains(&TreeOutput::State {
        parent: None,
        children: vec![],
        depth: Some(0),
        is_root: true,
        root: Some(id("s")),
        root_name: None,
        subtree: 1,
    }));
    s.handle_msg(
        id("a"),
        TreeMsg::Join {
            requester: id("a"),
            subtree: 1,
            lost: None,
        },
        t0,
    );
    assert!(drain(&mut s).contains(&TreeOutput::Signal {
        to: Addressee::Peer(id("a")),
        msg: TreeMsg::Accept { depth: 1 }
    }));
}

#[test]
fn a_direct_message_goes_one_hop_and_a_goodbye_heals_at_once() {
    let mut net = Net::new(7, 2);
    net.check(2);
    let leaf = leaf(&net);
    let parent = net.nodes[&leaf].parent().cloned().unwrap();
    let node = net.nodes.get_mut(&leaf).unwrap();
    assert_eq!(
        node.send(TreeTarget::Peer(id("n999")), vec![1]),
        Err(TreeSendError::NotNeighbour(id("n999")))
    );
    node.send(TreeTarget::Parent, vec![42]).unwrap();
    net.run();
    let reached: Vec<&PeerId> = net
        .got
        .keys()
        .filter(|(_, d)| *d == vec![42])
        .map(|(p, _)| p)
        .collect();
    assert_eq!(reached, vec![&parent], "only the parent hears it");
    let root = net.root.clone();
    assert_eq!(
        net.nodes
            .get_mut(&root)
            .unwrap()
            .send(TreeTarget::Parent, vec![1]),
        Err(TreeSendError::NoParent)
    );
    // The parent says goodbye: its children rejoin before any link times out.
    let orphans = net.nodes[&parent].children();
    let now = net.now;
    for o in &orphans {
        net.nodes.get_mut(o).unwrap().handle_input(Input::PeerGone {
            peer: parent.clone(),
            now,
        });
    }
    net.kill(&parent);
    net.check(2);
    assert!(
        orphans
            .iter()
            .all(|o| net.nodes[o].parent() != Some(&parent))
    );
}

#[test]
fn options_are_validated() {
    assert!(TreeConfig::builder().max_degree(0).build().is_err());
    assert!(
        TreeConfig::builder()
            .request_timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(TreeConfig::builder().max_degree(10).build().is_ok());
    assert!(TreeConfig::builder().root_degree(Some(0)).build().is_err());
    assert!(
        TreeConfig::builder()
            .root_degree(Some(1001))
            .build()
            .is_err()
    );
    let presentation = TreeConfig::from_spec(&TopologySpec::presentation(8, 3))
        .unwrap()
        .unwrap();
    assert_eq!(
        (presentation.degree(true), presentation.degree(false)),
        (8, 3)
    );
    let tree = TreeConfig::from_spec(&TopologySpec::tree(3))
        .unwrap()
        .unwrap();
    assert_eq!((tree.degree(true), tree.degree(false)), (3, 3));
}

mod trees {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Trees of any size and degree: one root, no cycle, degrees held, depth within one
        /// of a complete tree's; after inner nodes or the root die (a standby takes over)
        /// the rest heal into one tree again, and every broadcast reaches every live node
        /// once.
        #[test]
        fn trees_form_balanced_and_heal(n in 2usize..120, degree in 1usize..6, kills in proptest::collection::vec(any::<u16>(), 0..4)) {
            let mut net = Net::new(n, degree);
            let depth = net.check(degree);
            prop_assert!(depth <= super::complete_depth(n, degree) + 1, "depth {} for {} nodes of degree {}", depth, n, degree);
            let mut tag = 0u8;
            for k in kills {
                let others: Vec<PeerId> = net.alive().into_iter().filter(|p| **p != net.root).cloned().collect();
                if others.is_empty() {
                    break;
                }
                // One kill in five takes the root, while a standby is left.
                let victim = if k % 5 == 0 && !net.standby.is_empty() {
                    net.root.clone()
                } else {
                    others[usize::from(k) % others.len()].clone()
                };
                net.kill(&victim);
                net.check(degree);
                tag += 1;
                let from = net.alive()[usize::from(k) % net.alive().len()].clone();
                let reached = net.broadcast(&from, tag);
                prop_assert_eq!(reached, net.alive().len() - 1);
            }
        }
    }
}

#[test]
fn a_raised_hand_reaches_the_root_alone_and_only_the_roots_stage_reaches_everyone() {
    let mut net = Net::new(15, 2);
    net.check(2);
    let root = net.root.clone();
    // The deepest node raises its hand: the root alone is told, through every level.
    let far = net
        .alive()
        .into_iter()
        .max_by_key(|p| net.nodes[*p].depth())
        .unwrap()
        .clone();
    assert!(net.nodes[&far].depth() >= Some(3));
    let name = DisplayName::new("Far Away").unwrap();
    net.nodes
        .get_mut(&far)
        .unwrap()
        .raise_hand(true, name.clone())
        .unwrap();
    net.run();
    assert_eq!(
        net.hands,
        vec![(root.clone(), far.clone(), "Far Away".to_owned(), true)]
    );
    // The root has nobody to raise its hand to.
    assert_eq!(
        net.nodes
            .get_mut(&root)
            .unwrap()
            .raise_hand(true, name.clone()),
        Err(TreeSendError::NoParent)
    );
    // Only the root puts anyone on stage.
    assert_eq!(
        net.nodes
            .get_mut(&far)
            .unwrap()
            .set_stage(Some(far.clone())),
        Err(TreeSendError::NotRoot)
    );
    assert!(net.stages.is_empty());
    net.nodes
        .get_mut(&root)
        .unwrap()
        .set_stage(Some(far.clone()))
        .unwrap();
    net.run();
    assert_eq!(net.stage_everywhere(), BTreeSet::from([Some(far.clone())]));
    let told: BTreeSet<&PeerId> = net.stages.keys().collect();
    assert_eq!(
        told,
        net.alive().into_iter().collect(),
        "every node is told"
    );
    // With the name its hand came with: most of the tree has no link to it.
    assert!(
        net.stage_names.values().all(|n| n.as_ref() == Some(&name)),
        "{:?}",
        net.stage_names
    );
    // A child cannot put anyone on stage, nor send a hand down or sideways.
    let parent = net.nodes[&far].parent().cloned().unwrap();
    let now = net.now;
    net.nodes.get_mut(&parent).unwrap().handle_msg(
        far.clone(),
        TreeMsg::Stage {
            speaker: None,
            name: None,
        },
        now,
    );
    net.run();
    assert_eq!(net.stage_everywhere(), BTreeSet::from([Some(far.clone())]));
    let child = net.nodes[&root].children()[0].clone();
    net.nodes.get_mut(&child).unwrap().handle_msg(
        root.clone(),
        TreeMsg::Hand {
            peer: root.clone(),
            name,
            raised: true,
        },
        now,
    );
    net.run();
    assert_eq!(net.hands.len(), 1, "a hand from the parent goes nowhere");
    // A node that joins later is told the stage by its parent.
    let late = net.add("n900");
    net.check(2);
    assert_eq!(net.nodes[&late].stage(), Some(&far));
    // The stage comes down again: everyone hears it.
    net.nodes.get_mut(&root).unwrap().set_stage(None).unwrap();
    net.run();
    assert_eq!(net.stage_everywhere(), BTreeSet::from([None]));
}

#[test]
fn a_new_root_starts_with_nobody_on_stage_and_the_tree_follows_it() {
    let mut net = Net::new(12, 3);
    let root = net.root.clone();
    let speaker = leaf(&net);
    net.nodes
        .get_mut(&root)
        .unwrap()
        .set_stage(Some(speaker.clone()))
        .unwrap();
    net.run();
    assert_eq!(net.stage_everywhere(), BTreeSet::from([Some(speaker)]));
    net.kill(&root);
    net.check(3);
    assert_eq!(net.stage_everywhere(), BTreeSet::from([None]));
}
