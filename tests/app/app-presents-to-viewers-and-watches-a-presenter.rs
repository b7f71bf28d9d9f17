//! "Present to a room" with everyone linked to the presenter (the "mesh" shape), in the
//! real app under Xvfb with real `plenum serve` and `plenum join` peers: the app presents
//! with an access code, viewers join through its invite (as viewers, because the invite
//! says so), one without the code is refused, the viewers are listed beside the
//! presenter's tile, and a raised hand shows. Then the other side:
//! the app watches a headless presenter, the join screen asks for the access code the
//! invite needs, a join without it comes back to the join screen, and with it the
//! presenter's tile is large and the app's raised hand reaches the presenter.

use plenum_e2e::app as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cli::{self, event, spawn_join_invite as join_invite};
use support::webdriver::Session;
use support::{Driver, Xvfb, artifacts_dir, start_app, text_of, wait_for};

const LONG: Duration = Duration::from_secs(30);

/// The `data-peer` of every element matching `css`, in page order.
fn peers_of(app: &Session, css: &str) -> Vec<String> {
    let v = app.execute(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.dataset.peer);",
        json!([css]),
    );
    serde_json::from_value(v).unwrap_or_default()
}

/// Chooses `value` in the select `css`, as the user would.
fn choose(app: &Session, css: &str, value: &str) {
    app.execute(
        "const s = document.querySelector(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change'));",
        json!([css, value]),
    );
}

/// The app on its join screen, with its own config directory.
fn app_on_join_screen(xvfb: &Xvfb, tag: &str) -> (Driver, Session, std::path::PathBuf) {
    let (driver, app, config) = start_app(xvfb, support::app_bin(), &[], tag);
    wait_for(LONG, "the join screen", || app.find("#join-name"));
    (driver, app, config)
}

fn id_of(joined: &Value) -> String {
    joined["peer"].as_str().expect("peer id").to_owned()
}

