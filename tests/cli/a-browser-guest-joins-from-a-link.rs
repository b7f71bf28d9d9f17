//! A browser joins a room from a link: headless Chromium (Debian's, driven by
//! `tests/browser/guest.mjs`) opens `/r/ROOM` on a real `plenum serve`, which hands out the
//! guest page built into it; the page links with a CLI peer over WebRTC, both show the same
//! safety code, chat goes both ways, and the page's leave is seen.

use plenum_e2e::cli as common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Proc, event, serve, spawn_join};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// The driver: a Chromium page speaking JSON lines on stdio, as `plenum join --json` does.
fn guest(url: &str) -> Proc {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/guest.mjs");
    Proc::spawn_group("node", &[driver.to_str().expect("utf-8"), "--url", url])
}

fn safety_code_of(peers: &Value, peer: &str) -> Option<String> {
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer"] == peer && p["state"] == "connected")?["safety_code"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_browser_guest_chats_with_a_cli_peer_under_one_safety_code() {
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut cli = spawn_join(&server.url, "guests", "ada", &[]);
    let cli_id = cli.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut page = guest(&format!("{http}/r/guests?name=Guest"));
    let guest_id = page.expect(LONG, "the page joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(guest_id.len(), 40, "a peer id of 40 hex digits: {guest_id}");
    cli.expect(LONG, "the guest's link", |v| {
        event(v) == "peer_join" && v["peer"] == guest_id.as_str()
    });
    let code = page.expect(LONG, "the CLI peer's safety code", |v| {
        event(v) == "peer" && v["peer"] == cli_id.as_str() && v["safety_code"].is_string()
    })["safety_code"]
        .as_str()
        .expect("code")
        .to_owned();
    let cli_code = common::wait_for(LONG, "the guest's safety code", || {
        cli.cmd(json!({"cmd": "peers"}));
        let peers = cli.expect(LONG, "peers", |v| event(v) == "peers");
        safety_code_of(&peers, &guest_id)
    });
    assert_eq!(code, cli_code, "both sides show one code");

    page.cmd(json!({"cmd": "send", "text": "hello from the browser"}));
    let got = cli.expect(LONG, "the guest's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["from"], guest_id.as_str());
    assert_eq!(got["data"], json!({"text": "hello from the browser"}));

    cli.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "hello from the terminal"}}));
    let got = page.expect(LONG, "the CLI peer's chat", |v| event(v) == "message");
    assert_eq!(got["from"], cli_id.as_str());
    assert_eq!(got["data"], json!({"text": "hello from the terminal"}));

    page.cmd(json!({"cmd": "leave"}));
    assert_eq!(page.wait_exit(LONG), Some(0), "the driver ends cleanly");
    cli.expect(LONG, "the guest's leave", |v| {
        event(v) == "peer_leave" && v["peer"] == guest_id.as_str()
    });
    cli.cmd(json!({"cmd": "leave"}));
    assert_eq!(cli.wait_exit(LONG), Some(0));
}
