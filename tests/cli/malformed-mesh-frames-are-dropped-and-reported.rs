//! A peer that writes broken or forged mesh frames on its link: a truncated frame, an origin
//! that is not a peer id, an unknown envelope kind, a cells broadcast of an unknown kind
//! and a channel message to everyone with a bad channel name are each dropped and reported
//! as `malformed_message`; a forged frame sent twice reaches the application once. The
//! room carries on: a real broadcast still reaches everyone once.

use plenum_e2e::cli as common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A mesh frame's payload: ttl 8, the origin's cell, `origin`, then `data`.
fn mesh_payload(origin: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = vec![8, 255, 0, 0, 0, 0, 1, 0, 0, 0, 0, origin.len() as u8];
    out.extend_from_slice(origin);
    out.extend_from_slice(data);
    out
}

fn mesh_messages(got: &[Value], key: &str) -> usize {
    got.iter()
        .filter(|v| event(v) == "mesh_message" && v["data"].get(key).is_some())
        .count()
}

#[test]
fn malformed_mesh_frames_are_dropped_and_reported() {
    let server = serve(&[]);
    let cells = ["--topology", "cells", "--cell-size", "4"];
    let mut peers: Vec<Peer> = (0..3)
        .map(|i| join(&server.url, "forged", &format!("p{i}"), &cells))
        .collect();
    // Wait until the three are linked: a broadcast reaches both others.
    let mut nonce = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        nonce += 1;
        assert!(Instant::now() < deadline, "the room never linked up");
        peers[0]
            .proc
            .cmd(json!({"cmd":"mesh_send","data":{"up": nonce}}));
        std::thread::sleep(Duration::from_millis(250));
        let mut reached = 0;
        for p in &mut peers[1..] {
            let got = p.proc.drain_for(Duration::from_millis(10));
            if got
                .iter()
                .any(|v| event(v) == "mesh_message" && v["data"]["up"] == nonce)
            {
                reached += 1;
            }
        }
        if reached == 2 {
            break;
        }
    }
    let target = peers[1].id.clone();
    let raw = |bytes: Vec<u8>| json!({"cmd":"raw","peer":target,"hex":hex(&bytes)});

    // Truncated: a mesh payload of two bytes.
    peers[0].proc.cmd(raw(envelope(6, &[8, 255])));
    // An origin that is not a peer id.
    peers[0]
        .proc
        .cmd(raw(envelope(6, &mesh_payload(b"no spaces!", b"{}"))));
    // A kind no version knows.
    peers[0].proc.cmd(raw(envelope(99, b"")));
    // A cells broadcast of a kind no version knows, in p2's name.
    let unknown_kind = mesh_payload(peers[2].id.as_bytes(), b"\x07{}");
    peers[0].proc.cmd(raw(envelope(6, &unknown_kind)));
    // A channel message to everyone whose channel name runs past its end, in another name.
    let stranger = "5".repeat(40);
    let bad_channel = mesh_payload(stranger.as_bytes(), b"\x01\x7fchat");
    peers[0].proc.cmd(raw(envelope(6, &bad_channel)));
    // A well-formed frame (the application's bytes: kind 0), forged in p0's name, sent
    // twice.
    let forged = envelope(
        6,
        &mesh_payload(peers[0].id.as_bytes(), b"\x00{\"forged\":true}"),
    );
    peers[0].proc.cmd(raw(forged.clone()));
    peers[0].proc.cmd(raw(forged));
    // And a real broadcast after all that.
    peers[0]
        .proc
        .cmd(json!({"cmd":"mesh_send","data":{"after":true}}));

    // The link is ordered: when the real broadcast arrives, everything sent before it on the
    // link has been handled. Then a while for copies that should not come.
    let got = peers[1].proc.until_then_quiet(
        Duration::from_secs(20),
        "the broadcast after",
        |v| mesh_messages(std::slice::from_ref(v), "after") == 1,
        Duration::from_secs(2),
    );
    let errs = errors(&got);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        errs.iter().all(|e| e.starts_with("malformed_message")),
        "{errs:#?}"
    );
    assert!(errs.iter().any(|e| e.contains("truncated")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("origin")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("kind 99")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("unknown kind")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("channel name")), "{errs:#?}");
    assert_eq!(
        mesh_messages(&got, "forged"),
        1,
        "the forged frame once, its copy dropped"
    );
    assert_eq!(mesh_messages(&got, "after"), 1);
    let third = peers[2].proc.until_then_quiet(
        Duration::from_secs(20),
        "the broadcast after",
        |v| mesh_messages(std::slice::from_ref(v), "after") == 1,
        Duration::from_millis(500),
    );
    assert_eq!(mesh_messages(&third, "after"), 1);
    // What the forged broadcasts carry is read where they are delivered: the frames
    // themselves were whole, so they were passed on, and p2 reports their contents too.
    assert!(
        errors(&third)
            .iter()
            .all(|e| e.contains("unknown kind") || e.contains("channel name")),
        "{:#?}",
        errors(&third)
    );
}
