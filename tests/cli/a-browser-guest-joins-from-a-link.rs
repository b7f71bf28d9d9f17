//! A browser joins a room from a link: headless Chromium (Debian's, driven by
//! `tests/browser/guest.mjs`) opens `/r/ROOM` on a real `plenum serve`, which hands out the
//! guest page built into it, the app's own call view over the browser's WebRTC. With two CLI
//! peers: the same safety code on both sides; chat, cursor and a whiteboard stroke both
//! ways, and the page's board handed to a peer that comes later; the CLI peer's tone heard
//! (the page's analyser says it speaks) and its test pattern shown in the page; the page's
//! fake microphone recorded at its frequency, its camera's and its shared screen's pictures
//! saved by the CLI peer; the page's leave seen by both. Then: Firefox; the largest message
//! both ways; https and wss; room tokens, passwords and access codes; a server restart; a presentation
//! watched from a presenter's link.

use plenum_e2e::cli as common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{MEDIA_WAIT, Proc, event, serve, spawn_join, spawn_join_env, wait_for};
use plenum_media::{AudioSource, SAMPLE_RATE, Sine, WavRecorder};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);
/// The page's fake microphone plays this tone; the CLI peer sends 440 Hz.
const PAGE_TONE_HZ: f64 = 660.0;

/// The driver: a Chromium page speaking JSON lines on stdio, as `plenum join --json` does.
fn guest(url: &str, audio: &Path) -> Proc {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/guest.mjs");
    Proc::spawn_group(
        "node",
        &[
            driver.to_str().expect("utf-8"),
            "--url",
            url,
            "--audio-file",
            audio.to_str().expect("utf-8"),
        ],
    )
}

fn safety_code_of(peers: &Value, peer: &str) -> Option<String> {
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["peer"] == peer && p["state"] == "connected")?["safety_code"]
        .as_str()
        .map(str::to_owned)
}

/// The safety code the page shows for the CLI peer `cli_id` once linked, which must be the
/// one the CLI peer shows for the guest.
fn one_safety_code(page: &mut Proc, cli: &mut Proc, cli_id: &str, guest_id: &str) {
    let code = page.expect(LONG, "the CLI peer's safety code", |v| {
        event(v) == "peer" && v["peer"] == cli_id && v["safety_code"].is_string()
    })["safety_code"]
        .as_str()
        .expect("code")
        .to_owned();
    let cli_code = wait_for(LONG, "the guest's safety code", || {
        cli.cmd(json!({"cmd": "peers"}));
        let peers = cli.expect(LONG, "peers", |v| event(v) == "peers");
        safety_code_of(&peers, guest_id)
    });
    assert_eq!(code, cli_code, "both sides show one code");
}

fn joined(proc: &mut Proc) -> String {
    proc.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Ten seconds of a tone in bursts, 250 ms on and 250 ms off, for the page's fake microphone
/// (Chromium loops it). The page asks for noise suppression, as a call's microphone should,
/// and that takes a steady tone for noise: it was down 50 dB half a second after it began,
/// where bursts, like speech, pass whole.
fn tone_file(dir: &Path) -> PathBuf {
    let path = dir.join("page-tone.wav");
    let mut samples = vec![0.0; 10 * SAMPLE_RATE as usize];
    Sine::new(PAGE_TONE_HZ, 0.5).read(&mut samples);
    let burst = SAMPLE_RATE as usize / 4;
    for (i, s) in samples.iter_mut().enumerate() {
        if (i / burst) % 2 == 1 {
            *s = 0.0;
        }
    }
    let mut wav = WavRecorder::create(&path).expect("wav created");
    wav.write(&samples).expect("wav written");
    wav.finish().expect("wav finished");
    path
}

/// The camera pictures saved from `peer` (files named after its id).
fn pictures_of(dir: &Path, peer: &str) -> Vec<PathBuf> {
    saved(dir, peer, false)
}

/// The shared-screen pictures saved from `peer`.
fn screens_of(dir: &Path, peer: &str) -> Vec<PathBuf> {
    saved(dir, peer, true)
}

fn saved(dir: &Path, peer: &str, screen: bool) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&peer[..8]) && n.contains("-screen-") == screen)
        })
        .collect()
}

