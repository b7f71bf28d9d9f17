//! Roles, credentials, state and the waiting queue, with real processes. A publisher that
//! lets in only peers presenting `{"t":"ok"}` sends two messages while it is alone and
//! shares a state. Two viewers with those credentials link to it and not to each other;
//! the first gets the two messages, in order; both get the state as soon as they link,
//! and its merged change after. A viewer without the credentials gets `not_verified` and
//! no link. A viewer joining later gets the current state at once.

use plenum_e2e::cli as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn links(peer: &mut Peer) -> BTreeSet<String> {
    peer.proc.cmd(json!({"cmd": "links"}));
    let v = peer.proc.expect(WAIT, "links", |v| event(v) == "links");
    v["links"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|l| l["state"] == "connected")
                .filter_map(|l| l["peer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn viewer(url: &str, name: &str, credentials: Option<&str>) -> Peer {
    let mut extra = vec!["--role", "viewer"];
    if let Some(c) = credentials {
        extra.extend(["--credentials", c]);
    }
    join(url, "webinar", name, &extra)
}

fn state_from<'a>(seen: &'a [Value], from: &str) -> Vec<&'a Value> {
    seen.iter()
        .filter(|v| event(v) == "state" && v["peer"] == from)
        .map(|v| &v["state"])
        .collect()
}

/// Waits until `peer` has the state of `from` (it may have come already), then a while for
/// anything that should not come (a second copy, a message).
fn wait_for_state(peer: &mut Peer, from: &str) {
    if state_from(&peer.proc.seen, from).is_empty() {
        peer.proc.expect(WAIT, "the state", |v| {
            event(v) == "state" && v["peer"] == from
        });
    }
    peer.proc.drain_for(Duration::from_millis(300));
}

#[test]
fn roles_link_viewers_to_publishers_only() {
    let server = serve(&[]);
    let ok = r#"{"t":"ok"}"#;
    let mut publisher = join(
        &server.url,
        "webinar",
        "presenter",
        &["--role", "publisher", "--accept-credentials", ok],
    );
    // Alone: these wait for the first peer.
    for nonce in [1, 2] {
        publisher
            .proc
            .cmd(json!({"cmd": "send", "channel": "chat", "data": {"nonce": nonce}}));
    }
    publisher
        .proc
        .cmd(json!({"cmd": "set_state", "state": {"audio": true, "hand": false}}));
    let p = publisher.id.clone();

    let mut first = viewer(&server.url, "v1", Some(ok));
    first.proc.expect(WAIT, "link to the publisher", |v| {
        event(v) == "peer_join" && v["peer"] == p.as_str()
    });
    let got: Vec<u64> = (0..2)
        .map(|_| {
            let m = first
                .proc
                .expect(WAIT, "a waiting message", |v| event(v) == "message");
            assert_eq!(m["from"], p.as_str());
            m["data"]["nonce"].as_u64().unwrap_or(0)
        })
        .collect();
    assert_eq!(got, vec![1, 2], "in order, to the first viewer");
    wait_for_state(&mut first, &p);
    assert_eq!(
        state_from(&first.proc.seen, &p),
        vec![&json!({"audio": true, "hand": false})],
        "the state comes with the link"
    );

    let mut second = viewer(&server.url, "v2", Some(ok));
    second.proc.expect(WAIT, "link to the publisher", |v| {
        event(v) == "peer_join" && v["peer"] == p.as_str()
    });
    wait_for_state(&mut second, &p);
    assert_eq!(state_from(&second.proc.seen, &p).len(), 1);
    assert!(
        !second.proc.seen.iter().any(|v| event(v) == "message"),
        "the waiting messages went to the first viewer only"
    );

    // Without the credentials: refused, with a reason, and no link.
    let mut stranger = viewer(&server.url, "v3", None);
    let refused = stranger.proc.expect(WAIT, "not_verified", |v| {
        event(v) == "error" && v["code"] == "not_verified"
    });
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains(p.as_str())
    );

    // Viewers link to the publisher only; the publisher to the two it let in.
    assert_eq!(links(&mut first), BTreeSet::from([p.clone()]));
    assert_eq!(links(&mut second), BTreeSet::from([p.clone()]));
    assert!(links(&mut stranger).is_empty());
    assert_eq!(
        links(&mut publisher),
        BTreeSet::from([first.id.clone(), second.id.clone()])
    );

    // A merged change reaches both viewers.
    publisher
        .proc
        .cmd(json!({"cmd": "set_state", "state": {"hand": true}, "merge": true}));
    let merged = json!({"audio": true, "hand": true});
    for v in [&mut first, &mut second] {
        v.proc.expect(WAIT, "the merged state", |e| {
            event(e) == "state" && e["state"] == merged
        });
    }
    // A viewer joining now gets it at once.
    let mut late = viewer(&server.url, "v4", Some(ok));
    late.proc.expect(WAIT, "the state", |e| {
        event(e) == "state" && e["state"] == merged
    });
    assert!(
        stranger
            .proc
            .drain_for(Duration::ZERO)
            .iter()
            .all(|v| event(v) != "state")
    );
}

/// Sends a signal to a process by its id (`kill -STOP` / `-CONT`).
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A viewer whose only publisher stops answering (frozen with SIGSTOP: its signaling
/// connection stays, its link goes silent) tries it again every second, twice, then says
/// `publishers_gone`; when the publisher answers again (SIGCONT) the link comes back.
#[test]
fn a_viewer_pings_a_gone_publisher_and_relinks_when_it_returns() {
    let server = serve(&[]);
    let publisher = join(&server.url, "pings", "presenter", &["--role", "publisher"]);
    let p = publisher.id.clone();
    let mut viewer = join(
        &server.url,
        "pings",
        "viewer",
        &[
            "--role",
            "viewer",
            "--ping-interval",
            "1",
            "--ping-attempts",
            "2",
        ],
    );
    viewer.proc.expect(WAIT, "the link", |v| {
        event(v) == "link_up" && v["peer"] == p.as_str()
    });
    let pid = publisher.proc.pid();
    signal(pid, "-STOP");
    let gone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        viewer
            .proc
            .expect(Duration::from_secs(40), "publishers_gone", |v| {
                event(v) == "error" && v["code"] == "publishers_gone"
            })
    }));
    // Whatever happened, the publisher runs again before anything else.
    signal(pid, "-CONT");
    let gone = gone.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(gone["message"].as_str().unwrap_or("").contains('2'));
    viewer
        .proc
        .expect(Duration::from_secs(40), "the link back", |v| {
            event(v) == "link_up" && v["peer"] == p.as_str()
        });
}
