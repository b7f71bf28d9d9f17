//! A host room of five headless peers: the first is the host, the others link to it alone
//! (four links in all). Every peer receives every other's join data; a message from a
//! peer that is not the host reaches every other peer exactly once. Then the host is
//! killed with SIGKILL: the four survivors agree on one new host, relink to it, and the
//! messages each sent while there was no host arrive at every other survivor exactly once.
//!
//! It prints the failover time (SIGKILL to the last survivor relinked) as JSON; nothing is
//! asserted on it (docs/benchmarks.md has the figures of `plenum bench host`).

use plenum_e2e::cli as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const PEERS: usize = 5;
const WAIT: Duration = Duration::from_secs(30);

/// Room messages each peer received, by (sender, nonce), counted.
type Got = BTreeMap<usize, BTreeMap<(String, u64), u32>>;

fn collect(peers: &mut [Peer], alive: &[usize], window: Duration, got: &mut Got) {
    for &i in alive {
        for v in peers[i].proc.drain_for(window / alive.len() as u32) {
            if event(&v) == "message" {
                let from = v["from"].as_str().unwrap_or("").to_owned();
                let nonce = v["data"]["nonce"].as_u64().unwrap_or(0);
                *got.entry(i).or_default().entry((from, nonce)).or_default() += 1;
            }
        }
    }
}

