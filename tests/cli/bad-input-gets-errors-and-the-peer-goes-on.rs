//! Refusals with clear errors: a 13-byte channel name, a wrong room password, bad command
//! lines. The peer carries on after each.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn thirteen_byte_channel_name_is_refused() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "names", 2);
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"abcdefghijklm","data":1}));
    let err = peers[0]
        .proc
        .expect(Duration::from_secs(5), "error", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_channel");
    assert!(
        err["message"].as_str().unwrap_or("").contains("13 bytes"),
        "{err}"
    );
    // Twelve bytes pass.
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"abcdefghijkl","data":2}));
    let got = peers[1]
        .proc
        .expect(Duration::from_secs(5), "message", |v| event(v) == "message");
    assert_eq!(got["channel"], "abcdefghijkl");
    assert_eq!(got["data"], 2);
    assert!(
        messages(&mut peers[1], Duration::from_millis(500)).is_empty(),
        "the refused message must not arrive"
    );
}

#[test]
fn wrong_password_is_refused_and_right_one_admitted() {
    let server = serve(&[]);
    let mut owner = join(
        &server.url,
        "private",
        "owner",
        &["--password", "open sesame"],
    );
    let mut intruder = spawn_join(&server.url, "private", "intruder", &["--password", "guess"]);
    let err = intruder.expect(Duration::from_secs(10), "error", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_password", "{err}");
    assert_eq!(intruder.wait_exit(Duration::from_secs(5)), Some(2));
    let mut no_password = spawn_join(&server.url, "private", "nopass", &[]);
    let err = no_password.expect(Duration::from_secs(10), "error", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_password", "{err}");
    let friend = join(
        &server.url,
        "private",
        "friend",
        &["--password", "open sesame"],
    );
    let v = owner
        .proc
        .expect(Duration::from_secs(10), "peer_join", |v| {
            event(v) == "peer_join"
        });
    assert_eq!(v["peer"], friend.id.as_str());
    assert!(
        !owner
            .proc
            .seen
            .iter()
            .any(|v| v["name"] == "intruder" || v["name"] == "nopass")
    );
}

#[test]
fn bad_command_lines_get_errors_and_the_peer_carries_on() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "cmds", 2);
    let p = &mut peers[0].proc;
    for (line, code) in [
        ("not json", "bad_command"),
        (r#"{"cmd":"dance"}"#, "bad_command"),
        (r#"{"cmd":"send","channel":"chat"}"#, "bad_command"),
        (
            r#"{"cmd":"send","channel":"chat","data":1,"to":"no such peer!"}"#,
            "bad_command",
        ),
        (
            r#"{"cmd":"send","channel":"chat","data":1,"to":"ffffffffffffffff"}"#,
            "send_failed",
        ),
        (r#"{"cmd":"ping","peer":""}"#, "bad_command"),
    ] {
        p.raw(line);
        let err = p.expect(Duration::from_secs(5), "error event", |v| {
            event(v) == "error"
        });
        assert_eq!(err["code"], code, "for {line}: {err}");
    }
    p.cmd(json!({"cmd":"send","channel":"chat","data":"ok"}));
    let got = peers[1]
        .proc
        .expect(Duration::from_secs(5), "message", |v| event(v) == "message");
    assert_eq!(got["data"], "ok");
}

#[test]
fn end_of_stdin_does_not_leave() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "eof", 2);
    peers[0].proc.close_stdin();
    let events = peers[1].proc.drain_for(Duration::from_secs(2));
    assert!(
        !events.iter().any(|v| event(v) == "peer_leave"),
        "{events:?}"
    );
    assert_eq!(
        peers[0].proc.wait_exit(Duration::from_millis(100)),
        None,
        "peer exited on end of input"
    );
}

#[test]
fn unreachable_server_is_a_clear_error() {
    // A port nothing listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut p = spawn_join(&format!("ws://127.0.0.1:{port}"), "r", "x", &[]);
    let err = p.expect(Duration::from_secs(15), "error", |v| event(v) == "error");
    assert_eq!(err["code"], "join_failed");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(2));
}
