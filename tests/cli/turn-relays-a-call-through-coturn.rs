//! A real coturn on 127.0.0.1 with `use-auth-secret`: `plenum serve` hands each peer
//! short-lived TURN credentials (the TURN REST scheme), two peers limited to relayed
//! candidates link through coturn, report the path `relay`, and exchange data and audio.
//! Credentials minted with the wrong secret, and expired ones, fail with `turn_failed`.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

const SECRET: &str = "coturn-shared-secret-0123456789";

/// coturn on 127.0.0.1 at a free port; killed by pid when dropped.
struct Coturn {
    _proc: Proc,
    url: String,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

fn coturn() -> Coturn {
    let port = free_udp_port();
    let relay_min = free_udp_port().max(20_000);
    let proc = common::coturn(
        &[],
        "127.0.0.1",
        port,
        (relay_min, relay_min + 200),
        SECRET,
        &["--allow-loopback-peers"],
    );
    Coturn {
        _proc: proc,
        url: format!("turn:127.0.0.1:{port}"),
    }
}

#[test]
fn relay_only_peers_link_through_coturn_with_credentials_from_the_server() {
    let turn = coturn();
    let secret = secret_file("turn-ok", SECRET);
    let server = serve(&[
        "--turn-url",
        &turn.url,
        "--turn-secret-file",
        secret.path(),
        "--turn-ttl",
        "600",
    ]);
    let mut a = join(
        &server.url,
        "relayed",
        "a",
        &["--ice-transport", "relay", "--audio", "sine:440"],
    );
    let mut b = join(&server.url, "relayed", "b", &["--ice-transport", "relay"]);
    for p in [&mut a, &mut b] {
        p.proc
            .expect(Duration::from_secs(30), "peer_join through TURN", |v| {
                event(v) == "peer_join"
            });
        p.proc.cmd(json!({"cmd": "peers"}));
        let peers = p
            .proc
            .expect(Duration::from_secs(5), "peers", |v| event(v) == "peers");
        assert_eq!(peers["peers"][0]["path"], "relay", "{peers}");
    }
    a.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": "via turn"}));
    b.proc
        .expect(Duration::from_secs(5), "data through the relay", |v| {
            event(v) == "message" && v["data"] == "via turn"
        });
    b.proc
        .expect(Duration::from_secs(10), "audio through the relay", |v| {
            event(v) == "speaking" && v["speaking"] == true && v["peer"] == a.id.as_str()
        });
}

#[test]
fn wrong_or_expired_turn_credentials_fail_clearly() {
    let turn = coturn();
    // The server's secret is not coturn's.
    let wrong = secret_file("turn-wrong", "not-the-coturn-secret-at-all");
    let server = serve(&["--turn-url", &turn.url, "--turn-secret-file", wrong.path()]);
    let mut a = join(&server.url, "bad-turn", "a", &["--ice-transport", "relay"]);
    let mut b = join(&server.url, "bad-turn", "b", &["--ice-transport", "relay"]);
    for p in [&mut a, &mut b] {
        let error = p.proc.expect(Duration::from_secs(20), "turn_failed", |v| {
            event(v) == "error" && v["code"] == "turn_failed"
        });
        assert!(
            error["message"].as_str().unwrap_or("").contains("TURN"),
            "{error}"
        );
    }
    // Credentials minted with the right secret but expired an hour ago.
    let plain = serve(&[]);
    let user = "1000000000:expired";
    let credential = turn_rest_password(SECRET, user);
    let args = [
        "--ice-transport",
        "relay",
        "--turn",
        &turn.url,
        "--turn-user",
        user,
        "--turn-credential",
        &credential,
    ];
    let mut c = join(&plain.url, "expired-turn", "c", &args);
    let _d = join(&plain.url, "expired-turn", "d", &args);
    c.proc
        .expect(Duration::from_secs(20), "turn_failed (expired)", |v| {
            event(v) == "error" && v["code"] == "turn_failed"
        });
    let seen = c.proc.drain_for(Duration::from_millis(200));
    assert!(
        !c.proc
            .seen
            .iter()
            .chain(&seen)
            .any(|v| event(v) == "peer_join")
    );
}

/// base64(HMAC-SHA1(secret, user)): coturn's check for `use-auth-secret`.
fn turn_rest_password(secret: &str, user: &str) -> String {
    let server = plenum_signal::TurnConfig {
        urls: vec![],
        secret: secret.as_bytes().to_vec(),
        ttl: Duration::ZERO,
    };
    let (expiry, peer) = user.split_once(':').expect("expiry:peer");
    let info = server.credentials(
        &plenum_proto::PeerId::new(peer).expect("peer id"),
        expiry.parse().expect("expiry"),
    );
    assert_eq!(info.username, user);
    info.credential
}
