//! Two peers in network namespaces of this test's own, joined by a veth pair. The first
//! peer's address is taken away and a new one given: the peer notices, reports `link_down`,
//! restarts ICE (new credentials, the offer through the signaling server it reconnects to
//! from its new address) and reports `link_up`; no `peer_leave` anywhere (the link was not
//! replaced); every message sent before, during and after the change arrives once and in
//! order; the far side hears the audio again afterwards. Prints the time from the change
//! to `link_up` as JSON. A path that goes silent for a while (every datagram dropped, the
//! addresses unchanged) is noticed by ICE and restarted the same way.

use plenum_e2e::cli as common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const MESSAGES: u64 = 60;

fn join_in(ns: &NetNs, url: &str, name: &str, extra: &[&str]) -> Peer {
    let mut args = vec![
        "join",
        "--server",
        url,
        "--room",
        "move",
        "--name",
        name,
        "--json",
        "--bind-ip",
        "0.0.0.0",
    ];
    args.extend_from_slice(extra);
    let mut proc = ns.spawn(&args, &[]);
    let joined = proc.expect(Duration::from_secs(10), "joined", |v| event(v) == "joined");
    Peer {
        id: joined["peer"].as_str().expect("id").to_owned(),
        proc,
        name: name.into(),
    }
}

/// `plenum serve` in `ns` on `ip`; its guard and URL.
fn serve_in_ns(ns: &NetNs, ip: &str) -> (Proc, String) {
    let bind = format!("{ip}:0");
    let mut server = ns.spawn(&["serve", "--bind", &bind, "--json"], &[]);
    let listening = server.expect(Duration::from_secs(10), "listening", |v| {
        event(v) == "listening"
    });
    let url = listening["url"].as_str().expect("url").to_owned();
    (server, url)
}

/// Reads B's next `seq` messages until as many as `want` holds arrived; they must be
/// `want`'s numbers, once, in order.
fn messages_in_order(b: &mut Peer, want: std::ops::Range<u64>) {
    let mut got: Vec<u64> = Vec::new();
    while (got.len() as u64) < want.end - want.start {
        let v = b
            .proc
            .expect(Duration::from_secs(20), "every message", |v| {
                event(v) == "message" && v["channel"] == "seq"
            });
        got.push(v["data"].as_u64().expect("a number"));
    }
    assert_eq!(got, want.collect::<Vec<_>>(), "lost, repeated or reordered");
}

fn send(peer: &mut Peer, n: u64) {
    peer.proc
        .cmd(json!({"cmd": "send", "channel": "seq", "data": n}));
}

#[test]
fn a_link_survives_its_address_changing() {
    let (ns_a, ns_b) = NetNs::veth_pair("10.77.0.1/24", "10.77.0.2/24");
    let (_server, url) = serve_in_ns(&ns_b, "10.77.0.2");
    let recording = std::env::temp_dir().join(format!("plenum-move-{}.wav", std::process::id()));
    let rec = recording.to_str().expect("utf-8");
    let mut a = join_in(&ns_a, &url, "a", &["--audio", "sine:440"]);
    let mut b = join_in(&ns_b, &url, "b", &["--record-audio", rec]);
    for p in [&mut a, &mut b] {
        p.proc.expect(Duration::from_secs(20), "peer_join", |v| {
            event(v) == "peer_join"
        });
    }
    for n in 0..MESSAGES / 3 {
        send(&mut a, n);
    }
    // The first third has arrived before the address changes.
    messages_in_order(&mut b, 0..MESSAGES / 3);

    ns_a.exec(&["ip", "addr", "del", "10.77.0.1/24", "dev", "va"]);
    ns_a.exec(&["ip", "addr", "add", "10.77.0.3/24", "dev", "va"]);
    let changed = Instant::now();
    for n in MESSAGES / 3..MESSAGES {
        send(&mut a, n);
    }
    a.proc.expect(Duration::from_secs(10), "link_down", |v| {
        event(v) == "link_down" && v["peer"] == b.id.as_str()
    });
    a.proc.expect(Duration::from_secs(20), "link_up", |v| {
        event(v) == "link_up" && v["peer"] == b.id.as_str()
    });
    let back_ms = changed.elapsed().as_secs_f64() * 1000.0;
    println!("{}", json!({"address_change_to_link_up_ms": back_ms}));
    let from = recorded_so_far(&recording).len();

    messages_in_order(&mut b, MESSAGES / 3..MESSAGES);

    // Two seconds of the tone after the restart, then B leaves so that its recording is
    // complete.
    wait_recorded(
        &recording,
        from,
        2.0,
        "two seconds of the tone after the restart",
    );
    b.proc.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.proc.wait_exit(Duration::from_secs(10)), Some(0));
    let left: Vec<&Value> = a.proc.seen.iter().chain(&b.proc.seen).collect();
    assert!(
        !left
            .iter()
            .any(|v| event(v) == "peer_leave" && v["peer"] != b.id.as_str()),
        "a peer_leave during the restart: the link was replaced, not restarted"
    );
    let heard = recording_tail(&recording, 1.0);
    let _ = std::fs::remove_file(&recording);
    let rms = (heard.iter().map(|s| s * s).sum::<f32>() / heard.len().max(1) as f32).sqrt();
    assert!(
        rms > 0.05,
        "no tone in the last second after the restart (rms {rms})"
    );
}

