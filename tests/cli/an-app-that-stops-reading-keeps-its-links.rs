//! An application that stops reading its events for 10 s (here: nobody reads the peer's
//! stdout, so its event loop blocks on a full pipe) while a peer sends it far more than the
//! event queue holds. Its links stay up and answer pings throughout; when it reads again it
//! gets what waited, `events_lagged` where events were dropped, then what comes next.

use plenum_e2e::cli as common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// More messages than the event queue (4,096) and a pipe's worth of printed lines hold.
const BURST: u64 = 8_000;

#[test]
fn an_app_that_stops_reading_keeps_its_links_and_hears_what_it_missed() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "slowapp", 2);
    let (sender_id, reader_id) = (peers[0].id.clone(), peers[1].id.clone());
    peers[1].proc.pause_reading();
    let stalled_at = Instant::now();
    for n in 0..BURST {
        peers[0]
            .proc
            .cmd(json!({"cmd":"send","channel":"chat","data":{"n": n}, "to": reader_id}));
    }
    // Ten seconds of pings, each answered by the reader's engine while its app reads
    // nothing: the pong of the first comes after the whole burst on the ordered link.
    let mut answered = 0;
    while stalled_at.elapsed() < Duration::from_secs(10) || answered == 0 {
        peers[0].proc.cmd(json!({"cmd":"ping","peer": reader_id}));
        let v = peers[0].proc.expect(Duration::from_secs(30), "pong", |v| {
            matches!(event(v), "pong" | "error" | "peer_leave")
        });
        assert_eq!(event(&v), "pong", "the sender lost the reader: {v}");
        answered += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    // It reads again: what waited, the mark where events were dropped, then what comes
    // after it.
    peers[1].proc.resume_reading();
    peers[1]
        .proc
        .expect(Duration::from_secs(60), "events_lagged", |v| {
            event(v) == "error" && v["code"] == "events_lagged"
        });
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":"after", "to": reader_id}));
    peers[1]
        .proc
        .expect(Duration::from_secs(30), "the message sent after", |v| {
            event(v) == "message" && v["data"] == "after"
        });
    let seen = &peers[1].proc.seen;
    let lagged = seen
        .iter()
        .position(|v| event(v) == "error" && v["code"] == "events_lagged")
        .unwrap_or_else(|| panic!("no events_lagged among {} lines", seen.len()));
    let numbers: Vec<u64> = seen
        .iter()
        .filter(|v| event(v) == "message")
        .filter_map(|v| v["data"]["n"].as_u64())
        .collect();
    // What arrived before the mark is the burst's beginning, in order, and some of it was
    // dropped at the mark.
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert!((numbers.len() as u64) < BURST, "nothing was dropped");
    assert!(
        seen[..lagged]
            .iter()
            .filter(|v| event(v) == "message")
            .count()
            > 1000,
        "the mark came before the queue was full"
    );
    assert!(
        !seen.iter().any(|v| event(v) == "peer_leave"),
        "the reader lost its link"
    );
    assert!(
        !peers[0]
            .proc
            .seen
            .iter()
            .any(|v| event(v) == "peer_leave" && v["peer"] == reader_id.as_str()),
        "the sender lost the reader"
    );
    // And it talks as before.
    peers[1]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":"back", "to": sender_id}));
    peers[0].proc.expect(Duration::from_secs(10), "back", |v| {
        event(v) == "message" && v["data"] == "back"
    });
}
