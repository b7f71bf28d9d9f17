//! A presentation that outgrows a mesh, in the real app under Xvfb with real `plenum serve`
//! and `plenum join` viewers: the app presents with an access code in a room that grows (the
//! join screen's default), and nine viewers join by its invite. The app links the first
//! eight itself; the ninth is placed under one of them, which passes the app's shared screen
//! on to it without decoding. The app counts all nine. A tenth without the code is turned
//! away by the viewer its join was handed to (a viewer keeps the presenter's word on who
//! may watch); it leaves, comes back with the code and is let in, and the app counts ten.
//! The ninth viewer's raised hand reaches the app, whose "Invite to speak" puts it on
//! stage: a viewer with no link to it hears its voice. Browsers cannot join such a room,
//! and the invite says so instead of offering a browser link.
//!
//! Then the other side: the app watches a headless presenter's tree with its access code,
//! placed under a viewer. It shows the presenter first and large with its pictures, lists
//! no audience (it links only the viewer above it), and its top bar says it watches.
//!
//! Screenshots (when PLENUM_ARTIFACTS names docs/screenshots):
//! presenting-to-a-large-audience.png, watching-a-presentation-tree.png.

use plenum_e2e::app as support;

use std::path::Path;
use std::time::Duration;

use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{rms_dbfs, tone_level_db};
use serde_json::{Value, json};
use support::cli::{self, Proc, event, recorded_so_far, spawn_join_invite};
use support::{Xvfb, artifacts_dir, painted, start_app, text_of, wait_for};

const LONG: Duration = Duration::from_secs(40);
/// The viewers the presenter links itself (`PRESENTER_VIEWERS` in src-tauri/src/session.rs).
const LINKED: usize = 8;
/// The voice of the viewer beyond them.
const HAND: f64 = 660.0;
const CODE: &str = r#"{"code":"k3"}"#;

/// Whether the last second `wav` recorded is `hz`, clearly heard.
fn hears(wav: &Path, hz: f64) -> bool {
    let heard = recorded_so_far(wav);
    let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
    rms_dbfs(last) > -40.0 && tone_level_db(last, SAMPLE_RATE, hz) > -6.0
}

/// A viewer joined by `invite` as `name`, with its id.
fn viewer(invite: &str, name: &str, extra: &[&str]) -> (Proc, String) {
    let mut proc = spawn_join_invite(invite, name, extra);
    let joined = proc.expect(LONG, "joined", |v| event(v) == "joined");
    (proc, joined["peer"].as_str().expect("an id").to_owned())
}