/// Waits until every live peer but the sender got (sender, nonce) once or more.
fn wait_delivered(peers: &mut [Peer], alive: &[usize], sent: &[(usize, u64)], got: &mut Got) {
    let deadline = Instant::now() + WAIT;
    loop {
        let missing: Vec<(usize, usize, u64)> = alive
            .iter()
            .flat_map(|&r| sent.iter().map(move |&(s, n)| (r, s, n)))
            .filter(|&(r, s, _)| r != s)
            .filter(|&(r, s, n)| {
                got.get(&r)
                    .and_then(|m| m.get(&(peers[s].id.clone(), n)))
                    .is_none()
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered (receiver, sender, nonce): {missing:?}"
        );
        collect(peers, alive, Duration::from_millis(200), got);
    }
}

/// Every delivery counted once: no copies anywhere.
fn assert_once(got: &Got) {
    for (receiver, counts) in got {
        for ((from, nonce), n) in counts {
            assert_eq!(*n, 1, "peer {receiver} got {nonce} from {from} {n} times");
        }
    }
}

fn send(peer: &mut Peer, nonce: u64) {
    peer.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": {"nonce": nonce}}));
}

#[test]
fn a_host_room_elects_one_host_and_outlives_it() {
    let server = serve(&[]);
    let mut peers: Vec<Peer> = Vec::new();
    for i in 0..PEERS {
        let init = json!({"name": format!("p{i}"), "i": i}).to_string();
        let extra = ["--topology", "host", "--init-data", init.as_str()];
        peers.push(join(&server.url, "hosted", &format!("p{i}"), &extra));
    }
    let ids: Vec<String> = peers.iter().map(|p| p.id.clone()).collect();

    // The first peer hosts; everyone is linked to it, and has everyone's join data.
    for (i, peer) in peers.iter_mut().enumerate() {
        let host = peer.proc.expect(WAIT, "host", |v| event(v) == "host");
        assert_eq!(host["peer"], ids[0].as_str(), "peer {i}'s host");
        assert_eq!(host["is_self"], i == 0);
        // Join data comes before and after the host event (the host's first, then each
        // peer's as it arrives).
        let inits_seen = |seen: &[serde_json::Value]| {
            seen.iter()
                .filter(|v| event(v) == "init_data")
                .map(|v| {
                    (
                        v["peer"].as_str().unwrap_or("").to_owned(),
                        v["data"].clone(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let deadline = Instant::now() + WAIT;
        while inits_seen(&peer.proc.seen).len() < PEERS - 1 && Instant::now() < deadline {
            peer.proc.drain_for(Duration::from_millis(100));
        }
        let inits = inits_seen(&peer.proc.seen);
        assert_eq!(inits.len(), PEERS - 1, "peer {i}'s join data: {inits:?}");
        for (j, id) in ids.iter().enumerate().filter(|(j, _)| *j != i) {
            assert_eq!(inits[id], json!({"name": format!("p{j}"), "i": j}));
        }
    }
    // N - 1 links: the host holds four, every other peer one, to the host.
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.proc.cmd(json!({"cmd": "links"}));
        let links = peer.proc.expect(WAIT, "links", |v| event(v) == "links");
        let linked: BTreeSet<&str> = links["links"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["peer"].as_str()).collect())
            .unwrap_or_default();
        let want: BTreeSet<&str> = if i == 0 {
            ids[1..].iter().map(String::as_str).collect()
        } else {
            [ids[0].as_str()].into()
        };
        assert_eq!(linked, want, "peer {i}'s links");
    }

    // A message from a peer that is not the host reaches every other peer once.
    let mut got = Got::new();
    let everyone: Vec<usize> = (0..PEERS).collect();
    send(&mut peers[2], 1);
    wait_delivered(&mut peers, &everyone, &[(2, 1)], &mut got);

    // The host dies. The survivors send at once, while there is no host.
    let killed = Instant::now();
    peers[0].proc.kill();
    let alive: Vec<usize> = (1..PEERS).collect();
    let during: Vec<(usize, u64)> = alive.iter().map(|&i| (i, 100 + i as u64)).collect();
    for &(i, nonce) in &during {
        send(&mut peers[i], nonce);
    }
    // One new host, the same for all four, and every survivor relinked to it.
    let mut hosts = BTreeMap::new();
    let mut relinked_ms = Vec::new();
    for &i in &alive {
        let v = peers[i].proc.expect(WAIT, "a new host", |v| {
            event(v) == "host" && v["peer"] != ids[0].as_str()
        });
        relinked_ms.push(killed.elapsed().as_millis() as u64);
        hosts.insert(i, v["peer"].as_str().unwrap_or("").to_owned());
        // Messages that came with the relink were read on the way: count them too.
        for seen in peers[i].proc.drain_for(Duration::ZERO) {
            assert_ne!(event(&seen), "host", "a second host at peer {i}: {seen}");
        }
    }
    let chosen: BTreeSet<&String> = hosts.values().collect();
    assert_eq!(chosen.len(), 1, "the survivors disagree: {hosts:?}");
    let new_host = chosen.into_iter().next().cloned().unwrap_or_default();
    assert!(
        ids[1..].contains(&new_host),
        "host {new_host} is not a survivor"
    );
    // Messages lines read while waiting for `host` were consumed: recount from history.
    let mut got = Got::new();
    for &i in &alive {
        for v in &peers[i].proc.seen {
            if event(v) == "message" {
                let from = v["from"].as_str().unwrap_or("").to_owned();
                let nonce = v["data"]["nonce"].as_u64().unwrap_or(0);
                *got.entry(i).or_default().entry((from, nonce)).or_default() += 1;
            }
        }
    }
    wait_delivered(&mut peers, &alive, &during, &mut got);
    // And the room goes on through the new host.
    let after: Vec<(usize, u64)> = vec![(alive[alive.len() - 1], 200)];
    send(&mut peers[after[0].0], after[0].1);
    wait_delivered(&mut peers, &alive, &after, &mut got);
    // A broadcast (`mesh_send`) goes through the host as well, on channel `mesh`.
    let broadcast = vec![(alive[0], 300)];
    peers[alive[0]]
        .proc
        .cmd(json!({"cmd": "mesh_send", "data": {"nonce": 300}}));
    wait_delivered(&mut peers, &alive, &broadcast, &mut got);
    for &i in &alive[1..] {
        assert!(
            peers[i].proc.seen.iter().any(|v| event(v) == "message"
                && v["channel"] == "mesh"
                && v["data"]["nonce"] == 300),
            "peer {i} got the broadcast on channel mesh"
        );
    }
    // Copies would come late: give them time, then count.
    collect(&mut peers, &alive, Duration::from_secs(2), &mut got);
    assert_once(&got);
    for &i in &alive {
        let before = got[&i].get(&(ids[2].clone(), 1)).copied().unwrap_or(0);
        assert!(i == 2 || before == 1, "peer {i} lost the first message");
    }
    relinked_ms.sort_unstable();
    println!(
        "{}",
        json!({
            "peers": PEERS,
            "failover_ms_last_relinked": relinked_ms.last(),
            "failover_ms_first_relinked": relinked_ms.first(),
            "new_host_is_lowest_id": Some(&new_host) == ids[1..].iter().min(),
        })
    );
}
