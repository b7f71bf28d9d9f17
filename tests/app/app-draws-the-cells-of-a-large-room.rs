//! The real app under Xvfb joins a large (cellular) room that sixteen CLI peers created
//! with cells of at most three: its network panel draws the room's cells, the app's own
//! cell and its bridges, and follows when the room changes. The screenshot goes to
//! docs/screenshots/network-cells.png when PLENUM_ARTIFACTS names that directory. A peer in
//! another cell presents: the app shows its tile and the pictures that cross the cells
//! (docs/screenshots/presenter-across-cells.png); sharing its screen presents it too. And a room
//! the app creates as it does by default grows into cells past eight people and back.

use plenum_e2e::app as support;

use std::sync::Mutex;
use std::time::Duration;

use support::cli::{self, Peer};
use support::{Xvfb, app_with_network_panel, artifacts_dir, network_attr as panel, wait_for};

const LONG: Duration = Duration::from_secs(40);

/// One app and its crowd at a time: two on two cores would test the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn app_draws_the_cells_of_a_large_room() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = cli::serve(&[]);
    let room = "town-hall";
    let xvfb = Xvfb::start();
    let cells = ["--topology", "cells", "--cell-size", "3"];
    // Any of them can share the screen the app is shown on.
    let display = [("DISPLAY", xvfb.display.as_str())];
    let mut peers: Vec<Peer> = (0..16)
        .map(|i| cli::join_env(&server.url, room, &format!("Peer {i}"), &cells, &display))
        .collect();
    let (_driver, app) =
        app_with_network_panel(&xvfb, support::app_bin(), (&server.url, room), &[], "cells");

    // Seventeen peers in cells of at most three: nine cells (radices 3 x 3), the app in one
    // of them.
    wait_for(LONG, "the cells drawn", || {
        let cells = panel(&app, "data-cells")?;
        (cells >= 5 && app.find_all("#network-panel circle.network-cell").len() as u64 == cells)
            .then_some(())
    });
    let own = app.find_all("#network-panel circle.network-cell.own");
    assert_eq!(own.len(), 1, "exactly one cell is ours");
    assert_eq!(app.find_all("#network-panel circle.network-me").len(), 1);
    let caption = app.text(&app.find("#network-caption").expect("a caption"));
    assert!(caption.starts_with("Large room:"), "{caption}");

    // A broadcast from every peer tells the app where each sits: the ring fills in.
    for p in &mut peers {
        p.proc
            .cmd(serde_json::json!({"cmd": "mesh_send", "data": {"hello": p.name}}));
    }
    wait_for(LONG, "cells known from broadcasts", || {
        (app.find_all("#network-panel circle.network-cell.known")
            .len()
            >= 4)
            .then_some(())
    });
    // Bridges: a line per bridge of ours, to a cell marked as bridged.
    let bridges = panel(&app, "data-bridges").unwrap_or(0) as usize;
    assert_eq!(
        app.find_all("#network-panel line.network-bridge").len(),
        bridges
    );
    if bridges > 0 {
        assert!(
            !app.find_all("#network-panel circle.network-cell.bridged")
                .is_empty()
        );
    }

    // A peer the app is not linked to (in another cell) presents the test pattern: the
    // app shows it a tile of its own, and its pictures, which cross the cells.
    let far = peers
        .iter()
        .position(|p| app.find(&format!(".tile[data-peer='{}']", p.id)).is_none())
        .expect("a peer the app is not linked to");
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "video", "source": "testsrc:320x180@15"}));
    peers[far].proc.cmd(serde_json::json!({"cmd": "present"}));
    let tile = format!(".tile[data-peer='{}']", peers[far].id);
    wait_for(LONG, "the presenter's tile", || {
        let name = support::text_of(&app, &format!("{tile} .tile-name"))?;
        let state = app.attribute(&app.find(&tile)?, "data-state")?;
        (name == peers[far].name && state == "presenting").then_some(())
    });
    let says = format!("{} presents", peers[far].name);
    wait_for(LONG, "the top bar naming the presenter", || {
        support::text_of(&app, "#room-presenter-pill").filter(|t| *t == says)
    });
    let canvas = format!("{tile} canvas.tile-video");
    wait_for(LONG, "the presenter's test pattern", || {
        let script = "const c = document.querySelector(arguments[0]);
            if (!c || !c.width || getComputedStyle(c).display === 'none') return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const levels = new Set();
            for (let i = 0; i < d.length; i += 4 * 31) levels.add(d[i] >> 3);
            return levels.size;";
        (app.execute(script, serde_json::json!([canvas])).as_u64() > Some(8)).then_some(())
    });
    xvfb.screenshot(&artifacts_dir().join("presenter-across-cells.png"));
    // It stops: the tile goes with it.
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "present", "on": false}));
    wait_for(LONG, "the presenter's tile gone", || {
        app.find(&tile).is_none().then_some(())
    });
    // Sharing a screen in a large room presents it: the app shows the screen of a peer in
    // another cell first and large.
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "screen", "source": "default"}));
    let screen_tile = format!(".tile[data-peer='{}/screen']", peers[far].id);
    wait_for(LONG, "pictures of the shared screen", || {
        let frames = app.attribute(&app.find(&screen_tile)?, "data-frames")?;
        (frames.parse::<u32>().ok()? >= 3).then_some(())
    });
    let first_tile = app.execute(
        "return document.querySelector('#tiles').firstElementChild.dataset.peer",
        serde_json::json!([]),
    );
    assert_eq!(
        first_tile,
        serde_json::json!(format!("{}/screen", peers[far].id))
    );
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "screen", "source": "none"}));
    wait_for(LONG, "the shared screen gone", || {
        app.find(&screen_tile).is_none().then_some(())
    });
    // A peer in another cell speaks: its voice crosses the cells, and the app shows who it
    // is, on stage; when it falls quiet its seat empties and the tile goes.
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "audio", "source": "sine:440"}));
    wait_for(LONG, "the speaker on stage", || {
        let name = support::text_of(&app, &format!("{tile} .tile-name"))?;
        let state = app.attribute(&app.find(&tile)?, "data-state")?;
        (name == peers[far].name && state == "on_stage").then_some(())
    });
    wait_for(LONG, "the speaker's tile lit as it speaks", || {
        let speaking = app.attribute(&app.find(&tile)?, "data-speaking")?;
        (speaking == "true").then_some(())
    });
    xvfb.screenshot(&artifacts_dir().join("speaker-from-another-cell.png"));
    peers[far]
        .proc
        .cmd(serde_json::json!({"cmd": "audio", "source": "none"}));
    wait_for(LONG, "the speaker's tile gone", || {
        app.find(&tile).is_none().then_some(())
    });

    // The room grows past its layout (28 peers outgrow nine cells of three): the panel
    // follows the new one.
    let before = panel(&app, "data-cells").unwrap_or(0);
    let more: Vec<Peer> = (16..27)
        .map(|i| cli::join(&server.url, room, &format!("Peer {i}"), &cells))
        .collect();
    wait_for(LONG, "a new layout drawn", || {
        let now = panel(&app, "data-cells")?;
        (now > before && app.find_all("#network-panel circle.network-cell").len() as u64 == now)
            .then_some(())
    });
    xvfb.screenshot(&artifacts_dir().join("network-cells.png"));
    drop(more);
}