/// A scratch directory of this test process.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-guest-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// The CLI peer sees the guest's link open.
fn sees_link(cli: &mut Proc, guest: &str) -> Value {
    cli.expect(LONG, "the guest's link", |v| {
        event(v) == "peer_join" && v["peer"] == guest
    })
}

/// The page leaves (its driver exits 0); each CLI peer sees it go, then leaves too.
fn page_leaves(mut page: Proc, clis: &mut [&mut Proc], guest: &str) {
    page.cmd(json!({"cmd": "leave"}));
    assert_eq!(page.wait_exit(LONG), Some(0), "the driver ends cleanly");
    for cli in clis {
        cli.expect(LONG, "the guest's leave", |v| {
            event(v) == "peer_leave" && v["peer"] == guest
        });
        cli.cmd(json!({"cmd": "leave"}));
        assert_eq!(cli.wait_exit(LONG), Some(0));
    }
}

fn near(value: &Value, want: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - want).abs() < 0.02)
}

#[test]
fn a_browser_guest_takes_part_in_a_call_with_cli_peers() {
    let dir = scratch("call");
    let recording = dir.join("heard.wav");
    let frames = dir.join("frames");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut ada = spawn_join(
        &server.url,
        "guests",
        "ada",
        &[
            "--audio",
            "sine:440",
            "--video",
            "testsrc:320x180@15",
            "--record-audio",
            recording.to_str().expect("utf-8"),
            "--save-frames",
            frames.to_str().expect("utf-8"),
            "--save-frames-per-second",
            "4",
        ],
    );
    let ada_id = joined(&mut ada);

    let mut page = guest(&format!("{http}/r/guests?name=Guest"), &tone_file(&dir));
    let guest_id = joined(&mut page);
    assert_eq!(guest_id.len(), 40, "a peer id of 40 hex digits: {guest_id}");
    sees_link(&mut ada, &guest_id);

    // One safety code on both sides.
    one_safety_code(&mut page, &mut ada, &ada_id, &guest_id);

    // Chat both ways.
    page.cmd(json!({"cmd": "send", "text": "hello from the browser"}));
    let got = ada.expect(LONG, "the guest's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["from"], guest_id.as_str());
    assert_eq!(got["data"], json!({"text": "hello from the browser"}));
    ada.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "hello from the terminal"}}));
    let got = page.expect(LONG, "ada's chat", |v| event(v) == "message");
    assert_eq!(got["from"], ada_id.as_str());
    assert_eq!(got["data"], json!({"text": "hello from the terminal"}));

    // Cursors both ways.
    page.cmd(json!({"cmd": "cursor", "x": 0.25, "y": 0.75}));
    let got = ada.expect(LONG, "the guest's cursor", |v| {
        event(v) == "message" && v["channel"] == "cursor" && v["data"]["t"] == "at"
    });
    assert_eq!(got["from"], guest_id.as_str());
    assert!(
        near(&got["data"]["x"], 0.25) && near(&got["data"]["y"], 0.75),
        "{got}"
    );
    ada.cmd(json!({"cmd": "send", "channel": "cursor", "data": {"t": "at", "x": 0.5, "y": 0.125}}));
    let got = page.expect(LONG, "ada's cursor", |v| {
        event(v) == "cursor" && v["peer"] == ada_id.as_str()
    });
    assert!(near(&got["x"], 0.5) && near(&got["y"], 0.125), "{got}");

    // A whiteboard stroke each way.
    page.cmd(json!({"cmd": "draw", "points": [[0.1, 0.1], [0.3, 0.2], [0.5, 0.4]]}));
    let begin = ada.expect(LONG, "the guest's stroke", |v| {
        event(v) == "message" && v["channel"] == "board" && v["data"]["t"] == "begin"
    });
    assert_eq!(begin["from"], guest_id.as_str());
    assert_eq!(begin["data"]["tool"], "pen");
    ada.expect(LONG, "the guest's stroke ends", |v| {
        event(v) == "message" && v["channel"] == "board" && v["data"]["t"] == "end"
    });
    page.expect(LONG, "the page's own stroke", |v| {
        event(v) == "board" && v["strokes"] == 1
    });
    for data in [
        json!({"t": "begin", "seq": 0, "clock": 5, "tool": "pen", "colour": "#e11d48", "width": 6, "points": [[0.6, 0.6], [0.7, 0.65]]}),
        json!({"t": "points", "seq": 0, "from": 2, "points": [[0.8, 0.7]]}),
        json!({"t": "end", "seq": 0}),
    ] {
        ada.cmd(json!({"cmd": "send", "channel": "board", "data": data}));
    }
    page.expect(LONG, "ada's stroke on the page", |v| {
        event(v) == "board" && v["strokes"] == 2
    });

    // A peer that comes later is handed the page's board.
    let mut bob = spawn_join(&server.url, "guests", "bob", &[]);
    joined(&mut bob);
    let sync = bob.expect(LONG, "the guest's board", |v| {
        event(v) == "message"
            && v["channel"] == "board"
            && v["from"] == guest_id.as_str()
            && v["data"]["t"] == "sync"
    });
    let strokes = sync["data"]["strokes"].as_array().expect("strokes");
    assert_eq!(strokes.len(), 2, "both strokes: {sync}");
    assert!(
        strokes
            .iter()
            .any(|s| s["author"] == guest_id.as_str() && s["done"] == true),
        "{sync}"
    );

    // Media both ways.
    page.cmd(json!({"cmd": "microphone"}));
    page.cmd(json!({"cmd": "camera"}));
    // Ada's test pattern drawn on her tile, and her tone heard by the page's analyser.
    wait_for(MEDIA_WAIT, "ada's pictures and tone in the page", || {
        page.cmd(json!({"cmd": "media"}));
        let media = page.expect(LONG, "media", |v| event(v) == "media");
        let pictures = media["frames"][ada_id.as_str()].as_u64().unwrap_or(0);
        let speaking = media["speaking"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p == ada_id.as_str()));
        (pictures >= 10 && speaking).then_some(())
    });
    let inbound = wait_for(MEDIA_WAIT, "the page's inbound media", || {
        page.cmd(json!({"cmd": "stats"}));
        let stats = page.expect(LONG, "stats", |v| event(v) == "stats");
        let inbound = stats["inbound"].as_array().cloned().unwrap_or_default();
        let audio = inbound
            .iter()
            .any(|s| s["kind"] == "audio" && s["packets_received"].as_u64() > Some(50));
        let video = inbound
            .iter()
            .any(|s| s["kind"] == "video" && s["frames_decoded"].as_u64() > Some(10));
        (audio && video).then_some(inbound)
    });
    eprintln!("page inbound: {inbound:?}");
    wait_for(MEDIA_WAIT, "the page's camera at ada", || {
        (pictures_of(&frames, &guest_id).len() >= 4).then_some(())
    });
    // The page shares its (fake) screen beside the camera.
    page.cmd(json!({"cmd": "share"}));
    let shared = ada.expect(LONG, "the page's screen", |v| {
        event(v) == "stream_add"
            && v["peer"] == guest_id.as_str()
            && v["metadata"]["type"] == "screen"
    });
    assert_eq!(shared["kind"], "video");
    wait_for(MEDIA_WAIT, "the page's screen at ada", || {
        (screens_of(&frames, &guest_id).len() >= 3).then_some(())
    });
    common::wait_heard_tone(&recording, PAGE_TONE_HZ, 5.0, "ada hears the page's tone");

    // The page leaves; both CLI peers see it.
    page_leaves(page, &mut [&mut ada, &mut bob], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_guest_page_over_https_chats_with_a_peer_on_wss() {
    let dir = scratch("tls");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    let cert_path = cert.to_str().expect("utf-8");
    let server = serve(&[
        "--tls-cert",
        cert_path,
        "--tls-key",
        key.to_str().expect("utf-8"),
    ]);
    assert!(server.url.starts_with("wss://"), "{}", server.url);

    // A peer that does not trust the certificate cannot join; one that does, can.
    let mut doubter = spawn_join(&server.url, "secure", "eve", &[]);
    assert_eq!(
        doubter.wait_exit(LONG),
        Some(2),
        "an untrusted certificate is refused"
    );
    let mut ada = spawn_join_env(
        &server.url,
        "secure",
        "ada",
        &[],
        &[("SSL_CERT_FILE", cert_path)],
    );
    let ada_id = joined(&mut ada);

    let https = server.url.replacen("wss://", "https://", 1);
    let mut page = guest(&format!("{https}/r/secure?name=Guest"), &tone_file(&dir));
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);
    page.cmd(json!({"cmd": "send", "text": "hello over https"}));
    let got = ada.expect(LONG, "the guest's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["data"], json!({"text": "hello over https"}));
    ada.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "and back"}}));
    let got = page.expect(LONG, "ada's chat", |v| event(v) == "message");
    assert_eq!(got["from"], ada_id.as_str());

    page_leaves(page, &mut [&mut ada], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The largest payload the protocol allows (`plenum::MAX_MESSAGE_BYTES` with the longest
/// channel name: an envelope of 262,144 bytes, the SCTP `max-message-size` both ends
/// announce) crosses whole from the browser to a Rust peer and back; one byte more is
/// refused before it leaves, on either side; the link carries on.
#[test]
fn the_largest_message_crosses_between_a_browser_and_a_rust_peer() {
    let dir = scratch("big");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut ada = spawn_join(&server.url, "largest", "ada", &[]);
    let ada_id = joined(&mut ada);
    let mut page = guest(&format!("{http}/r/largest?name=Guest"), &tone_file(&dir));
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);
    let channel = "abcdefghijkl";
    let largest = plenum::MAX_MESSAGE_BYTES;

    // Browser to Rust: one byte too many is refused in the page; the largest arrives whole.
    page.cmd(json!({"cmd": "payload", "channel": channel, "length": largest + 1}));
    let refused = page.expect(LONG, "the page refuses", |v| {
        event(v) == "error" || event(v) == "sent"
    });
    assert_eq!(refused["code"], "send_failed", "{refused}");
    page.cmd(json!({"cmd": "payload", "channel": channel, "length": largest}));
    let sent = page.expect(LONG, "the page sends", |v| event(v) == "sent");
    assert_eq!(sent["reached"], 1, "{sent}");
    let got = ada.expect(LONG, "the page's largest message", |v| {
        event(v) == "message" && v["channel"] == channel
    });
    assert_eq!(got["from"], guest_id.as_str());
    assert_eq!(got["data"].as_str().map(str::len), Some(largest - 2));

    // Rust to browser: the same two sizes.
    ada.cmd(json!({"cmd": "send", "channel": channel, "data": "b".repeat(largest - 1)}));
    let refused = ada.expect(LONG, "send_failed", |v| event(v) == "error");
    assert_eq!(refused["code"], "send_failed", "{refused}");
    ada.cmd(json!({"cmd": "send", "channel": channel, "data": "a".repeat(largest - 2)}));
    let got = page.expect(LONG, "ada's largest message", |v| {
        event(v) == "message" && v["channel"] == channel
    });
    assert_eq!(got["from"], ada_id.as_str());
    assert_eq!(got["length"], largest - 2);

    // The link is as it was.
    page.cmd(json!({"cmd": "send", "text": "still here"}));
    ada.expect(LONG, "a message after", |v| {
        event(v) == "message" && v["data"]["text"] == "still here"
    });
    assert!(
        !ada.seen.iter().any(|v| event(v) == "peer_leave"),
        "the link went down"
    );
    page_leaves(page, &mut [&mut ada], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Headless Firefox (Debian's firefox-esr, over WebDriver BiDi) joins the same way: one
/// safety code, chat both ways, the CLI peer's tone received, and Firefox's fake microphone
/// (a 1 kHz tone) recorded by the CLI peer at its frequency.
#[test]
fn a_firefox_guest_chats_hears_and_is_heard() {
    let dir = scratch("ff");
    let recording = dir.join("heard.wav");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut ada = spawn_join(
        &server.url,
        "firefox",
        "ada",
        &[
            "--audio",
            "sine:440",
            "--record-audio",
            recording.to_str().expect("utf-8"),
        ],
    );
    let ada_id = joined(&mut ada);
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/firefox-guest.mjs");
    let url = format!("{http}/r/firefox?name=Fox");
    let mut page = Proc::spawn_group("node", &[driver.to_str().expect("utf-8"), "--url", &url]);
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);
    one_safety_code(&mut page, &mut ada, &ada_id, &guest_id);

    page.cmd(json!({"cmd": "send", "text": "hello from firefox"}));
    let got = ada.expect(LONG, "the guest's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["data"], json!({"text": "hello from firefox"}));
    ada.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "hello, fox"}}));
    let got = page.expect(LONG, "ada's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["data"], json!({"text": "hello, fox"}));

    page.cmd(json!({"cmd": "microphone"}));
    wait_for(MEDIA_WAIT, "ada's tone in firefox", || {
        page.cmd(json!({"cmd": "stats"}));
        let stats = page.expect(LONG, "stats", |v| event(v) == "stats");
        stats["inbound"]
            .as_array()?
            .iter()
            .any(|s| s["kind"] == "audio" && s["packets_received"].as_u64() > Some(50))
            .then_some(())
    });
    common::wait_heard_tone(&recording, 1000.0, 10.0, "ada hears firefox's tone");

    page_leaves(page, &mut [&mut ada], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a server that admits only token holders, a page without a token is refused and says
/// why; a viewer token (its name, no publishing) in the link's `#token=` joins a view-only
/// page: no microphone, camera or share buttons, chat still goes.
#[test]
fn room_tokens_admit_guests_and_a_viewer_token_gives_a_view_only_page() {
    let dir = scratch("token");
    let secret = dir.join("secret");
    std::fs::write(&secret, "a secret of more than sixteen bytes").expect("secret");
    let secret = secret.to_str().expect("utf-8");
    let server = serve(&["--token-secret-file", secret]);
    let http = server.url.replacen("ws://", "http://", 1);
    let token = |name: &str, extra: &[&str]| {
        let mut args = vec!["--secret-file", secret, "--room", "tokens", "--name", name];
        args.extend_from_slice(extra);
        common::mint(&args)
    };
    let mut ada = spawn_join(&server.url, "tokens", "x", &["--token", &token("Ada", &[])]);
    joined(&mut ada);

    let mut refused = guest(&format!("{http}/r/tokens?name=Guest"), &tone_file(&dir));
    let error = refused.expect(LONG, "the refusal", |v| event(v) == "error");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("token")),
        "{error}"
    );
    assert_eq!(refused.wait_exit(LONG), Some(1));

    let viewer = token("Vic", &["--viewer"]);
    let mut page = guest(
        &format!("{http}/r/tokens?name=Guest#token={viewer}"),
        &tone_file(&dir),
    );
    let guest_id = joined(&mut page);
    let link = sees_link(&mut ada, &guest_id);
    assert_eq!(link["name"], "Vic", "the token's name: {link}");
    page.cmd(json!({"cmd": "controls"}));
    let controls = page.expect(LONG, "controls", |v| event(v) == "controls");
    assert_eq!(
        controls,
        json!({"event": "controls", "microphone": false, "camera": false, "share": false})
    );
    page.cmd(json!({"cmd": "send", "text": "watching"}));
    let got = ada.expect(LONG, "the viewer's chat", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["data"], json!({"text": "watching"}));

    page_leaves(page, &mut [&mut ada], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server goes away under a call with a guest: the page says so and its link carries on;
/// the server comes back on the same address and the page joins again by itself, so a peer
/// that comes later links with it.
#[test]
fn a_guest_rides_out_a_server_restart() {
    let dir = scratch("restart");
    let mut server = serve(&[]);
    let addr = server.url.strip_prefix("ws://").expect("ws url").to_owned();
    let mut ada = spawn_join(&server.url, "restart", "ada", &[]);
    joined(&mut ada);
    let mut page = guest(
        &format!("http://{addr}/r/restart?name=Guest"),
        &tone_file(&dir),
    );
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);

    server.proc.kill();
    let lost = page.expect(LONG, "the page says the server is gone", |v| {
        event(v) == "status" && v["banner"].as_str().is_some_and(|b| !b.is_empty())
    });
    assert!(
        lost["banner"]
            .as_str()
            .is_some_and(|b| b.contains("server")),
        "{lost}"
    );
    page.cmd(json!({"cmd": "send", "text": "during the outage"}));
    let got = ada.expect(LONG, "chat during the outage", |v| {
        event(v) == "message" && v["channel"] == "chat"
    });
    assert_eq!(got["from"], guest_id.as_str());

    let mut restarted = Proc::spawn(&["serve", "--bind", &addr, "--json"]);
    restarted.expect(LONG, "listening", |v| event(v) == "listening");
    page.expect(LONG, "the page is back", |v| {
        event(v) == "status" && v["banner"] == ""
    });
    let mut bob = spawn_join(&format!("ws://{addr}"), "restart", "bob", &[]);
    let bob_id = joined(&mut bob);
    page.expect(LONG, "bob's link with the page", |v| {
        event(v) == "peer" && v["peer"] == bob_id.as_str() && v["state"] == "connected"
    });
    page_leaves(page, &mut [&mut ada, &mut bob], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A room with a password: the page asks for it, says so when it is wrong, and joins with
/// the right one.
#[test]
fn a_guest_gives_the_rooms_password() {
    let dir = scratch("pw");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut ada = spawn_join(&server.url, "locked", "ada", &["--password", "open sesame"]);
    joined(&mut ada);
    let mut page = guest(&format!("{http}/r/locked?name=Guest"), &tone_file(&dir));
    let asked = page.expect(LONG, "the password form", |v| event(v) == "password_asked");
    assert!(
        asked["notice"]
            .as_str()
            .is_some_and(|n| n.contains("password")),
        "{asked}"
    );
    page.cmd(json!({"cmd": "password", "text": "guess"}));
    let again = page.expect(LONG, "the form again", |v| event(v) == "password_asked");
    assert!(
        again["notice"]
            .as_str()
            .is_some_and(|n| n.contains("not the room's")),
        "{again}"
    );
    page.cmd(json!({"cmd": "password", "text": "open sesame"}));
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);
    page_leaves(page, &mut [&mut ada], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A presenter who asks for an access code: the page from its web link
/// (`?credentials=required`) asks for the code, a wrong one is refused by the presenter and
/// the form comes back saying so, and the right one links.
#[test]
fn a_guest_gives_the_presenters_access_code() {
    let dir = scratch("code");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut presenter = spawn_join(
        &server.url,
        "coded",
        "pres",
        &[
            "--role",
            "publisher",
            "--accept-credentials",
            r#"{"code":"2468"}"#,
        ],
    );
    joined(&mut presenter);
    let mut page = guest(
        &format!("{http}/r/coded?role=viewer&credentials=required&name=Guest"),
        &tone_file(&dir),
    );
    page.expect(LONG, "the access code form", |v| event(v) == "code_asked");
    page.cmd(json!({"cmd": "code", "text": "1357"}));
    let guest_id = joined(&mut page);
    let again = page.expect(LONG, "the form again", |v| event(v) == "code_asked");
    assert!(
        again["notice"]
            .as_str()
            .is_some_and(|n| n.contains("pres did not accept your access code")),
        "{again}"
    );
    assert!(
        !presenter
            .drain_for(Duration::from_millis(200))
            .iter()
            .any(|v| event(v) == "peer_join" && v["peer"] == guest_id.as_str()),
        "the presenter linked to a guest with the wrong code"
    );
    page.cmd(json!({"cmd": "code", "text": "2468"}));
    sees_link(&mut presenter, &guest_id);
    page_leaves(page, &mut [&mut presenter], &guest_id);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A presentation: a CLI presenter, the page opened from the presenter's web link
/// (`?role=viewer`) and a CLI viewer. The page links to the presenter alone, shows its
/// pictures, has nothing to publish, and its raised hand reaches the presenter.
#[test]
fn a_guest_watches_a_presentation_and_raises_a_hand() {
    let dir = scratch("talk");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let mut presenter = spawn_join(
        &server.url,
        "talk",
        "pres",
        &[
            "--role",
            "publisher",
            "--video",
            "testsrc:320x180@15",
            "--audio",
            "sine:440",
        ],
    );
    let presenter_id = joined(&mut presenter);
    let mut viewer = spawn_join(&server.url, "talk", "vic", &["--role", "viewer"]);
    joined(&mut viewer);
    let mut page = guest(
        &format!("{http}/r/talk?role=viewer&name=Guest"),
        &tone_file(&dir),
    );
    let guest_id = joined(&mut page);
    sees_link(&mut presenter, &guest_id);

    wait_for(MEDIA_WAIT, "the presenter's pictures in the page", || {
        page.cmd(json!({"cmd": "media"}));
        let media = page.expect(LONG, "media", |v| event(v) == "media");
        (media["frames"][presenter_id.as_str()].as_u64() >= Some(10)).then_some(())
    });
    page.cmd(json!({"cmd": "controls"}));
    let controls = page.expect(LONG, "controls", |v| event(v) == "controls");
    assert_eq!(
        controls,
        json!({"event": "controls", "microphone": false, "camera": false, "share": false})
    );
    page.cmd(json!({"cmd": "hand"}));
    presenter.expect(LONG, "the guest's raised hand", |v| {
        event(v) == "state" && v["peer"] == guest_id.as_str() && v["state"]["hand"] == true
    });
    // Viewers do not link to each other.
    assert!(
        !viewer
            .drain_for(Duration::from_millis(500))
            .iter()
            .any(|v| event(v) == "peer_join" && v["peer"] == guest_id.as_str()),
        "the other viewer linked to the guest"
    );
    page_leaves(page, &mut [&mut presenter], &guest_id);
    viewer.cmd(json!({"cmd": "leave"}));
    assert_eq!(viewer.wait_exit(LONG), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The room's plan as a peer last printed it: how many cells.
fn cells_seen(cli: &Proc) -> Option<u64> {
    cli.seen
        .iter()
        .rev()
        .find(|v| event(v) == "mesh_state")
        .and_then(|v| v["cells"].as_u64())
}

/// A browser in a cells room (as the app's rooms are, to grow past a mesh). The room is one
/// cell, a full mesh, and the page links to everyone in it; while the page is there the room
/// stays one cell past its cell size, with nobody seated on its stage (a seated voice goes
/// on a track a browser does not play): the page hears the speaker and links to the peers
/// that come. Once the page leaves the room splits, and a browser that comes then is told
/// plainly that the room needs the app.
#[test]
fn a_guest_holds_a_cells_room_in_one_mesh_until_it_leaves() {
    const ROOM: &str = "grows";
    let dir = scratch("cells");
    let server = serve(&[]);
    let http = server.url.replacen("ws://", "http://", 1);
    let cells = ["--topology", "cells", "--cell-size", "3"];
    let mut with_tone = cells.to_vec();
    with_tone.extend(["--audio", "sine:440"]);
    let mut ada = spawn_join(&server.url, ROOM, "ada", &with_tone);
    let ada_id = joined(&mut ada);
    let mut page = guest(&format!("{http}/r/{ROOM}?name=Guest"), &tone_file(&dir));
    let guest_id = joined(&mut page);
    sees_link(&mut ada, &guest_id);

    // Three more: five in a room of cells of three, and the page linked to each.
    let mut others: Vec<(Proc, String)> = (0..3)
        .map(|i| {
            let mut cli = spawn_join(&server.url, ROOM, &format!("p{i}"), &cells);
            let id = joined(&mut cli);
            sees_link(&mut cli, &guest_id);
            (cli, id)
        })
        .collect();
    // Chat both ways: a cells room's message to everyone goes as a broadcast, which the
    // page reads; the page's goes on each of its links.
    for (cli, id) in &mut others {
        cli.cmd(json!({"cmd": "send", "channel": "chat", "data": {"text": "hello guest"}}));
        page.expect(LONG, "a newcomer's chat", |v| {
            event(v) == "message" && v["from"] == id.as_str()
        });
    }
    page.cmd(json!({"cmd": "send", "text": "hello all"}));
    for cli in std::iter::once(&mut ada).chain(others.iter_mut().map(|(cli, _)| cli)) {
        let got = cli.expect(LONG, "the page's chat", |v| {
            event(v) == "message" && v["channel"] == "chat" && v["from"] == guest_id.as_str()
        });
        assert_eq!(got["data"], json!({"text": "hello all"}));
    }
    // Ada speaks, and is heard on her own track.
    wait_for(MEDIA_WAIT, "ada's tone in the page", || {
        page.cmd(json!({"cmd": "media"}));
        let media = page.expect(LONG, "media", |v| event(v) == "media");
        media["speaking"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p == ada_id.as_str()))
            .then_some(())
    });
    ada.drain_for(Duration::ZERO);
    assert_eq!(cells_seen(&ada), Some(1), "held in one cell");
    // Seated while alone, she was unseated as the page came.
    let seats = ada.seen.iter().rev().find(|v| event(v) == "seats");
    assert!(
        seats.is_some_and(|v| v["seats"]
            .as_array()
            .is_some_and(|s| s.iter().all(Value::is_null))),
        "ada's stage while the page was there: {seats:?}"
    );

    // The page goes: the room splits, and ada (who speaks) takes a seat again.
    page.cmd(json!({"cmd": "leave"}));
    assert_eq!(page.wait_exit(LONG), Some(0), "the driver ends cleanly");
    for cli in std::iter::once(&mut ada).chain(others.iter_mut().map(|(cli, _)| cli)) {
        wait_for(LONG, "the room in cells", || {
            cli.drain_for(Duration::from_millis(100));
            (cells_seen(cli) > Some(1)).then_some(())
        });
    }
    wait_for(LONG, "ada seated", || {
        ada.drain_for(Duration::from_millis(100));
        let seats = ada.seen.iter().rev().find(|v| event(v) == "seats")?;
        (seats["seats"][0]["peer"] == ada_id.as_str()).then_some(())
    });

    // A browser now is refused, with the reason.
    let mut late = guest(&format!("{http}/r/{ROOM}?name=Late"), &tone_file(&dir));
    let refused = late.expect(LONG, "the page's refusal", |v| event(v) == "error");
    let message = refused["message"].as_str().unwrap_or("");
    assert!(message.contains("Plenum app"), "{refused}");
    assert_eq!(late.wait_exit(LONG), Some(1));

    for cli in std::iter::once(&mut ada).chain(others.iter_mut().map(|(cli, _)| cli)) {
        cli.cmd(json!({"cmd": "leave"}));
        assert_eq!(cli.wait_exit(LONG), Some(0));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
