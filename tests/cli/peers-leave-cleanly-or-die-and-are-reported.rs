//! `leave` reaches the others as peer_leave; a killed peer is reported left within 10 s;
//! ping measures a positive round trip.

use plenum_e2e::cli as common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn leave_is_announced_and_the_leaver_exits_zero() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "leave", 3);
    let leaver = peers[2].id.clone();
    peers[2].proc.cmd(json!({"cmd":"leave"}));
    peers[2]
        .proc
        .expect(Duration::from_secs(5), "left", |v| event(v) == "left");
    assert_eq!(peers[2].proc.wait_exit(Duration::from_secs(5)), Some(0));
    for peer in &mut peers[..2] {
        peer.proc.expect(Duration::from_secs(5), "peer_leave", |v| {
            event(v) == "peer_leave" && v["peer"] == leaver.as_str()
        });
    }
}

#[test]
fn killed_peer_is_reported_left_within_ten_seconds() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "kill", 3);
    let victim = peers[0].id.clone();
    let killed_at = Instant::now();
    peers[0].proc.kill();
    for peer in &mut peers[1..] {
        peer.proc.expect(
            Duration::from_secs(10),
            "peer_leave of the killed peer",
            |v| event(v) == "peer_leave" && v["peer"] == victim.as_str(),
        );
    }
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    // The survivors still talk.
    peers[1]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":"still here"}));
    peers[2]
        .proc
        .expect(Duration::from_secs(5), "message after the kill", |v| {
            event(v) == "message" && v["data"] == "still here"
        });
}

#[test]
fn ping_returns_a_positive_round_trip() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "ping", 2);
    let target = peers[1].id.clone();
    peers[0].proc.cmd(json!({"cmd":"ping","peer":target}));
    let pong = peers[0]
        .proc
        .expect(Duration::from_secs(5), "pong", |v| event(v) == "pong");
    assert_eq!(pong["peer"], target.as_str());
    let rtt = pong["rtt_ms"].as_f64().expect("rtt_ms");
    assert!(rtt > 0.0 && rtt < 5000.0, "rtt {rtt}");
    // A ping to a peer that is not in the room is an error event, and the peer goes on.
    peers[0].proc.cmd(json!({"cmd":"ping","peer":"nobody"}));
    let err = peers[0]
        .proc
        .expect(Duration::from_secs(5), "ping error", |v| {
            event(v) == "error"
        });
    assert_eq!(err["code"], "ping_failed");
}
