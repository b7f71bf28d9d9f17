//! A broadcast tree of fifteen headless peers with at most two children each, under a
//! root started with a secret (a claim with another secret is refused; a claim with the
//! same one stands by). The tree forms (one root, parents and children agreeing, degrees
//! held, depth within one of a complete binary tree's), a broadcast from a leaf reaches
//! every other peer exactly once, a one-hop send reaches the parent alone, and the links
//! a leaf reports are its parent's. Then an inner peer is killed: its children rejoin with
//! their subtrees and the next broadcast reaches every survivor once. Then the root is
//! killed: the standby takes over, the orphans rejoin under it, and a broadcast again
//! reaches everyone alive once.
//!
//! It prints its timings as JSON (docs/benchmarks.md records them; nothing is asserted on
//! them).

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const NODES: usize = 15;
const DEGREE: usize = 2;

/// The last `tree_state` of each peer and every broadcast each received, by nonce.
#[derive(Default)]
struct Seen {
    state: BTreeMap<usize, Value>,
    got: BTreeMap<(usize, u64), u32>,
    direct: Vec<(usize, Value)>,
}

impl Tally for Seen {
    fn collect(&mut self, peers: &mut [Peer], alive: &BTreeSet<usize>) {
        for &i in alive {
            for v in peers[i].proc.drain_for(Duration::ZERO) {
                match event(&v) {
                    "tree_state" => {
                        self.state.insert(i, v);
                    }
                    "tree_message" if v["data"]["nonce"].is_u64() => {
                        let nonce = v["data"]["nonce"].as_u64().unwrap_or(0);
                        *self.got.entry((i, nonce)).or_default() += 1;
                    }
                    "tree_message" => self.direct.push((i, v)),
                    _ => {}
                }
            }
        }
    }

    fn got(&self) -> &BTreeMap<(usize, u64), u32> {
        &self.got
    }
}

impl Seen {
    /// The tree as the live peers report it, if it is one whole tree: one root, every
    /// parent naming the child back, degrees held. Returns the root and the deepest depth.
    fn tree(&self, peers: &[Peer], alive: &BTreeSet<usize>) -> Option<(usize, u64)> {
        let index: BTreeMap<&str, usize> =
            alive.iter().map(|i| (peers[*i].id.as_str(), *i)).collect();
        let mut roots = Vec::new();
        let mut deepest = 0;
        for &i in alive {
            let s = self.state.get(&i)?;
            let children = s["children"].as_array()?;
            assert!(
                children.len() <= DEGREE,
                "peer {i} has {} children",
                children.len()
            );
            for c in children {
                let c = *index.get(c.as_str()?)?;
                if self.state.get(&c)?["parent"].as_str() != Some(peers[i].id.as_str()) {
                    return None;
                }
            }
            if s["is_root"] == true {
                roots.push(i);
                continue;
            }
            let parent = *index.get(s["parent"].as_str()?)?;
            let listed = self.state.get(&parent)?["children"]
                .as_array()?
                .iter()
                .any(|c| c.as_str() == Some(peers[i].id.as_str()));
            if !listed {
                return None;
            }
            deepest = deepest.max(s["depth"].as_u64()?);
        }
        match roots.as_slice() {
            [root] => Some((*root, deepest)),
            _ => None,
        }
    }
}