/// The last `seconds` of a recording (48 kHz mono).
fn recording_tail(path: &std::path::Path, seconds: f64) -> Vec<f32> {
    use plenum_media::AudioSource;
    let mut src = plenum_media::WavSource::open(path).expect("a recording");
    let mut all = vec![0.0; src.len()];
    src.read(&mut all);
    let keep = (seconds * 48_000.0) as usize;
    all.split_off(all.len().saturating_sub(keep))
}

#[test]
fn a_link_survives_its_path_going_silent() {
    let (ns_a, ns_b) = NetNs::veth_pair("10.78.0.1/24", "10.78.0.2/24");
    let (_server, url) = serve_in_ns(&ns_b, "10.78.0.2");
    let mut a = join_in(&ns_a, &url, "a", &[]);
    let mut b = join_in(&ns_b, &url, "b", &[]);
    for p in [&mut a, &mut b] {
        p.proc.expect(Duration::from_secs(20), "peer_join", |v| {
            event(v) == "peer_join"
        });
    }
    // Every UDP datagram leaving A is dropped until B notices (signaling is TCP and stays
    // up): B's ICE goes disconnected after 2 s of silence and the link is restarted.
    let rules = "table inet cut {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    meta l4proto udp drop\n  }\n}\n";
    let path = std::env::temp_dir().join(format!("{}.nft", ns_a.name));
    std::fs::write(&path, rules).expect("write rules");
    ns_a.exec(&["nft", "-f", path.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&path);
    for n in 0..MESSAGES / 2 {
        send(&mut a, n);
    }
    // B hears nothing from A: its ICE state goes down (A still hears B, so its own state
    // may never leave `connected`). The path stays silent until B has noticed.
    b.proc.expect(Duration::from_secs(20), "link_down", |v| {
        event(v) == "link_down" && v["peer"] == a.id.as_str()
    });
    let healed = Instant::now();
    ns_a.exec(&["nft", "delete", "table", "inet", "cut"]);
    for n in MESSAGES / 2..MESSAGES {
        send(&mut a, n);
    }
    // And it comes back.
    b.proc.expect(Duration::from_secs(10), "link_up", |v| {
        event(v) == "link_up" && v["peer"] == a.id.as_str()
    });
    println!(
        "{}",
        json!({"path_back_to_link_up_ms": healed.elapsed().as_secs_f64() * 1000.0})
    );
    messages_in_order(&mut b, 0..MESSAGES);
    let all: Vec<&Value> = a.proc.seen.iter().chain(&b.proc.seen).collect();
    assert!(
        !all.iter().any(|v| event(v) == "peer_leave"),
        "the link was replaced: {all:?}"
    );
}
