//! The real app, in its real window under Xvfb, driven through WebDriver, in a room on a
//! real `plenum serve` with headless `plenum join` peers: tiles, chat both ways, shared
//! cursors, whiteboard strokes both ways, undo and clear, a late joiner's board, bad input
//! ignored, and a peer leaving.

use plenum_e2e::app as support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cli::{self, Peer, event};
use support::webdriver::Session;
use support::{Driver, Xvfb, artifacts_dir, click_until, painted, text_of, wait_for};

const LONG: Duration = Duration::from_secs(30);

fn send(peer: &mut Peer, channel: &str, data: Value) {
    peer.proc
        .cmd(json!({"cmd": "send", "channel": channel, "data": data}));
}

/// The next message on `channel` from `from` matching `pred`.
fn expect_msg(
    peer: &mut Peer,
    channel: &str,
    from: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let v = peer.proc.expect(LONG, what, |v| {
        event(v) == "message" && v["channel"] == channel && v["from"] == from && pred(&v["data"])
    });
    v["data"].clone()
}

/// The board's stroke count, as the view reports it.
fn strokes(app: &Session) -> usize {
    app.find("#board")
        .and_then(|b| app.attribute(&b, "data-strokes"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Alpha of the canvas pixel at a board fraction (0 = nothing drawn there).
fn ink_at(app: &Session, x: f64, y: f64) -> u64 {
    let script = "const c = document.querySelector('.board-canvas');
        const ctx = c.getContext('2d');
        const px = ctx.getImageData(Math.floor(arguments[0] * c.width), Math.floor(arguments[1] * c.height), 1, 1).data;
        return px[3];";
    app.execute(script, json!([x, y])).as_u64().unwrap_or(0)
}

fn circle(cx: f64, cy: f64, r: f64, n: usize) -> Vec<[f64; 2]> {
    (0..=n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            [
                ((cx + r * a.cos() * 0.625) * 1e4).round() / 1e4,
                ((cy + r * a.sin()) * 1e4).round() / 1e4,
            ]
        })
        .collect()
}

#[test]
fn app_joins_a_room_with_cli_peers() {
    let server = cli::serve(&[]);
    let room = "e2e";
    let xvfb = Xvfb::start();
    let mut ada = cli::join(&server.url, room, "Ada", &[]);
    // Bob can share the screen the app is shown on.
    let mut bob = cli::join_env(
        &server.url,
        room,
        "Bob",
        &[],
        &[("DISPLAY", xvfb.display.as_str())],
    );

    let config = std::env::temp_dir().join(format!("plenum-e2e-{}", std::process::id()));
    let driver = Driver::start(
        &xvfb.display,
        &[("XDG_CONFIG_HOME", config.to_str().unwrap())],
    );
    let args: Vec<String> = ["--server", &server.url, "--room", room, "--name", "Carol"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let app = Session::start(driver.port, support::app_bin().as_ref(), &args);
    let shots = artifacts_dir();

    // Both peers' tiles appear and connect; the CLI peers see the app join.
    wait_for(LONG, "the call view", || app.find("#call"));
    for peer in [&ada, &bob] {
        let css = format!(".tile[data-peer='{}'] .tile-state", peer.id);
        wait_for(LONG, "a connected tile per peer", || {
            text_of(&app, &css).filter(|t| t == "Connected")
        });
        assert_eq!(
            text_of(&app, &format!(".tile[data-peer='{}'] .tile-name", peer.id)),
            Some(peer.name.clone())
        );
    }
    let app_id = ada.proc.expect(LONG, "the app joins", |v| {
        event(v) == "peer_join" && v["name"] == "Carol"
    })["peer"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.proc.expect(LONG, "the app joins", |v| {
        event(v) == "peer_join" && v["peer"] == app_id.as_str()
    });
    assert_eq!(
        text_of(&app, "#participant-count").as_deref(),
        Some("3 people")
    );
    // The engine's ping reaches the tiles.
    let rtt = format!(".tile[data-peer='{}'] .tile-rtt", ada.id);
    wait_for(LONG, "a latency on Ada's tile", || {
        text_of(&app, &rtt).filter(|t| t.ends_with(" ms"))
    });

    // Chat, app -> peers.
    let input = app.find("#chat-input").unwrap();
    app.type_text(&input, "hello from the app");
    app.click(&app.find("#chat-send").unwrap());
    for peer in [&mut ada, &mut bob] {
        expect_msg(peer, "chat", &app_id, "the app's chat message", |d| {
            d["text"] == "hello from the app"
        });
    }
    wait_for(LONG, "own message shown", || {
        text_of(&app, ".chat-msg.own .chat-text").filter(|t| t == "hello from the app")
    });

    // Chat, peer -> app: shown with the name, the link clickable, markup shown as text.
    send(
        &mut ada,
        "chat",
        json!({"text": "hi Carol, notes at https://example.com/notes <b>bold?</b>"}),
    );
    let msg_css = format!(".chat-msg[data-from='{}']", ada.id);
    wait_for(LONG, "Ada's chat message", || {
        text_of(&app, &format!("{msg_css} .chat-text")).filter(|t| t.contains("notes at"))
    });
    assert_eq!(
        text_of(&app, &format!("{msg_css} .chat-name")).as_deref(),
        Some("Ada")
    );
    let link = app.find(&format!("{msg_css} a")).expect("a link element");
    assert_eq!(
        app.attribute(&link, "href").as_deref(),
        Some("https://example.com/notes")
    );
    assert!(
        app.find(&format!("{msg_css} b")).is_none(),
        "markup must not be rendered"
    );
    assert!(
        text_of(&app, &format!("{msg_css} .chat-text"))
            .unwrap()
            .contains("<b>bold?</b>")
    );

    // A peer's cursor moves a named cursor element.
    send(&mut ada, "cursor", json!({"t": "at", "x": 0.25, "y": 0.75}));
    let cursor = format!(".cursor[data-peer='{}']", ada.id);
    wait_for(LONG, "Ada's cursor", || app.find(&cursor));
    assert_eq!(
        text_of(&app, &format!("{cursor} .cursor-name")).as_deref(),
        Some("Ada")
    );
    let at = |app: &Session| {
        let el = app.find(&cursor)?;
        Some((app.attribute(&el, "data-x")?, app.attribute(&el, "data-y")?))
    };
    wait_for(LONG, "cursor at 0.25,0.75", || {
        at(&app).filter(|p| p == &("0.2500".into(), "0.7500".into()))
    });
    send(&mut ada, "cursor", json!({"t": "at", "x": 0.6, "y": 0.4}));
    wait_for(LONG, "cursor moved", || {
        at(&app).filter(|p| p == &("0.6000".into(), "0.4000".into()))
    });
    send(&mut bob, "cursor", json!({"t": "at", "x": 0.8, "y": 0.2}));
    wait_for(LONG, "Bob's cursor", || {
        app.find(&format!(".cursor[data-peer='{}']", bob.id))
    });

    // A peer's stroke appears on the board (in the model and as ink on the canvas).
    let ring = circle(0.3, 0.45, 0.18, 48);
    send(
        &mut ada,
        "board",
        json!({"t": "begin", "seq": 0, "clock": 1, "tool": "pen", "colour": "#e11d48", "width": 6, "points": ring[..10]}),
    );
    send(
        &mut ada,
        "board",
        json!({"t": "points", "seq": 0, "from": 10, "points": ring[10..]}),
    );
    send(&mut ada, "board", json!({"t": "end", "seq": 0}));
    wait_for(LONG, "Ada's stroke on the board", || {
        (strokes(&app) == 1).then_some(())
    });
    let [x0, y0] = ring[0];
    wait_for(LONG, "ink where Ada drew", || {
        (ink_at(&app, x0, y0) > 0).then_some(())
    });
    assert_eq!(ink_at(&app, 0.95, 0.95), 0, "no ink where nobody drew");

    // Bad input from a peer is ignored (and counted), and the board keeps working.
    send(
        &mut ada,
        "board",
        json!({"t": "begin", "seq": 1, "clock": 2, "tool": "laser"}),
    );
    send(&mut ada, "board", json!("not a board message"));
    send(
        &mut ada,
        "board",
        json!({"t": "begin", "seq": 1, "clock": 2, "tool": "pen", "colour": "#000000", "width": 3, "points": [[2.0, 0.5]]}),
    );
    send(&mut ada, "cursor", json!({"t": "at", "x": 5, "y": 0}));
    send(&mut ada, "chat", json!({"words": "no text"}));
    let ignored = |app: &Session| {
        app.find("#call")
            .and_then(|c| app.attribute(&c, "data-ignored"))
            .and_then(|n| n.parse::<u32>().ok())
    };
    wait_for(LONG, "five bad messages ignored", || {
        ignored(&app).filter(|n| *n == 5)
    });
    let wave: Vec<[f64; 2]> = (0..=40)
        .map(|i| {
            [
                0.55 + i as f64 * 0.01,
                0.3 + 0.08 * ((i as f64) / 4.0).sin(),
            ]
        })
        .collect();
    send(
        &mut bob,
        "board",
        json!({"t": "begin", "seq": 0, "clock": 2, "tool": "pen", "colour": "#2563eb", "width": 8, "points": wave}),
    );
    send(&mut bob, "board", json!({"t": "end", "seq": 0}));
    wait_for(LONG, "Bob's stroke after the bad input", || {
        (strokes(&app) == 2).then_some(())
    });
    wait_for(LONG, "the cursor still where it was", || {
        at(&app).filter(|p| p == &("0.6000".into(), "0.4000".into()))
    });

    // A stroke drawn in the app reaches both peers.
    support::draw_zigzag(&app, 13);
    for peer in [&mut ada, &mut bob] {
        let begin = expect_msg(peer, "board", &app_id, "the app's stroke begins", |d| {
            d["t"] == "begin"
        });
        assert_eq!(begin["tool"], "pen");
        expect_msg(peer, "board", &app_id, "the app's stroke ends", |d| {
            d["t"] == "end" && d["seq"] == begin["seq"]
        });
    }
    wait_for(LONG, "three strokes", || (strokes(&app) == 3).then_some(()));
    send(
        &mut bob,
        "chat",
        json!({"text": "Nice zigzag! I'll add a caption later."}),
    );
    wait_for(LONG, "Bob's message", || {
        app.find(&format!(".chat-msg[data-from='{}']", bob.id))
    });
    xvfb.screenshot(&shots.join("call-three-participants.png"));

    // Audio: a peer publishing a tone gets a speaking ring; muting it shows the muted icon.
    ada.proc.cmd(json!({"cmd": "audio", "source": "sine:440"}));
    let ada_tile = format!(".tile[data-peer='{}']", ada.id);
    let tile_attr =
        |app: &Session, name: &str| app.find(&ada_tile).and_then(|t| app.attribute(&t, name));
    wait_for(LONG, "Ada's speaking ring", || {
        tile_attr(&app, "data-speaking").filter(|v| v == "true")
    });
    xvfb.screenshot(&shots.join("call-speaking.png"));

    // Identity: the app shows the same safety code for Ada as Ada's side shows for the
    // app; marking her verified lights her shield.
    ada.proc.cmd(json!({"cmd": "peers"}));
    let peers = ada
        .proc
        .expect(LONG, "Ada's peers", |v| cli::event(v) == "peers");
    let code = peers["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["peer"] == app_id.as_str()))
        .and_then(|p| p["safety_code"].as_str())
        .expect("Ada's safety code for the app")
        .to_owned();
    let shield = format!("{ada_tile} .tile-safety");
    let button = wait_for(LONG, "Ada's shield", || app.find(&shield));
    app.click(&button);
    let shown = wait_for(LONG, "the safety code", || app.find("#safety-code"));
    assert_eq!(app.text(&shown), code, "one code on both sides");
    xvfb.screenshot(&shots.join("call-safety-code.png"));
    app.click(&app.find("#safety-verify").unwrap());
    wait_for(LONG, "Ada verified", || {
        app.find(&format!("{shield}[data-verified='true']"))
    });
    ada.proc.cmd(json!({"cmd": "mute"}));
    wait_for(LONG, "Ada's muted icon", || {
        tile_attr(&app, "data-muted").filter(|v| v == "true")
    });
    let muted_icon = format!("{ada_tile} .tile-muted");
    assert_eq!(
        app.execute(
            "return document.querySelector(arguments[0]).hidden",
            json!([muted_icon])
        ),
        json!(false)
    );
    wait_for(LONG, "the ring gone when muted", || {
        tile_attr(&app, "data-speaking").filter(|v| v == "false")
    });
    // Our microphone: this machine has no capture device, so turning it on says so clearly.
    app.click(&app.find("#mic-button").unwrap());
    wait_for(LONG, "a device error", || {
        text_of(&app, "#toast")
            .filter(|t| t.to_lowercase().contains("audio device") || t.contains("unavailable"))
    });

    // Video: a peer's test pattern shows on its tile as non-blank pixels that change.
    bob.proc
        .cmd(json!({"cmd": "video", "source": "testsrc:640x360@30"}));
    let bob_canvas = format!(".tile[data-peer='{}'] canvas.tile-video", bob.id);
    let sample = |app: &Session| -> Option<(u64, u64)> {
        let script = "const c = document.querySelector(arguments[0]);
            if (!c || !c.width || getComputedStyle(c).display === 'none') return null;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let sum = 0; const levels = new Set();
            for (let i = 0; i < d.length; i += 4 * 31) { sum += d[i] + d[i + 1] + d[i + 2]; levels.add(d[i] >> 3); }
            return [sum, levels.size];";
        let v = app.execute(script, json!([bob_canvas]));
        Some((v[0].as_u64()?, v[1].as_u64()?))
    };
    let first = wait_for(LONG, "Bob's video on his tile", || {
        sample(&app).filter(|(_, levels)| *levels > 8)
    });
    wait_for(LONG, "Bob's video moving", || {
        sample(&app).filter(|(sum, levels)| *sum != first.0 && *levels > 8)
    });
    click_until(&app, "#mode-button", LONG, "the grid", || {
        app.find(".stage[data-mode='grid']")
    });
    painted(&app);
    xvfb.screenshot(&shots.join("call-video.png"));

    // Call quality: Bob's tile grades his link, and the statistics panel shows the figures
    // the engine measures, his picture among them.
    let bob_quality = format!(".tile[data-peer='{}'] .tile-quality", bob.id);
    wait_for(LONG, "a grade on Bob's tile", || {
        let grade = app.attribute(&app.find(&bob_quality)?, "data-grade")?;
        ["good", "fair", "poor"]
            .contains(&grade.as_str())
            .then_some(())
    });
    app.click(&app.find("#stats-button").unwrap());
    let bob_card = format!("#stats-panel .stats-card[data-peer='{}']", bob.id);
    wait_for(
        LONG,
        "Bob's picture and its bytes in the statistics",
        || {
            text_of(&app, &bob_card)
                .filter(|t| t.contains("Their camera640×360") && !t.contains("Receiving0 kbit/s"))
        },
    );
    painted(&app);
    xvfb.screenshot(&shots.join("call-statistics.png"));
    app.click(&app.find("#stats-button").unwrap());

    // Bob shares his screen (the one the app is on): the app shows it large, the others in
    // a strip; the user can switch to the grid and back; when he stops, the grid returns.
    bob.proc.cmd(json!({"cmd": "screen", "source": "default"}));
    let screen_tile = format!(".tile[data-peer='{}/screen']", bob.id);
    wait_for(LONG, "the presenter layout", || {
        app.find("#tiles[data-layout='presenter']")
    });
    let first_tile = app.execute(
        "return document.querySelector('#tiles').firstElementChild.dataset.peer",
        json!([]),
    );
    assert_eq!(first_tile, json!(format!("{}/screen", bob.id)));
    wait_for(LONG, "pictures of Bob's screen", || {
        let frames = app.attribute(&app.find(&screen_tile)?, "data-frames")?;
        (frames.parse::<u32>().ok()? >= 3).then_some(())
    });
    painted(&app);
    xvfb.screenshot(&shots.join("call-screen-share.png"));
    click_until(&app, "#layout-button", LONG, "the grid by choice", || {
        app.find("#tiles[data-layout='grid']")
    });
    click_until(
        &app,
        "#layout-button",
        LONG,
        "the presenter layout again",
        || app.find("#tiles[data-layout='presenter']"),
    );
    bob.proc.cmd(json!({"cmd": "screen", "source": "none"}));
    wait_for(LONG, "the grid after the share", || {
        app.find("#tiles[data-layout='grid']")
    });
    assert!(app.find(&screen_tile).is_none(), "the screen tile is gone");
    assert!(
        app.find("#layout-button[hidden]").is_some(),
        "no layout choice without a shared screen"
    );
    app.click(&app.find("#mode-button").unwrap());

    // A peer that joins late receives the board from the app.
    let mut cy = cli::join(&server.url, room, "Cy", &[]);
    let sync = expect_msg(&mut cy, "board", &app_id, "the board sync", |d| {
        d["t"] == "sync"
    });
    let authors: Vec<&str> = sync["strokes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors.len(), 3, "{sync}");
    for who in [ada.id.as_str(), bob.id.as_str(), app_id.as_str()] {
        assert!(
            authors.contains(&who),
            "stroke of {who} missing from the sync: {sync}"
        );
    }
    assert_eq!(
        sync["strokes"][0]["points"].as_array().unwrap().len(),
        ring.len()
    );

    // Undo takes back the app's stroke for everyone; clear asks first, then clears for everyone.
    app.click(&app.find("#tool-undo").unwrap());
    expect_msg(&mut ada, "board", &app_id, "undo", |d| d["t"] == "undo");
    wait_for(LONG, "two strokes after undo", || {
        (strokes(&app) == 2).then_some(())
    });
    app.click(&app.find("#tool-clear").unwrap());
    let confirm = wait_for(LONG, "the clear confirmation", || {
        app.find("#confirm-clear")
    });
    assert_eq!(strokes(&app), 2, "nothing cleared before confirming");
    app.click(&confirm);
    expect_msg(&mut bob, "board", &app_id, "clear", |d| d["t"] == "clear");
    wait_for(LONG, "an empty board", || {
        (strokes(&app) == 0).then_some(())
    });

    // A peer leaving removes its tile and its cursor.
    bob.proc.cmd(json!({"cmd": "leave"}));
    let bob_tile = format!(".tile[data-peer='{}']", bob.id);
    let bob_cursor = format!(".cursor[data-peer='{}']", bob.id);
    wait_for(LONG, "Bob's tile and cursor gone", || {
        (app.find(&bob_tile).is_none() && app.find(&bob_cursor).is_none()).then_some(())
    });
    assert!(
        app.find(&format!(".tile[data-peer='{}']", ada.id))
            .is_some()
    );

    // Leaving returns to the join screen, which remembers the name and the room.
    app.click(&app.find("#leave-button").unwrap());
    ada.proc.expect(LONG, "the app leaves", |v| {
        event(v) == "peer_leave" && v["peer"] == app_id.as_str()
    });
    let name = wait_for(LONG, "the join screen", || app.find("#join-name"));
    assert_eq!(app.property(&name, "value"), json!("Carol"));
    wait_for(LONG, "the room among recent rooms", || {
        text_of(&app, "#recent-rooms").filter(|t| t.contains(room))
    });
    let _ = std::fs::remove_dir_all(config);
}