#[test]
fn the_app_presents_to_viewers_who_need_its_access_code() {
    let server = cli::serve(&[]);
    let xvfb = Xvfb::start();
    let (_driver, app, config) = app_on_join_screen(&xvfb, "present");
    let shots = artifacts_dir();

    app.type_text(&app.find("#join-name").unwrap(), "Pia");
    app.type_text(&app.find("#join-room").unwrap(), "keynote");
    let field = app.find("#join-server").unwrap();
    app.clear(&field);
    app.type_text(&field, &server.url);
    choose(&app, "#join-role", "publisher");
    // Everyone linked to the presenter, however many: viewers listed from the room's roster,
    // browsers welcome (a presentation that grows is a tree: its own test).
    choose(&app, "#join-shape", "mesh");
    app.type_text(&app.find("#join-code").unwrap(), "k1");
    let button = app.find("#join-button").unwrap();
    assert_eq!(app.text(&button), "Present to a room");
    xvfb.screenshot(&shots.join("present-join-screen.png"));
    app.click(&button);

    // The call opens presenting; the invite makes viewers who need a code.
    wait_for(LONG, "the presenting pill", || app.find("#presenting-pill"));
    let invite = app
        .execute(
            "return document.getElementById('invite-link').value;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        invite.ends_with("&room=keynote&role=viewer&credentials=required"),
        "{invite}"
    );
    assert!(!invite.contains("k1"), "the code stays out of the link");
    // The web link for browser guests says so too: the page asks for the code.
    let web = app
        .execute(
            "return document.getElementById('invite-web-link').value;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        web.ends_with("/r/keynote?role=viewer&credentials=required") && !web.contains("k1"),
        "{web}"
    );

    let code = r#"{"code":"k1"}"#;
    let mut v1 = join_invite(&invite, "Vera", &["--credentials", code]);
    let mut v2 = join_invite(&invite, "Abe", &["--credentials", code]);
    let mut v3 = join_invite(&invite, "Eve", &[]);
    let (v1_id, v2_id, v3_id) = (
        id_of(&v1.expect(LONG, "joined", |v| event(v) == "joined")),
        id_of(&v2.expect(LONG, "joined", |v| event(v) == "joined")),
        id_of(&v3.expect(LONG, "joined", |v| event(v) == "joined")),
    );
    // The two with the code link to the presenter; the third is refused.
    let pia = id_of(&v1.expect(LONG, "the presenter", |v| {
        event(v) == "peer_join" && v["name"] == "Pia"
    }));
    v2.expect(LONG, "the presenter", |v| {
        event(v) == "peer_join" && v["peer"] == pia.as_str()
    });
    v3.expect(LONG, "not_verified", |v| {
        event(v) == "error" && v["code"] == "not_verified"
    });

    // The app: its own tile alone on the stage, the three listed, Eve not admitted.
    wait_for(LONG, "three viewers listed", || {
        Some(peers_of(&app, ".viewer[data-peer]")).filter(|p| p.len() == 3)
    });
    assert_eq!(peers_of(&app, ".tile"), vec![pia.clone()]);
    for viewer in [&v1_id, &v2_id] {
        let css = format!(".viewer[data-peer='{viewer}']");
        assert_eq!(
            app.attribute(&app.find(&css).unwrap(), "data-state")
                .as_deref(),
            Some("connected")
        );
    }
    wait_for(LONG, "Eve not admitted", || {
        text_of(&app, &format!(".viewer[data-peer='{v3_id}'] .viewer-note"))
            .filter(|t| t == "not admitted")
    });
    assert_eq!(
        text_of(&app, "#participant-count").as_deref(),
        Some("1 presenting · 3 watching")
    );
    // Viewers never link to each other: Vera's peer list shows Abe, unlinked.
    v1.cmd(json!({"cmd": "peers"}));
    let peers = v1.expect(LONG, "peers", |v| event(v) == "peers");
    let abe = peers["peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["peer"] == v2_id.as_str()))
        .cloned()
        .expect("Abe in Vera's list");
    assert_eq!(
        (abe["role"].as_str(), abe["state"].as_str()),
        (Some("viewer"), Some("waiting"))
    );

    // Abe raises a hand: first in the list, with the hand, and the presenter is told.
    v2.cmd(json!({"cmd": "set_state", "state": {"hand": true}, "merge": true}));
    wait_for(LONG, "Abe's raised hand", || {
        Some(peers_of(&app, ".viewer[data-hand='true']"))
            .filter(|p| p == std::slice::from_ref(&v2_id))
    });
    assert_eq!(peers_of(&app, ".viewer[data-peer]")[0], v2_id);
    assert_eq!(
        text_of(&app, "#toast").as_deref(),
        Some("Abe raised a hand")
    );
    xvfb.screenshot(&shots.join("presenting-with-a-raised-hand.png"));

    // The presenter's chat reaches both viewers.
    let input = app.find("#chat-input").unwrap();
    app.type_text(&input, "welcome, everyone");
    app.click(&app.find("#chat-send").unwrap());
    for viewer in [&mut v1, &mut v2] {
        viewer.expect(LONG, "the presenter's chat", |v| {
            event(v) == "message"
                && v["channel"] == "chat"
                && v["from"] == pia.as_str()
                && v["data"]["text"] == "welcome, everyone"
        });
    }
    // Abe lowers the hand.
    v2.cmd(json!({"cmd": "set_state", "state": {"hand": false}, "merge": true}));
    wait_for(LONG, "no hand raised", || {
        Some(peers_of(&app, ".viewer[data-hand='true']")).filter(Vec::is_empty)
    });
    let _ = std::fs::remove_dir_all(config);
}

#[test]
fn the_app_watches_a_presenter_and_gives_the_access_code_it_asks_for() {
    let server = cli::serve(&[]);
    let mut pat = cli::join(
        &server.url,
        "all-hands",
        "Pat",
        &[
            "--role",
            "publisher",
            "--accept-credentials",
            r#"{"code":"k2"}"#,
        ],
    );
    let mut vi = cli::join(
        &server.url,
        "all-hands",
        "Vi",
        &["--role", "viewer", "--credentials", r#"{"code":"k2"}"#],
    );
    vi.proc.expect(LONG, "Pat", |v| {
        event(v) == "peer_join" && v["peer"] == pat.id.as_str()
    });
    let invite = plenum::Invite {
        server: server.url.clone(),
        room: plenum::RoomName::new("all-hands").unwrap(),
        role: Some(plenum::Role::Viewer),
        credentials: true,
    }
    .to_string();

    let xvfb = Xvfb::start();
    let (_driver, app, config) = app_on_join_screen(&xvfb, "watch");
    let shots = artifacts_dir();
    app.type_text(&app.find("#join-name").unwrap(), "Carol");
    // Pasted, as a user does (typed key by key, a prefix of the link is a link already).
    app.execute(
        "const f = document.getElementById('join-server'); f.value = arguments[0]; f.dispatchEvent(new Event('input'));",
        json!([invite]),
    );
    // The invite fills the room, makes us a viewer and asks for the code.
    wait_for(LONG, "the access code field", || {
        app.find("#join-code-field")
            .filter(|f| app.property(f, "hidden") == json!(false))
    });
    assert_eq!(
        app.property(&app.find("#join-role").unwrap(), "value"),
        json!("viewer")
    );
    assert_eq!(
        app.property(&app.find("#join-room").unwrap(), "value"),
        json!("all-hands")
    );

    // Without the code: Pat refuses, and the join screen asks again, saying why.
    app.click(&app.find("#join-button").unwrap());
    let error = wait_for(LONG, "the refusal on the join screen", || {
        app.find("#join-error")
            .map(|e| app.text(&e))
            .filter(|t| t.contains("did not accept your access code"))
    });
    assert_eq!(error, "Pat did not accept your access code.");
    assert!(app.find("#call").is_none());
    let code = app.find("#join-code").unwrap();
    assert_eq!(
        app.property(&app.find("#join-code-field").unwrap(), "hidden"),
        json!(false)
    );
    xvfb.screenshot(&shots.join("watch-code-refused.png"));

    // With the code: Pat's tile is the stage, Vi and we are listed.
    app.type_text(&code, "k2");
    app.click(&app.find("#join-button").unwrap());
    let pat_state = format!(".tile[data-peer='{}'] .tile-state", pat.id);
    wait_for(LONG, "Pat connected on the stage", || {
        text_of(&app, &pat_state).filter(|t| t == "Connected")
    });
    assert_eq!(peers_of(&app, ".tile"), vec![pat.id.clone()]);
    wait_for(LONG, "Vi and us listed", || {
        Some(peers_of(&app, ".viewer[data-peer]")).filter(|p| p.len() == 2)
    });
    assert!(peers_of(&app, ".viewer[data-peer]").contains(&vi.id));
    let carol = pat.proc.expect(LONG, "Carol linked", |v| {
        event(v) == "peer_join" && v["name"] == "Carol"
    });

    // The hand goes up on Pat's side, and comes down.
    let hand = app.find("#hand-button").unwrap();
    app.click(&hand);
    pat.proc.expect(LONG, "Carol's hand up", |v| {
        event(v) == "state" && v["peer"] == carol["peer"] && v["state"]["hand"] == true
    });
    wait_for(LONG, "the button says lower", || {
        Some(app.text(&hand)).filter(|t| t == "Lower hand")
    });
    xvfb.screenshot(&shots.join("watching-with-a-raised-hand.png"));
    app.click(&hand);
    pat.proc.expect(LONG, "Carol's hand down", |v| {
        event(v) == "state" && v["peer"] == carol["peer"] && v["state"]["hand"] == false
    });

    // Pat's chat reaches the app.
    pat.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "questions?"}}));
    wait_for(LONG, "Pat's message", || {
        text_of(
            &app,
            &format!(".chat-msg[data-from='{}'] .chat-text", pat.id),
        )
        .filter(|t| t == "questions?")
    });
    let _ = std::fs::remove_dir_all(config);
}