/// The app creates a room as it does by default (no shape given): one cell, a full mesh,
/// up to eight people; at ten the room is in cells and the app says it is a large room;
/// when five leave it is one cell again and reads as a call of five.
#[test]
fn a_room_the_app_creates_grows_into_cells_and_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = cli::serve(&[]);
    let room = "grows";
    let xvfb = Xvfb::start();
    let (_driver, app) =
        app_with_network_panel(&xvfb, support::app_bin(), (&server.url, room), &[], "grows");
    let count = || support::text_of(&app, "#participant-count").unwrap_or_default();
    let mut peers: Vec<Peer> = (0..4)
        .map(|i| cli::join(&server.url, room, &format!("Peer {i}"), &[]))
        .collect();
    wait_for(LONG, "a call of five in one cell", || {
        (panel(&app, "data-cells")? == 1 && count() == "5 people").then_some(())
    });
    peers.extend((4..9).map(|i| cli::join(&server.url, room, &format!("Peer {i}"), &[])));
    wait_for(LONG, "a large room of ten in cells", || {
        (panel(&app, "data-cells")? > 1 && count().starts_with("Large room")).then_some(())
    });
    for mut peer in peers.drain(4..) {
        peer.proc.cmd(serde_json::json!({"cmd": "leave"}));
        assert_eq!(peer.proc.wait_exit(LONG), Some(0));
    }
    wait_for(LONG, "a call of five in one cell again", || {
        (panel(&app, "data-cells")? == 1 && count() == "5 people").then_some(())
    });
}