/// The viewer's place once it has one: its depth and parent.
fn placed(proc: &mut Proc, who: &str) -> (u64, String) {
    let state = proc.expect(LONG, &format!("{who} placed in the tree"), |v| {
        event(v) == "tree_state" && v["depth"].as_u64().is_some_and(|d| d > 0)
    });
    let depth = state["depth"].as_u64().expect("a depth");
    (
        depth,
        state["parent"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Pictures `proc` decoded of `peer`'s shared screen, by its figures.
fn screen_pictures(proc: &mut Proc, peer: &str) -> u64 {
    let stats: Value = proc.stats();
    stats["video"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["peer"] == peer && v["lane"] == "screen")
        .filter_map(|v| v["frames"].as_u64())
        .sum()
}

/// One after the other: two apps, Xvfbs and WebDriver servers at once strain 2 cores.
#[test]
fn the_app_presents_to_more_viewers_than_it_links_then_watches_such_a_tree() {
    the_app_presents_to_more_viewers_than_it_links();
    the_app_watches_a_presentation_tree_under_a_viewer();
}

fn the_app_presents_to_more_viewers_than_it_links() {
    let server = cli::serve(&[]);
    let xvfb = Xvfb::start();
    let (_driver, app, config) = start_app(&xvfb, support::app_bin(), &[], "grown-present");
    wait_for(LONG, "the join screen", || app.find("#join-name"));
    app.type_text(&app.find("#join-name").expect("#join-name"), "Pia");
    app.type_text(&app.find("#join-room").expect("#join-room"), "all-hands");
    let field = app.find("#join-server").expect("#join-server");
    app.clear(&field);
    app.type_text(&field, &server.url);
    app.execute(
        "const s = document.querySelector('#join-role'); s.value = 'publisher'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    app.type_text(&app.find("#join-code").expect("#join-code"), "k3");
    // The room that grows, as the join screen opens: for a presentation, passed on.
    let shape = app.execute(
        "const s = document.querySelector('#join-shape'); return [s.value, s.selectedOptions[0].textContent];",
        json!([]),
    );
    assert_eq!(shape[0], "cells");
    assert!(
        shape[1].as_str().is_some_and(|t| t.contains("passed on")),
        "{shape}"
    );
    app.click(&app.find("#join-button").expect("#join-button"));
    wait_for(LONG, "the presenting pill", || app.find("#presenting-pill"));
    let invite = support::value_of(&app, "#invite-link", "the invite link");
    assert!(
        invite.ends_with("&role=viewer&credentials=required"),
        "{invite}"
    );
    // The tree's root: the invite says browsers cannot join, and offers no browser link.
    wait_for(LONG, "the invite's word on browsers", || {
        app.find("#invite-tree-note")
            .filter(|e| app.property(e, "hidden") == json!(false))
    });
    assert!(
        app.find("#invite-web-link").is_none(),
        "a browser link for a tree"
    );

    // The app shares its screen (the Xvfb display).
    app.click(&app.find("#share-button").expect("#share-button"));
    let start = wait_for(LONG, "the share picker", || {
        app.find("#share-start")
            .filter(|e| app.property(e, "disabled") == json!(false))
    });
    app.click(&start);
    wait_for(LONG, "the app sharing", || {
        app.find("#share-button[data-sharing='true']")
    });

    // Eight viewers: every one linked to the presenter, a star.
    let wav = |i: usize| {
        std::env::temp_dir().join(format!("plenum-grown-{}-{i}.wav", std::process::id()))
    };
    let mut viewers: Vec<(Proc, String)> = (0..LINKED)
        .map(|i| {
            let record = wav(i);
            let record = record.to_str().expect("a UTF-8 temp path").to_owned();
            let extra: Vec<&str> = if i < 2 {
                vec!["--credentials", CODE, "--record-audio", &record]
            } else {
                vec!["--credentials", CODE]
            };
            viewer(&invite, &format!("Viewer {i}"), &extra)
        })
        .collect();
    for (i, (proc, _)) in viewers.iter_mut().enumerate() {
        let (depth, _) = placed(proc, &format!("viewer {i}"));
        assert_eq!(depth, 1, "viewer {i} under the presenter");
    }
    // The ninth goes under one of them.
    let (mut ninth, ninth_id) = viewer(
        &invite,
        "Nina",
        &["--credentials", CODE, "--audio", "sine:660"],
    );
    let (depth, parent) = placed(&mut ninth, "Nina");
    assert_eq!(depth, 2, "Nina under a viewer");
    assert!(
        viewers.iter().any(|(_, id)| *id == parent),
        "Nina's parent {parent} is a viewer"
    );
    // The app's screen reaches her through that viewer.
    let app_id = viewers[0].0.expect(LONG, "the presenter named", |v| {
        event(v) == "tree_state" && v["root"].is_string()
    })["root"]
        .as_str()
        .expect("the root")
        .to_owned();
    wait_for(cli::MEDIA_WAIT, "the app's screen at Nina", || {
        (screen_pictures(&mut ninth, &app_id) >= 10).then_some(())
    });

    // The app counts her, though it links eight.
    wait_for(LONG, "nine watching", || {
        text_of(&app, "#participant-count").filter(|t| t == "9 watching")
    });
    wait_for(LONG, "the audience beyond the app's own", || {
        text_of(&app, "#audience-beyond")
            .filter(|t| t == "1 more, through the viewers who pass it on")
    });

    // Without the code: turned away by the viewer her join is handed to (the app is full).
    let key = std::env::temp_dir().join(format!("plenum-grown-eve-{}.key", std::process::id()));
    let key = key.to_str().expect("a UTF-8 temp path").to_owned();
    let (mut eve, eve_id) = viewer(&invite, "Eve", &["--identity", &key]);
    let refused = eve.expect(LONG, "Eve refused", |v| {
        event(v) == "error" && v["code"] == "not_verified"
    });
    let by = refused["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        viewers.iter().any(|(_, id)| by.starts_with(id.as_str())),
        "refused by a viewer: {by}"
    );
    // She leaves (as the app does when its code is refused) and comes back with it, as
    // herself: let in, and counted.
    eve.cmd(json!({"cmd": "leave"}));
    assert!(eve.wait_exit(LONG).is_some(), "Eve did not leave");
    let (mut eve, again) = viewer(&invite, "Eve", &["--identity", &key, "--credentials", CODE]);
    assert_eq!(again, eve_id, "the same identity");
    let (depth, _) = placed(&mut eve, "Eve with the code");
    assert_eq!(depth, 2, "Eve under a viewer");
    wait_for(LONG, "ten watching", || {
        text_of(&app, "#participant-count").filter(|t| t == "10 watching")
    });

    // A recorder that has no link to Nina (not her parent) does not hear her yet.
    let (recorder, _) = (0..2)
        .map(|i| (i, &viewers[i].1))
        .find(|(_, id)| **id != parent)
        .expect("a recorder not Nina's parent");
    wait_for(LONG, "two seconds recorded", || {
        (recorded_so_far(&wav(recorder)).len() > SAMPLE_RATE as usize * 2).then_some(())
    });
    assert!(!hears(&wav(recorder), HAND), "heard Nina before the stage");

    // Nina raises a hand; the app invites her to speak; a viewer with no link to her hears her.
    ninth.cmd(json!({"cmd": "hand"}));
    let accept = format!("#tree-hands .viewer[data-peer='{ninth_id}'] .hand-accept");
    let accept = wait_for(LONG, "Nina's hand in the app", || app.find(&accept));
    app.click(&accept);
    viewers[recorder].0.expect(LONG, "Nina on stage", |v| {
        event(v) == "stage" && v["speaker"] == ninth_id.as_str() && v["name"] == "Nina"
    });
    wait_for(cli::MEDIA_WAIT, "Nina heard through the tree", || {
        hears(&wav(recorder), HAND).then_some(())
    });
    wait_for(LONG, "the app saying who is on stage", || {
        text_of(&app, "#tree-stage-speaker").filter(|t| t == "Nina is on stage")
    });
    painted(&app);
    xvfb.screenshot(&artifacts_dir().join("presenting-to-a-large-audience.png"));

    for i in 0..2 {
        let _ = std::fs::remove_file(wav(i));
    }
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_dir_all(config);
}

fn the_app_watches_a_presentation_tree_under_a_viewer() {
    let server = cli::serve(&[]);
    let room = "town-hall";
    let xvfb = Xvfb::start();
    // A presentation's tree whose presenter takes one viewer: the app comes under it.
    let rita = cli::join(
        &server.url,
        room,
        "Rita",
        &[
            "--topology",
            "tree",
            "--max-degree",
            "3",
            "--root-degree",
            "1",
            "--root",
            "--secret",
            "s",
            "--role",
            "publisher",
            "--accept-credentials",
            CODE,
            "--video",
            "testsrc:320x180@15",
        ],
    );
    let mut cy = cli::join(
        &server.url,
        room,
        "Cy",
        &["--role", "viewer", "--credentials", CODE],
    );
    let (depth, _) = placed(&mut cy.proc, "Cy");
    assert_eq!(depth, 1, "Cy under the presenter");
    let args: Vec<String> = [
        "--server",
        server.url.as_str(),
        "--room",
        room,
        "--name",
        "Ada",
        "--role",
        "viewer",
        "--access-code",
        "k3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (_driver, app, config) = start_app(&xvfb, support::app_bin(), &args, "tree-watcher");
    // The presenter first and large, named as the tree said, its pictures on it.
    let tile = format!(".tile[data-peer='{}']", rita.id);
    wait_for(LONG, "the presenter's tile first", || {
        let first = app.execute(
            "return document.querySelector('#tiles').firstElementChild?.dataset.peer ?? null",
            json!([]),
        );
        let name = text_of(&app, &format!("{tile} .tile-name"))?;
        (first == json!(rita.id) && name == "Rita").then_some(())
    });
    wait_for(cli::MEDIA_WAIT, "the presenter's pictures", || {
        let frames = app.attribute(&app.find(&tile)?, "data-frames")?;
        (frames.parse::<u32>().ok()? >= 10).then_some(())
    });
    wait_for(LONG, "the top bar watching", || {
        text_of(&app, "#participant-count").filter(|t| t == "Watching")
    });
    let audience = app.find("#audience").expect("the audience list");
    assert_eq!(
        app.property(&audience, "hidden"),
        json!(true),
        "an audience list for a viewer in a tree"
    );
    let hand = app.find("#hand-button").expect("a hand button");
    assert_eq!(app.property(&hand, "hidden"), json!(false));
    painted(&app);
    xvfb.screenshot(&artifacts_dir().join("watching-a-presentation-tree.png"));
    let _ = std::fs::remove_dir_all(config);
}
