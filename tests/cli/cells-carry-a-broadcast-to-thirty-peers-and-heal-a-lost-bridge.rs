//! Thirty headless peers in a cellular room of cells of at most six: they form cells
//! (every peer in one, none larger than six, bridges between them), a `mesh_send` from any
//! of them reaches the 29 others exactly once, and after a bridge peer is killed the
//! server re-plans the cells and the next broadcast reaches all 28 survivors once.
//!
//! It prints its timings as JSON (docs/benchmarks.md records them; nothing is asserted on
//! them): from the first join to the first broadcast that reached everyone, how long each
//! complete broadcast took to reach its last peer (as seen by polling every few ms), and
//! from the kill to the new plans and to the next complete broadcast.

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PEERS: usize = 30;

/// The last `mesh_state` of each peer and every `mesh_message` each received, by nonce.
#[derive(Default)]
struct Seen {
    state: BTreeMap<usize, Value>,
    got: BTreeMap<(usize, u64), u32>,
}

impl Tally for Seen {
    fn collect(&mut self, peers: &mut [Peer], alive: &BTreeSet<usize>) {
        for &i in alive {
            // Without waiting: what the peer printed so far.
            for v in peers[i].proc.drain_for(Duration::ZERO) {
                match event(&v) {
                    "mesh_state" => {
                        self.state.insert(i, v);
                    }
                    "mesh_message" => {
                        let nonce = v["data"]["nonce"].as_u64().expect("nonce");
                        *self.got.entry((i, nonce)).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
    }

    fn got(&self) -> &BTreeMap<(usize, u64), u32> {
        &self.got
    }
}

/// Checks the cells the peers report: each in one cell, cells of at most six, every
/// member count matching what its cell mates say, several cells linked by bridges.
fn check_cells(seen: &Seen, alive: &BTreeSet<usize>) {
    let mut by_cell: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut epochs = BTreeSet::new();
    for &i in alive {
        let state = seen
            .state
            .get(&i)
            .unwrap_or_else(|| panic!("peer {i} reported no mesh_state"));
        by_cell
            .entry(state["cell_id"].as_u64().expect("cell_id"))
            .or_default()
            .push(i);
        epochs.insert(state["epoch"].as_u64().expect("epoch"));
    }
    assert_eq!(epochs.len(), 1, "every peer on one layout: {epochs:?}");
    assert!(
        by_cell.len() >= 5,
        "thirty peers in cells of six make five cells or more: {by_cell:?}"
    );
    for (cell, members) in &by_cell {
        assert!(
            members.len() <= 6,
            "cell {cell} holds {} peers",
            members.len()
        );
        for i in members {
            assert_eq!(
                seen.state[i]["cell_size"].as_u64(),
                Some(members.len() as u64),
                "peer {i} disagrees about the size of cell {cell}"
            );
        }
    }
    let bridges: usize = alive
        .iter()
        .map(|i| seen.state[i]["bridges"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        bridges >= by_cell.len(),
        "cells are linked: {bridges} bridge ends"
    );
}

#[test]
fn cells_carry_a_broadcast_to_thirty_peers_and_heal_a_lost_bridge() {
    // A crashed peer is given up after 2 s instead of 15.
    let server = serve(&["--resume-grace", "2"]);
    let extra = ["--topology", "cells", "--cell-size", "6"];
    let started = Instant::now();
    let mut peers: Vec<Peer> = (0..PEERS)
        .map(|i| join(&server.url, "cells", &format!("p{i}"), &extra))
        .collect();
    let mut alive: BTreeSet<usize> = (0..PEERS).collect();
    let mut seen = Seen::default();
    let mut nonce = 0;
    let mut took = Vec::new();

    took.push(broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (0, "mesh_send"),
        &mut nonce,
        Duration::from_secs(90),
    ));
    let formed = started.elapsed();
    check_cells(&seen, &alive);
    for from in [13, 29] {
        took.push(broadcast_until_all(
            &mut peers,
            &mut seen,
            &alive,
            (from, "mesh_send"),
            &mut nonce,
            Duration::from_secs(10),
        ));
    }

    // Kill a bridge that is not the next sender.
    let victim = *alive
        .iter()
        .find(|i| **i != 0 && seen.state[*i]["is_bridge"] == true)
        .expect("a bridge peer");
    let partners: Vec<String> = seen.state[&victim]["bridges"]
        .as_array()
        .expect("bridges")
        .iter()
        .map(|b| b["peer"].as_str().unwrap_or("").to_owned())
        .collect();
    let victim_id = peers[victim].id.clone();
    let killed = Instant::now();
    peers[victim].proc.kill();
    alive.remove(&victim);

    // The server gives the victim up and re-plans: no survivor keeps it as a bridge.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        seen.collect(&mut peers, &alive);
        let stale = alive.iter().any(|i| {
            seen.state[i]["bridges"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["peer"] == victim_id.as_str()))
        });
        if !stale {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a plan still names the killed bridge {victim_id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!partners.is_empty());
    let replanned = killed.elapsed();
    broadcast_until_all(
        &mut peers,
        &mut seen,
        &alive,
        (0, "mesh_send"),
        &mut nonce,
        Duration::from_secs(30),
    );
    let healed = killed.elapsed();
    check_cells(&seen, &alive);
    let ms = |d: Duration| d.as_millis() as u64;
    println!(
        "{}",
        json!({
            "peers": PEERS,
            "cells": seen.state[&0]["cells"],
            "formed_ms": ms(formed),
            "complete_broadcast_ms": took.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "kill_to_replanned_ms": ms(replanned),
            "kill_to_complete_broadcast_ms": ms(healed),
            "broadcasts_sent": nonce,
        })
    );
}