/// Waits until the live peers form one tree; returns its root and depth.
fn wait_for_tree(
    peers: &mut [Peer],
    seen: &mut Seen,
    alive: &BTreeSet<usize>,
    within: Duration,
) -> (usize, u64) {
    let deadline = Instant::now() + within;
    loop {
        seen.collect(peers, alive);
        if let Some(tree) = seen.tree(peers, alive) {
            return tree;
        }
        assert!(
            Instant::now() < deadline,
            "no whole tree within {within:?}: {:#?}",
            seen.state
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A live peer without children, other than `not`.
fn leaf(seen: &Seen, alive: &BTreeSet<usize>, not: usize) -> usize {
    *alive
        .iter()
        .find(|i| {
            **i != not
                && seen.state[*i]["children"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
        })
        .expect("a leaf")
}

#[test]
fn a_tree_of_fifteen_forms_heals_and_outlives_its_root() {
    let server = serve(&["--resume-grace", "2"]);
    let tree = ["--topology", "tree", "--max-degree", "2"];
    let claim = |secret: &'static str| -> Vec<&'static str> {
        let mut args = tree.to_vec();
        args.extend(["--root", "--secret", secret]);
        args
    };
    let started = Instant::now();
    let mut peers = vec![join(&server.url, "tree", "root", &claim("s3cret"))];
    peers[0]
        .proc
        .expect(Duration::from_secs(10), "crowned", |v| {
            event(v) == "tree_state" && v["is_root"] == true
        });

    // A claim with another secret is refused, and the process ends.
    let mut wrong = spawn_join(&server.url, "tree", "usurper", &claim("guess"));
    wrong.expect(Duration::from_secs(10), "bad_root_secret", |v| {
        event(v) == "error" && v["code"] == "bad_root_secret"
    });
    assert!(
        wrong
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|c| c != 0)
    );

    for i in 1..NODES {
        peers.push(join(&server.url, "tree", &format!("p{i}"), &tree));
    }
    let standby = peers.len();
    peers.push(join(&server.url, "tree", "standby", &claim("s3cret")));
    let mut alive: BTreeSet<usize> = (0..NODES).collect();
    let mut seen = Seen::default();
    let mut nonce = 0;

    let (root, depth) = wait_for_tree(&mut peers, &mut seen, &alive, Duration::from_secs(60));
    let formed = started.elapsed();
    assert_eq!(root, 0);
    // Fifteen peers make a complete binary tree of depth 3; within one of it.
    assert!(depth <= 4, "depth {depth}");
    let from = leaf(&seen, &alive, root);
    let first = broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (from, "tree_broadcast"),
        &mut nonce,
        Duration::from_secs(20),
    );

    // One hop to the parent: it alone hears it, and knows it came from a child.
    let parent_id = seen.state[&from]["parent"]
        .as_str()
        .expect("parent")
        .to_owned();
    let parent = alive
        .iter()
        .copied()
        .find(|i| peers[*i].id == parent_id)
        .expect("parent alive");
    peers[from]
        .proc
        .cmd(json!({"cmd": "tree_send", "to": "parent", "data": {"hello": "up"}}));
    peers[from].proc.cmd(json!({"cmd": "links"}));
    let links = peers[from]
        .proc
        .expect(Duration::from_secs(5), "links", |v| event(v) == "links");
    assert_eq!(
        links["links"],
        json!([{"peer": parent_id, "state": "connected"}]),
        "a leaf's one link is its parent"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.direct.is_empty() {
        assert!(Instant::now() < deadline, "nobody heard the one-hop send");
        std::thread::sleep(Duration::from_millis(50));
        seen.collect(&mut peers, &alive);
    }
    // Links are ordered: a copy passed on beyond the parent would reach any peer before a
    // broadcast sent after it from the same leaf does.
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (from, "tree_broadcast"),
        &mut nonce,
        Duration::from_secs(20),
    );
    let direct: Vec<usize> = seen.direct.iter().map(|(i, _)| *i).collect();
    assert_eq!(direct, vec![parent], "only the parent hears a one-hop send");
    assert_eq!(seen.direct[0].1["from_parent"], false);
    assert_eq!(seen.direct[0].1["hops"], 1);

    // Kill an inner peer: its children rejoin with their subtrees.
    let inner = *alive
        .iter()
        .find(|i| {
            **i != root
                && !seen.state[*i]["children"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
        })
        .expect("an inner peer");
    let subtrees: BTreeMap<String, Value> = seen.state[&inner]["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|c| {
            let c = c.as_str()?;
            let i = alive.iter().copied().find(|i| peers[*i].id == c)?;
            Some((peers[i].id.clone(), seen.state[&i]["children"].clone()))
        })
        .collect();
    let killed = Instant::now();
    peers[inner].proc.kill();
    alive.remove(&inner);
    // Until they notice, the survivors' states name a dead parent: not a whole tree.
    wait_for_tree(&mut peers, &mut seen, &alive, Duration::from_secs(60));
    let rejoined = killed.elapsed();
    for (orphan, children) in &subtrees {
        let i = alive
            .iter()
            .copied()
            .find(|i| peers[*i].id == *orphan)
            .expect("orphan alive");
        // It keeps every child it had; a free place may since have taken another
        // orphan (its sibling can rejoin under it).
        let now = seen.state[&i]["children"].as_array().expect("children");
        for child in children.as_array().expect("children") {
            assert!(
                now.contains(child),
                "orphan {i} lost child {child} of its subtree: had {children}, has {now:?}"
            );
        }
    }
    let from = leaf(&seen, &alive, root);
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (from, "tree_broadcast"),
        &mut nonce,
        Duration::from_secs(30),
    );
    let healed = killed.elapsed();

    // Kill the root: the standby takes over and the orphans rejoin under it.
    let killed = Instant::now();
    peers[root].proc.kill();
    alive.remove(&root);
    alive.insert(standby);
    peers[standby]
        .proc
        .expect(Duration::from_secs(30), "standby crowned", |v| {
            event(v) == "tree_state" && v["is_root"] == true
        });
    seen.state.insert(
        standby,
        json!({"is_root": true, "children": [], "parent": null}),
    );
    let (new_root, _) = wait_for_tree(&mut peers, &mut seen, &alive, Duration::from_secs(60));
    assert_eq!(new_root, standby);
    let takeover = killed.elapsed();
    let from = leaf(&seen, &alive, standby);
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (from, "tree_broadcast"),
        &mut nonce,
        Duration::from_secs(30),
    );

    let ms = |d: Duration| d.as_millis() as u64;
    println!(
        "{}",
        json!({
            "peers": NODES,
            "max_degree": DEGREE,
            "depth": depth,
            "formed_ms": ms(formed),
            "complete_broadcast_ms": ms(first),
            "inner_kill_to_rejoined_ms": ms(rejoined),
            "inner_kill_to_complete_broadcast_ms": ms(healed),
            "root_kill_to_tree_ms": ms(takeover),
            "broadcasts_sent": nonce,
        })
    );
}
