//! A peer cannot grow our stream bookkeeping without bound: eight announced streams are
//! taken, a ninth and a stream id over 64 bytes are refused as malformed, one already known
//! is still taken, and the link carries on.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn add(stream: &str) -> String {
    let announcement =
        json!({"op":"add","stream":stream,"kind":"audio","metadata":{},"muted":false});
    hex(&envelope(5, announcement.to_string().as_bytes()))
}

#[test]
fn a_peer_announcing_too_many_streams_is_refused() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "streams", 2);
    let to = peers[1].id.clone();
    for i in 0..8 {
        let stream = format!("s{i}");
        peers[0]
            .proc
            .cmd(json!({"cmd":"raw","peer":to,"hex":add(&stream)}));
        peers[1]
            .proc
            .expect(Duration::from_secs(10), "stream_add", |v| {
                event(v) == "stream_add" && v["stream"] == stream.as_str()
            });
    }
    peers[0]
        .proc
        .cmd(json!({"cmd":"raw","peer":to,"hex":add("s8")}));
    let refused = peers[1]
        .proc
        .expect(Duration::from_secs(10), "the ninth refused", |v| {
            matches!(event(v), "error" | "stream_add")
        });
    assert_eq!(refused["code"], "malformed_message", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than 8 streams")),
        "{refused}"
    );
    // A stream it announced already is news, not a new stream.
    peers[0]
        .proc
        .cmd(json!({"cmd":"raw","peer":to,"hex":add("s3")}));
    peers[1]
        .proc
        .expect(Duration::from_secs(10), "s3 again", |v| {
            event(v) == "stream_add" && v["stream"] == "s3"
        });
    let long = "x".repeat(65);
    peers[0]
        .proc
        .cmd(json!({"cmd":"raw","peer":to,"hex":add(&long)}));
    let refused = peers[1]
        .proc
        .expect(Duration::from_secs(10), "the long id refused", |v| {
            matches!(event(v), "error" | "stream_add")
        });
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("longer than 64 bytes")),
        "{refused}"
    );
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":"still here"}));
    peers[1]
        .proc
        .expect(Duration::from_secs(10), "a message after", |v| {
            event(v) == "message" && v["data"] == "still here"
        });
}
