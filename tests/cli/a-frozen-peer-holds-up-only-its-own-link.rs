//! One peer of three is frozen (SIGSTOP: a hung machine whose network is still up) while
//! another sends a burst far larger than what a link buffers to everyone. The third peer
//! gets every message and keeps answering pings; the frozen peer's link is closed (stalled
//! or silent) and it is reported gone; resumed, it joins again.

use plenum_e2e::cli as common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// 5,000 messages of 2 KiB: 10 MB, more than a data channel's send buffer (4 MiB) and a
/// link's outbox (1 MiB before a sender waits) together.
const BURST: u64 = 5_000;

#[test]
fn a_frozen_peer_holds_up_only_its_own_link() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "frozen", 3);
    let (sender_id, frozen_id, third_id) = (
        peers[0].id.clone(),
        peers[1].id.clone(),
        peers[2].id.clone(),
    );
    peers[1].proc.signal("STOP");

    // Written from a thread of its own: a sender that blocked would block the writes, and
    // the deadlines below must still end the test.
    let mut stdin = peers[0].proc.take_stdin();
    let burst = std::thread::spawn(move || {
        use std::io::Write;
        let filler = "x".repeat(2048);
        for n in 0..BURST {
            let line = json!({"cmd":"send","channel":"bulk","data":{"n": n, "fill": filler}});
            if writeln!(stdin, "{line}").is_err() {
                return;
            }
        }
        let _ = stdin.flush();
    });

    // The third peer gets the whole burst, in order, while it pings the sender.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = 0u64;
    let (mut pings, mut pongs) = (0u32, 0u32);
    let mut next_ping = Instant::now();
    while got < BURST {
        assert!(
            Instant::now() < deadline,
            "the third peer got {got} of {BURST} messages"
        );
        if Instant::now() >= next_ping {
            peers[2].proc.cmd(json!({"cmd":"ping","peer": sender_id}));
            pings += 1;
            next_ping = Instant::now() + Duration::from_millis(250);
        }
        for v in peers[2].proc.drain_for(Duration::from_millis(50)) {
            match event(&v) {
                "message" if v["channel"] == "bulk" => {
                    assert_eq!(v["data"]["n"], got, "out of order or lost");
                    got += 1;
                }
                "pong" => pongs += 1,
                "peer_leave" => assert_ne!(
                    v["peer"], sender_id,
                    "the third peer lost the sender while a peer was frozen"
                ),
                "error" => assert_ne!(v["code"], "ping_failed", "{v}"),
                _ => {}
            }
        }
    }
    burst.join().expect("the burst's writer");
    // Every ping sent meanwhile is answered.
    let answered = Instant::now() + Duration::from_secs(10);
    while pongs < pings {
        assert!(
            Instant::now() < answered,
            "{pongs} of {pings} pings answered"
        );
        for v in peers[2].proc.drain_for(Duration::from_millis(100)) {
            if event(&v) == "pong" {
                pongs += 1;
            }
        }
    }

    // The sender gave the frozen peer up, and said why.
    peers[0].proc.expect(
        Duration::from_secs(30),
        "peer_leave of the frozen peer",
        |v| event(v) == "peer_leave" && v["peer"] == frozen_id.as_str(),
    );
    let said = errors(&peers[0].proc.seen);
    assert!(
        said.iter()
            .any(|e| e.starts_with("link_stalled") || e.starts_with("link_failed")),
        "no link_stalled or link_failed for the frozen peer: {said:?}"
    );
    // What the sender could not queue for the gone peer (its queue holds 256) is reported
    // with counts, not once per message.
    let dropped = |v: &serde_json::Value| -> u64 {
        v["message"]
            .as_str()
            .and_then(|m| m.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    peers[0]
        .proc
        .expect(Duration::from_secs(10), "a queue_overflow of many", |v| {
            event(v) == "error" && v["code"] == "queue_overflow" && dropped(v) > 1
        });

    // Resumed, it is linked again with both.
    peers[1].proc.signal("CONT");
    let both: BTreeSet<String> = [sender_id.clone(), third_id.clone()].into();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        peers[1].proc.cmd(json!({"cmd":"peers"}));
        let list = peers[1]
            .proc
            .expect(Duration::from_secs(30), "peers", |v| event(v) == "peers");
        let connected: BTreeSet<String> = list["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["state"] == "connected")
            .filter_map(|p| p["peer"].as_str().map(str::to_owned))
            .collect();
        if connected == both {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed peer is linked with {connected:?} only"
        );
        peers[1].proc.drain_for(Duration::from_millis(500));
    }
    peers[0]
        .proc
        .expect(Duration::from_secs(30), "the resumed peer's join", |v| {
            event(v) == "peer_join" && v["peer"] == frozen_id.as_str()
        });
}
