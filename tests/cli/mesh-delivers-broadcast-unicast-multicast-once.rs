//! A real `plenum serve` and 2, 3 and 6 real peers: everyone sees every join, and
//! broadcast, unicast and multicast each deliver exactly once to exactly the addressed peers.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn check_room(n: usize) {
    let server = serve(&[]);
    let room = format!("mesh-{n}");
    let mut peers = full_room(&server.url, &room, n);
    let ids: Vec<String> = peers.iter().map(|p| p.id.clone()).collect();

    // Broadcast from p0, unicast p0 -> last, multicast p0 -> {p1, last}.
    let last = n - 1;
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":{"k":"all"}}));
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"dm","data":{"k":"one"},"to":ids[last]}));
    let group = vec![ids[1].clone(), ids[last].clone()];
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"group","data":{"k":"many"},"to":group}));

    for (i, peer) in peers.iter_mut().enumerate() {
        let want_all = usize::from(i != 0);
        let want_one = usize::from(i == last);
        let want_many = usize::from(i == 1 || i == last);
        // As many messages as are addressed to it, however long they take; then a while
        // for any that should not come.
        let mut got = Vec::new();
        while got.len() < want_all + want_one + want_many {
            let v = peer.proc.expect(
                Duration::from_secs(20),
                "the messages addressed to it",
                |v| event(v) == "message",
            );
            got.push((
                v["channel"].as_str().unwrap_or("").to_owned(),
                v["from"].as_str().unwrap_or("").to_owned(),
                v["data"].clone(),
            ));
        }
        got.extend(messages(peer, Duration::from_secs(2)));
        let count = |k: &str| {
            got.iter()
                .filter(|(_, from, d)| from == &ids[0] && d["k"] == k)
                .count()
        };
        assert_eq!(
            count("all"),
            want_all,
            "peer {i} broadcast count; got {got:?}"
        );
        assert_eq!(
            count("one"),
            want_one,
            "peer {i} unicast count; got {got:?}"
        );
        assert_eq!(
            count("many"),
            want_many,
            "peer {i} multicast count; got {got:?}"
        );
        assert_eq!(
            got.len(),
            want_all + want_one + want_many,
            "peer {i} got extra messages: {got:?}"
        );
        if i != 0 {
            let ch = got
                .iter()
                .find(|(_, _, d)| d["k"] == "all")
                .map(|(c, _, _)| c.clone());
            assert_eq!(ch.as_deref(), Some("chat"));
        }
    }

    // Every peer reports every other as connected.
    for peer in &mut peers {
        peer.proc.cmd(json!({"cmd":"peers"}));
        let v = peer
            .proc
            .expect(Duration::from_secs(5), "peers", |v| event(v) == "peers");
        let list = v["peers"].as_array().expect("peers array");
        assert_eq!(list.len(), n - 1, "{v}");
        assert!(list.iter().all(|p| p["state"] == "connected"), "{v}");
    }
}

#[test]
fn two_peers() {
    check_room(2);
}

#[test]
fn three_peers() {
    check_room(3);
}

#[test]
fn six_peers() {
    check_room(6);
}
