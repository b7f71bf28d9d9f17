//! Signaling over a real nats-server (started here with JetStream on a free port of
//! 127.0.0.1, ended by its pid): two peers with `--signal nats://` and no Plenum server;
//! two `plenum serve --nats` servers sharing one room, whose rules (password, size) hold
//! across them, and a peer that moves to the other server when its own is killed.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn says(peer: &mut Peer, text: &str, to: &mut [&mut Peer]) {
    peer.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": text}));
    for other in to {
        let from = peer.id.clone();
        other
            .proc
            .expect(Duration::from_secs(10), "the message", |v| {
                event(v) == "message" && v["data"] == text && v["from"] == from.as_str()
            });
    }
}

/// Waits until `peer` has seen each of `others` join, in any order.
fn sees_joins(peer: &mut Peer, others: &[&str]) {
    let mut want: std::collections::BTreeSet<&str> = others.iter().copied().collect();
    while !want.is_empty() {
        let v = peer
            .proc
            .expect(Duration::from_secs(20), "the others' joins", |v| {
                event(v) == "peer_join"
            });
        want.remove(v["peer"].as_str().unwrap_or(""));
    }
}

#[test]
fn two_peers_find_each_other_through_nats_alone() {
    let nats = nats();
    let mut a = join(&nats.url, "alone", "a", &[]);
    let mut b = join(&nats.url, "alone", "b", &[]);
    sees_joins(&mut a, &[&b.id.clone()]);
    sees_joins(&mut b, &[&a.id.clone()]);
    says(&mut a, "hello b", &mut [&mut b]);
    says(&mut b, "hello a", &mut [&mut a]);
    // A room of the same name elsewhere on the cluster is the same room: a third peer
    // sees both.
    let mut c = join(&nats.url, "alone", "c", &[]);
    sees_joins(&mut c, &[&a.id, &b.id]);
    says(&mut c, "hello both", &mut [&mut a, &mut b]);
}

#[test]
fn two_servers_share_a_room_and_a_peer_moves_when_its_server_dies() {
    let nats = nats();
    let (s1, id1) = serve_nats(&nats.url, &["--max-peers-per-room", "3"]);
    let (mut s2, id2) = serve_nats(&nats.url, &["--max-peers-per-room", "3"]);
    assert_ne!(id1, id2);

    // The room is created through the first server, with a password.
    let mut a = join(&s1.url, "shared", "a", &["--password", "pw"]);
    let both = format!("{},{}", s2.url, s1.url);
    let mut b = join(&both, "shared", "b", &["--password", "pw"]);
    sees_joins(&mut a, &[&b.id.clone()]);
    sees_joins(&mut b, &[&a.id.clone()]);
    says(&mut a, "over two servers", &mut [&mut b]);
    says(&mut b, "and back", &mut [&mut a]);

    // The room's rules hold through the other server.
    let mut wrong = spawn_join(&s2.url, "shared", "wrong", &["--password", "nope"]);
    let err = wrong.expect(Duration::from_secs(10), "refusal", |v| event(v) == "error");
    assert_eq!(err["code"], "bad_password", "{err}");
    let mut third = join(&s2.url, "shared", "third", &["--password", "pw"]);
    sees_joins(&mut a, &[&third.id.clone()]);
    let mut fourth = spawn_join(&s2.url, "shared", "fourth", &["--password", "pw"]);
    let err = fourth.expect(Duration::from_secs(10), "refusal", |v| event(v) == "error");
    assert_eq!(err["code"], "room_full", "{err}");
    third.proc.cmd(json!({"cmd": "leave"}));
    a.proc
        .expect(Duration::from_secs(10), "third's leave", |v| {
            event(v) == "peer_leave" && v["peer"] == third.id.as_str()
        });
    // a hears third's goodbye over their link, which can come before the home has the
    // leave third sent through s2. Killed then, s2 would take that leave with it, and third
    // would keep its seat as an away peer for the grace: the home must have it first.
    wait_for_seat(&s1.url, "shared", &["--password", "pw"]);

    // b's server dies: b moves to the first server and takes its place back; its link to
    // a never went down.
    s2.proc.kill();
    b.proc
        .expect(Duration::from_secs(20), "signaling_resumed", |v| {
            event(v) == "signaling_resumed"
        });
    says(&mut b, "after the move", &mut [&mut a]);
    let mut late = join(&s1.url, "shared", "late", &["--password", "pw"]);
    sees_joins(&mut late, &[&a.id, &b.id]);
    says(&mut late, "the room goes on", &mut [&mut a, &mut b]);
    let dropped: Vec<&serde_json::Value> = a
        .proc
        .seen
        .iter()
        .chain(&b.proc.seen)
        .filter(|v| {
            matches!(event(v), "peer_leave" | "link_down")
                && (v["peer"] == a.id.as_str() || v["peer"] == b.id.as_str())
        })
        .collect();
    assert!(dropped.is_empty(), "a and b lost each other: {dropped:?}");
}

/// Waits until a peer joining `room` through `url` is admitted (a room at its limit
/// refuses it with `room_full` until a seat is free), then makes it leave.
fn wait_for_seat(url: &str, room: &str, extra: &[&str]) {
    for _ in 0..50 {
        let mut probe = spawn_join(url, room, "probe", extra);
        let v = probe.expect(Duration::from_secs(10), "joined or refused", |v| {
            matches!(event(v), "joined" | "error")
        });
        if event(&v) == "joined" {
            probe.cmd(json!({"cmd": "leave"}));
            assert_eq!(probe.wait_exit(Duration::from_secs(10)), Some(0));
            return;
        }
        assert_eq!(v["code"], "room_full", "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no seat came free in {room}");
}

#[test]
fn a_room_whose_home_server_dies_moves_to_a_server_that_stays() {
    let nats = nats();
    let (mut home, _) = serve_nats(&nats.url, &[]);
    let (other, _) = serve_nats(&nats.url, &[]);
    let mut a = join(&format!("{},{}", home.url, other.url), "moving", "a", &[]);
    let mut b = join(&other.url, "moving", "b", &[]);
    sees_joins(&mut a, &[&b.id.clone()]);
    sees_joins(&mut b, &[&a.id.clone()]);

    // The room's registry dies with its home: both peers' signaling goes (b's through
    // the server that stays), and both come back to the room, now held by that server.
    home.proc.kill();
    for peer in [&mut a, &mut b] {
        peer.proc
            .expect(Duration::from_secs(20), "signaling back", |v| {
                event(v) == "signaling_resumed"
            });
    }
    says(&mut a, "after the home went", &mut [&mut b]);
    let mut late = join(&other.url, "moving", "late", &[]);
    sees_joins(&mut late, &[&a.id, &b.id]);
    says(&mut late, "still one room", &mut [&mut a, &mut b]);
}
