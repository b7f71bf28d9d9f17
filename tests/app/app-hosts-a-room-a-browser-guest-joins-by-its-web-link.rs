//! The app hosts a room and its invite dialog shows a web link beside the `plenum://` one;
//! headless Chromium opens that link (the guest page, served by the app's own server) and
//! takes part: one safety code on both sides, chat both ways, a whiteboard stroke each way,
//! and the guest's leave seen in the app.

use plenum_e2e::app as support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::cli::{Proc, event};
use support::webdriver::Session;
use support::{Xvfb, artifacts_dir, wait_for};

const LONG: Duration = Duration::from_secs(30);

fn strokes(app: &Session) -> u64 {
    app.find("#board")
        .and_then(|b| app.attribute(&b, "data-strokes"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn app_hosts_a_room_a_browser_guest_joins_by_its_web_link() {
    let xvfb = Xvfb::start();
    let (_driver, app, config) = support::start_hosting_app(&xvfb, "web");
    let name = wait_for(LONG, "the join screen", || app.find("#join-name"));
    app.type_text(&name, "Hana");
    app.type_text(&app.find("#join-room").unwrap(), "web-party");
    app.click(&app.find("#host-button").unwrap());

    // The invite dialog: the app's link and the web link to the same room.
    let web = support::value_of(&app, "#invite-web-link", "the web link");
    assert!(web.starts_with("http://127.0.0.1:"), "{web}");
    assert!(web.ends_with("/r/web-party"), "{web}");
    assert!(
        app.find("#invite-web-note").is_none(),
        "a link to this computer needs no https"
    );
    xvfb.screenshot(&artifacts_dir().join("hosting-invite-web.png"));
    app.click(&app.find("#invite-close").unwrap());
    let host_id = app
        .find(".tile[data-state='me']")
        .and_then(|t| app.attribute(&t, "data-peer"))
        .expect("our tile");

    // The browser opens the web link.
    let driver_js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/guest.mjs");
    let url = format!("{web}?name=Guest");
    let mut page = Proc::spawn_group("node", &[driver_js.to_str().unwrap(), "--url", &url]);
    let guest_id = page.expect(LONG, "the page joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = page.expect(LONG, "the host's safety code", |v| {
        event(v) == "peer" && v["peer"] == host_id.as_str() && v["safety_code"].is_string()
    })["safety_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let shield = format!(".tile[data-peer='{guest_id}'] .tile-safety");
    let app_code = wait_for(LONG, "the guest's safety code in the app", || {
        app.find(&shield)
            .and_then(|s| app.attribute(&s, "data-code"))
            .filter(|c| !c.is_empty())
    });
    assert_eq!(code, app_code, "both sides show one code");

    // Chat both ways.
    page.cmd(json!({"cmd": "send", "text": "hello from the browser"}));
    let msg = format!(".chat-msg[data-from='{guest_id}'] .chat-text");
    wait_for(LONG, "the guest's message in the app", || {
        app.find(&msg)
            .map(|e| app.text(&e))
            .filter(|t| t == "hello from the browser")
    });
    app.type_text(&app.find("#chat-input").unwrap(), "hello from the app");
    app.click(&app.find("#chat-send").unwrap());
    let got = page.expect(LONG, "the app's message", |v| event(v) == "message");
    assert_eq!(got["from"], host_id.as_str());
    assert_eq!(got["data"], json!({"text": "hello from the app"}));

    // A stroke each way.
    page.cmd(json!({"cmd": "draw", "points": [[0.1, 0.1], [0.3, 0.2], [0.5, 0.4]]}));
    wait_for(LONG, "the guest's stroke in the app", || {
        (strokes(&app) == 1).then_some(())
    });
    support::draw_zigzag(&app, 9);
    page.expect(LONG, "the app's stroke in the page", |v| {
        event(v) == "board" && v["strokes"] == 2
    });
    xvfb.screenshot(&artifacts_dir().join("hosting-with-a-browser-guest.png"));

    // The guest leaves; the app sees it.
    page.cmd(json!({"cmd": "leave"}));
    assert_eq!(page.wait_exit(LONG), Some(0), "the driver ends cleanly");
    let tile = format!(".tile[data-peer='{guest_id}']");
    wait_for(LONG, "the guest's tile gone", || {
        app.find(&tile).is_none().then_some(())
    });
    app.click(&app.find("#leave-button").unwrap());
    let _ = std::fs::remove_dir_all(config);
}
