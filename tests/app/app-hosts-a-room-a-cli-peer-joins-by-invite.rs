//! "Host on this computer": the app starts its embedded signaling server from the join
//! screen, shows an invite link, and a headless peer joins through that link.

use plenum_e2e::app as support;

use std::time::Duration;

use serde_json::json;
use support::cli::{Proc, event};
use support::{Xvfb, artifacts_dir, wait_for};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn app_hosts_a_room_a_cli_peer_joins_by_invite() {
    let xvfb = Xvfb::start();
    let (_driver, app, config) = support::start_hosting_app(&xvfb, "host");
    let shots = artifacts_dir();

    // The join screen, with a clear error for a join without a name.
    let name = wait_for(LONG, "the join screen", || app.find("#join-name"));
    let room = app.find("#join-room").unwrap();
    app.type_text(&room, "lan-party");
    app.click(&app.find("#host-button").unwrap());
    let error = app.find("#join-error").unwrap();
    wait_for(LONG, "an error asking for a name", || {
        Some(app.text(&error)).filter(|t| t.contains("name"))
    });
    assert!(app.find("#call").is_none());
    app.type_text(&name, "Hana");
    xvfb.screenshot(&shots.join("join-screen.png"));

    // Host: the call view opens with the invite link shown.
    app.click(&app.find("#host-button").unwrap());
    let invite = support::value_of(&app, "#invite-link", "the invite link");
    assert!(
        invite.starts_with("plenum://join?server=ws%3A%2F%2F127.0.0.1%3A"),
        "{invite}"
    );
    assert!(invite.ends_with("&room=lan-party"), "{invite}");
    xvfb.screenshot(&shots.join("hosting-invite.png"));
    app.click(&app.find("#invite-close").unwrap());

    // A headless peer joins through the invite link alone.
    let mut dee = Proc::spawn(&[
        "join",
        "--invite",
        &invite,
        "--name",
        "Dee",
        "--json",
        "--bind-ip",
        "127.0.0.1",
    ]);
    let dee_id = dee.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = dee.expect(LONG, "the host's peer_join", |v| {
        event(v) == "peer_join" && v["name"] == "Hana"
    });
    let css = format!(".tile[data-peer='{dee_id}'] .tile-state");
    // The state's words (a narrow tile shows its dot alone, the words in its tooltip).
    wait_for(LONG, "Dee's tile connected", || {
        support::text_of(&app, &css).filter(|t| t == "Connected")
    });
    dee.cmd(
        json!({"cmd": "send", "channel": "chat", "data": {"text": "found you through the link"}}),
    );
    let msg = format!(".chat-msg[data-from='{dee_id}'] .chat-text");
    wait_for(LONG, "Dee's message", || {
        app.find(&msg)
            .map(|e| app.text(&e))
            .filter(|t| t == "found you through the link")
    });

    // A bad invite is refused by the CLI with a clear error.
    let mut bad = Proc::spawn(&[
        "join",
        "--invite",
        "plenum://join?room=x",
        "--name",
        "Eve",
        "--json",
    ]);
    let err = bad.expect(LONG, "bad_invite", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_invite");
    assert_eq!(bad.wait_exit(LONG), Some(2));

    // Leaving: Dee sees the host go; the join screen remembers the name.
    app.click(&app.find("#leave-button").unwrap());
    dee.expect(LONG, "the host leaves", |v| {
        event(v) == "peer_leave" && v["peer"] == host["peer"]
    });
    let name = wait_for(LONG, "the join screen again", || app.find("#join-name"));
    assert_eq!(app.property(&name, "value"), json!("Hana"));
    let _ = std::fs::remove_dir_all(config);
}
