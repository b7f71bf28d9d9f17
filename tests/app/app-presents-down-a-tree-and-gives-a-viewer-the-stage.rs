//! A presentation to a large audience, in the real app under Xvfb: a broadcast tree room.
//!
//! The app hosts the room as its root (the presenter) and two CLI viewers join by its
//! invite. One raises its hand; the app lists it and its "Invite to speak" puts it on
//! stage: every viewer is told, with its name, and the other viewer, which has no link to
//! it, hears its voice through the tree. "End" takes it off again.
//!
//! Then the app watches a tree whose root is a CLI peer, from under another viewer (the
//! root takes one child): the root, which the app is not linked to, has a tile named as the
//! tree said, with its test pattern on it; the app's "Raise hand" reaches the root with the
//! app's name, and the root's word puts the app on stage, which the app says.
//! Screenshots go to docs/screenshots/presenting-down-a-tree.png and
//! watching-down-a-tree.png when PLENUM_ARTIFACTS names that directory.

use plenum_e2e::app as support;

use std::path::Path;
use std::time::Duration;

use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{rms_dbfs, tone_level_db};
use serde_json::json;
use support::cli::{self, Proc, event, recorded_so_far};
use support::{Xvfb, artifacts_dir, painted, text_of, wait_for};

const LONG: Duration = Duration::from_secs(40);
/// The voice of the viewer who raises its hand.
const HAND: f64 = 660.0;

/// Whether the last second `wav` recorded is `hz`, clearly heard: loud enough, and mostly
/// that tone.
fn hears(wav: &Path, hz: f64) -> bool {
    let heard = recorded_so_far(wav);
    let last = &heard[heard.len().saturating_sub(SAMPLE_RATE as usize)..];
    rms_dbfs(last) > -40.0 && tone_level_db(last, SAMPLE_RATE, hz) > -6.0
}

/// One after the other: two apps, Xvfbs and WebDriver servers at once strain 2 cores.
#[test]
fn app_presents_down_a_tree_then_watches_one() {
    app_presents_down_a_tree();
    app_watches_a_tree_and_is_put_on_stage();
}

/// A viewer of the app's tree, joined by its invite.
fn viewer(invite: &str, name: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "join",
        "--invite",
        invite,
        "--name",
        name,
        "--json",
        "--bind-ip",
        "127.0.0.1",
        "--topology",
        "tree",
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(&args);
    let id = proc.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("an id")
        .to_owned();
    (proc, id)
}

