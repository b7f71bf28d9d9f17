//! The largest payload a send takes (`plenum::MAX_MESSAGE_BYTES`, with the longest channel
//! name: its envelope is the 262,144 bytes both ends announce as SCTP `max-message-size`)
//! arrives whole; one byte more is refused with `send_failed` before it leaves; the link
//! carries on after both.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn the_largest_message_crosses_and_one_byte_more_is_refused() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "largest", 2);
    let to = peers[1].id.clone();
    let channel = "abcdefghijkl";
    // The CLI sends `data` as JSON: a string of n characters is n + 2 bytes.
    let largest = "a".repeat(plenum::MAX_MESSAGE_BYTES - 2);
    let too_large = "b".repeat(plenum::MAX_MESSAGE_BYTES - 1);
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":channel,"data":too_large,"to":to}));
    let refused = peers[0]
        .proc
        .expect(Duration::from_secs(10), "send_failed", |v| {
            event(v) == "error"
        });
    assert_eq!(refused["code"], "send_failed", "{refused}");
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":channel,"data":largest,"to":to}));
    let got = peers[1]
        .proc
        .expect(Duration::from_secs(20), "the largest message", |v| {
            event(v) == "message"
        });
    assert_eq!(got["channel"], channel);
    assert_eq!(
        got["data"].as_str().map(str::len),
        Some(plenum::MAX_MESSAGE_BYTES - 2)
    );
    // The link is as it was: a message and a ping each way.
    peers[1]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":"still here"}));
    peers[0]
        .proc
        .expect(Duration::from_secs(10), "a message after", |v| {
            event(v) == "message" && v["data"] == "still here"
        });
    peers[0].proc.cmd(json!({"cmd":"ping","peer":to}));
    peers[0]
        .proc
        .expect(Duration::from_secs(10), "pong", |v| event(v) == "pong");
    assert!(
        !peers[0].proc.seen.iter().any(|v| event(v) == "peer_leave"),
        "the link went down"
    );
}
