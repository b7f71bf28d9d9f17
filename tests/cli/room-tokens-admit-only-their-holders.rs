//! A server started with --token-secret-file admits only peers with a valid token minted by
//! `plenum token`: no token, an invalid one, a forged signature, an expired one and another
//! room's token are each refused with their own code; a viewer token joins but may not
//! publish (and a modified client that publishes anyway is ignored by the others); valid
//! tokens join and link, under the name the token names.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use plenum_proto::token::{Claims, Grants};
use plenum_proto::{DisplayName, RoomName};

const SECRET: &str = "0123456789abcdef-room-secret";

/// Joins with `extra` and expects a refusal with `code` and exit status 2.
fn refused(url: &str, extra: &[&str], code: &str) {
    let mut proc = spawn_join(url, "standup", "x", extra);
    let error = proc.expect(Duration::from_secs(10), code, |v| event(v) == "error");
    assert_eq!(error["code"], code, "{error}");
    assert_eq!(proc.wait_exit(Duration::from_secs(5)), Some(2));
}

#[test]
fn each_bad_token_is_refused_with_its_code_and_valid_ones_join() {
    let secret = secret_file("tokens", SECRET);
    let path = secret.path();
    let server = serve(&["--token-secret-file", path]);
    let room = RoomName::new("standup").unwrap();
    let name = DisplayName::new("Ada").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    refused(&server.url, &[], "token_required");
    refused(&server.url, &["--token", "v1.not.a-token"], "token_invalid");
    let forged = Claims {
        room: room.clone(),
        name: name.clone(),
        exp: now + 3600,
        grants: Grants::PARTICIPANT,
    }
    .mint(b"someone-elses-secret-entirely");
    refused(&server.url, &["--token", &forged], "token_forged");
    let expired = Claims {
        room: room.clone(),
        name: name.clone(),
        exp: now - 10,
        grants: Grants::PARTICIPANT,
    }
    .mint(SECRET.as_bytes());
    refused(&server.url, &["--token", &expired], "token_expired");
    let other = mint(&["--secret-file", path, "--room", "retro", "--name", "Ada"]);
    refused(&server.url, &["--token", &other], "token_wrong_room");

    // Valid tokens: a participant and a viewer, minted by the CLI.
    let ada = mint(&[
        "--secret-file",
        path,
        "--room",
        "standup",
        "--name",
        "Ada",
        "--ttl",
        "1h",
    ]);
    let vic = mint(&[
        "--secret-file",
        path,
        "--room",
        "standup",
        "--name",
        "Vic",
        "--ttl",
        "15m",
        "--viewer",
    ]);
    let mut a = join(
        &server.url,
        "standup",
        "ignored",
        &["--token", &ada, "--audio", "sine:440"],
    );
    let mut v = join(&server.url, "standup", "Mallory", &["--token", &vic]);
    let seen = a.proc.expect(Duration::from_secs(20), "viewer joins", |e| {
        event(e) == "peer_join"
    });
    assert_eq!(
        seen["name"], "Vic",
        "the token's name, not the one asked for"
    );
    let seen = v
        .proc
        .expect(Duration::from_secs(20), "participant joins", |e| {
            event(e) == "peer_join"
        });
    assert_eq!(seen["name"], "Ada");
    v.proc
        .expect(Duration::from_secs(10), "the participant's audio", |e| {
            event(e) == "stream_add" && e["kind"] == "audio"
        });

    // The viewer may not publish: refused locally with not_permitted, nothing announced.
    v.proc
        .cmd(serde_json::json!({"cmd": "audio", "source": "sine:300"}));
    let error = v.proc.expect(Duration::from_secs(5), "not_permitted", |e| {
        event(e) == "error"
    });
    assert_eq!(error["code"], "not_permitted", "{error}");
    v.proc
        .cmd(serde_json::json!({"cmd": "send", "channel": "chat", "data": "hello"}));
    a.proc
        .expect(Duration::from_secs(5), "the viewer's chat", |e| {
            event(e) == "message" && e["data"] == "hello"
        });
    let later = a.proc.drain_for(Duration::from_millis(500));
    assert!(
        !a.proc
            .seen
            .iter()
            .chain(&later)
            .any(|e| event(e) == "stream_add"),
        "a viewer's stream reached the room"
    );
}

#[test]
fn a_viewer_that_publishes_anyway_is_not_heard() {
    let secret = secret_file("tokens-rogue", SECRET);
    let path = secret.path();
    let server = serve(&["--token-secret-file", path]);
    let ada = mint(&["--secret-file", path, "--room", "talk", "--name", "Ada"]);
    let vic = mint(&[
        "--secret-file",
        path,
        "--room",
        "talk",
        "--name",
        "Vic",
        "--viewer",
    ]);
    let mut a = join(&server.url, "talk", "a", &["--token", &ada]);
    // A client that ignores its grant: it announces and sends a tone.
    let mut v = join(
        &server.url,
        "talk",
        "v",
        &[
            "--token",
            &vic,
            "--publish-without-grant",
            "--audio",
            "sine:440",
        ],
    );
    v.proc.expect(Duration::from_secs(10), "it publishes", |e| {
        event(e) == "audio"
    });
    v.proc
        .expect(Duration::from_secs(20), "the viewer links", |e| {
            event(e) == "peer_join"
        });
    a.proc
        .expect(Duration::from_secs(20), "the viewer links", |e| {
            event(e) == "peer_join"
        });
    // Data still flows both ways; its stream and its voice do not reach Ada.
    v.proc
        .cmd(serde_json::json!({"cmd": "send", "channel": "chat", "data": "hi"}));
    a.proc
        .expect(Duration::from_secs(5), "the viewer's chat", |e| {
            event(e) == "message" && e["data"] == "hi"
        });
    let later = a.proc.drain_for(Duration::from_secs(2));
    let all: Vec<&serde_json::Value> = a.proc.seen.iter().chain(&later).collect();
    assert!(
        !all.iter()
            .any(|e| event(e) == "stream_add" || event(e) == "speaking"),
        "a viewer's stream or voice reached the room: {all:?}"
    );
}