fn app_presents_down_a_tree() {
    let xvfb = Xvfb::start();
    let (_driver, app, config) = support::start_hosting_app(&xvfb, "tree-presenter");
    let name = wait_for(LONG, "the join screen", || app.find("#join-name"));
    app.type_text(&name, "Hana");
    app.type_text(&app.find("#join-room").expect("a room field"), "town-hall");
    app.execute(
        "const s = document.querySelector('#join-shape'); s.value = 'tree'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    app.click(&app.find("#host-button").expect("a host button"));
    let invite = support::value_of(&app, "#invite-link", "the invite link");
    app.click(&app.find("#invite-close").expect("a close button"));
    // The host of a tree room is its root: the stage panel, and no hand of its own.
    wait_for(LONG, "the stage panel", || {
        app.find("#tree-stage")
            .filter(|e| app.property(e, "hidden") == json!(false))
    });
    let hand_button = app.find("#hand-button").expect("a hand button");
    assert_eq!(app.property(&hand_button, "hidden"), json!(true));

    let wav = std::env::temp_dir().join(format!("plenum-tree-app-{}.wav", std::process::id()));
    let record = wav.to_str().expect("a UTF-8 temp path").to_owned();
    let (mut vic, vic_id) = viewer(&invite, "Vic", &["--audio", "sine:660"]);
    let (mut wes, _) = viewer(&invite, "Wes", &["--record-audio", &record]);
    for (proc, who) in [(&mut vic, "Vic"), (&mut wes, "Wes")] {
        proc.expect(LONG, &format!("{who} placed under the presenter"), |v| {
            event(v) == "tree_state" && v["depth"] == 1
        });
    }
    // The server hands out no roster in a tree room: the app names its children by what
    // the server said with their frames.
    let tile = format!(".tile:not(.screen)[data-peer='{vic_id}'] .tile-name");
    wait_for(LONG, "Vic's name on Vic's tile", || {
        (text_of(&app, &tile).as_deref() == Some("Vic")).then_some(())
    });
    // Viewers are not linked to each other: Wes does not hear Vic.
    wait_for(LONG, "a second of Wes's recording", || {
        (recorded_so_far(&wav).len() > SAMPLE_RATE as usize * 2).then_some(())
    });
    assert!(!hears(&wav, HAND), "Wes hears Vic before the stage");

    // Vic raises a hand: the app lists it, and invites Vic to speak.
    vic.cmd(json!({"cmd": "hand"}));
    let accept = format!("#tree-hands .viewer[data-peer='{vic_id}'] .hand-accept");
    let accept = wait_for(LONG, "Vic's hand in the app", || app.find(&accept));
    let listed = text_of(
        &app,
        &format!("#tree-hands .viewer[data-peer='{vic_id}'] .viewer-name"),
    );
    assert_eq!(listed.as_deref(), Some("Vic"));
    app.click(&accept);
    for (proc, who) in [(&mut vic, "Vic"), (&mut wes, "Wes")] {
        proc.expect(LONG, &format!("{who} told Vic is on stage"), |v| {
            event(v) == "stage" && v["speaker"] == vic_id.as_str() && v["name"] == "Vic"
        });
    }
    wait_for(LONG, "the app saying who is on stage", || {
        text_of(&app, "#tree-stage-speaker").filter(|t| t == "Vic is on stage")
    });
    wait_for(LONG, "Wes hearing Vic through the presenter", || {
        hears(&wav, HAND).then_some(())
    });
    assert!(
        app.find(&format!("#tree-hands .viewer[data-peer='{vic_id}']"))
            .is_none()
    );
    painted(&app);
    xvfb.screenshot(&artifacts_dir().join("presenting-down-a-tree.png"));

    // End: nobody on stage.
    app.click(&app.find("#tree-stage-end").expect("an end button"));
    wes.expect(LONG, "the stage ended", |v| {
        event(v) == "stage" && v["speaker"].is_null()
    });
    wait_for(LONG, "the app saying nobody is on stage", || {
        text_of(&app, "#tree-stage-speaker").filter(|t| t == "Nobody is on stage")
    });
    let _ = std::fs::remove_file(&wav);
    let _ = std::fs::remove_dir_all(config);
}

fn app_watches_a_tree_and_is_put_on_stage() {
    let server = cli::serve(&[]);
    let room = "lecture";
    let xvfb = Xvfb::start();
    let mut root = cli::join(
        &server.url,
        room,
        "Rita",
        &[
            "--topology",
            "tree",
            "--root",
            "--secret",
            "s",
            "--max-degree",
            "1",
            "--video",
            "testsrc:320x180@15",
        ],
    );
    // The root's one child: the app comes under it.
    let mut cy = cli::join(&server.url, room, "Cy", &["--topology", "tree"]);
    cy.proc.expect(LONG, "Cy under the root", |v| {
        event(v) == "tree_state" && v["depth"] == 1
    });
    let (_driver, app) = support::app_with_network_panel(
        &xvfb,
        support::app_bin(),
        (&server.url, room),
        &["--shape", "tree"],
        "tree-viewer",
    );
    // The presenter's tile: named as the tree said, its pictures come down the tree.
    let tile = format!(".tile[data-peer='{}']", root.id);
    wait_for(LONG, "the presenter's tile", || {
        let name = text_of(&app, &format!("{tile} .tile-name"))?;
        let state = app.attribute(&app.find(&tile)?, "data-state")?;
        (name == "Rita" && state == "presenting").then_some(())
    });
    // Linked to Cy alone; the presenter comes down the tree.
    wait_for(LONG, "the count of links", || {
        text_of(&app, "#participant-count").filter(|t| t == "Large room · linked to 1")
    });
    // With the network panel and the chat open beside it, the presenter's picture is drawn
    // large enough to see (side panels give way to the tiles).
    let canvas = format!("{tile} canvas.tile-video");
    wait_for(LONG, "the presenter's test pattern", || {
        let script = "const c = document.querySelector(arguments[0]);
            if (!c || !c.width || getComputedStyle(c).display === 'none') return 0;
            if (c.getBoundingClientRect().width < 320) return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const levels = new Set();
            for (let i = 0; i < d.length; i += 4 * 31) levels.add(d[i] >> 3);
            return levels.size;";
        (app.execute(script, json!([canvas])).as_u64() > Some(8)).then_some(())
    });
    painted(&app);
    xvfb.screenshot(&artifacts_dir().join("watching-down-a-tree.png"));
    let hand = wait_for(LONG, "the hand button", || {
        app.find("#hand-button")
            .filter(|e| app.property(e, "hidden") == json!(false))
    });
    app.click(&hand);
    let raised = root.proc.expect(LONG, "the app's hand at the root", |v| {
        event(v) == "hand" && v["name"] == "Ada" && v["raised"] == true
    });
    let ada = raised["peer"].as_str().expect("the app's id").to_owned();
    root.proc.cmd(json!({"cmd": "stage", "peer": ada}));
    wait_for(LONG, "the app on stage", || {
        text_of(&app, "#tree-stage-speaker")
            .filter(|t| t == "You are on stage: every viewer hears your microphone")
    });
    // Its hand has been answered.
    wait_for(LONG, "the hand lowered", || {
        app.find("#hand-button")
            .filter(|e| app.attribute(e, "data-hand").as_deref() == Some("false"))
    });
}
