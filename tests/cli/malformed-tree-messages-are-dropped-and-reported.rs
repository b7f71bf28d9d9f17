//! A tree peer that writes broken or forged tree messages on its links: a truncated one,
//! an op no version knows and a requester that is not a peer id are each dropped and
//! reported as `malformed_message`; a forged broadcast sent twice reaches the application
//! once. The tree carries on: a real broadcast still reaches everyone once.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn tree_messages(got: &[Value], key: &str) -> usize {
    got.iter()
        .filter(|v| event(v) == "tree_message" && v["data"].get(key).is_some())
        .count()
}

#[test]
fn malformed_tree_messages_are_dropped_and_reported() {
    let server = serve(&[]);
    let tree = ["--topology", "tree", "--max-degree", "2"];
    let mut root_args = tree.to_vec();
    root_args.extend(["--root", "--secret", "s"]);
    let mut peers = vec![join(&server.url, "forged-tree", "root", &root_args)];
    for i in 1..3 {
        peers.push(join(&server.url, "forged-tree", &format!("p{i}"), &tree));
    }
    // Both children are linked when the root has two.
    peers[0]
        .proc
        .expect(Duration::from_secs(20), "two children", |v| {
            event(v) == "tree_state" && v["children"].as_array().is_some_and(|c| c.len() == 2)
        });
    let target = peers[1].id.clone();
    let raw = |bytes: Vec<u8>| json!({"cmd":"raw","peer":target,"hex":hex(&bytes)});

    // Truncated: an accept without its depth.
    peers[0].proc.cmd(raw(envelope(7, &[1, 0])));
    // An op no version knows.
    peers[0].proc.cmd(raw(envelope(7, &[42])));
    // A join whose requester is not a peer id.
    let mut join_msg = vec![0, 0, 0, 0, 1, 10];
    join_msg.extend_from_slice(b"no spaces!");
    peers[0].proc.cmd(raw(envelope(7, &join_msg)));
    // A well-formed broadcast, forged in another's name, sent twice.
    let mut data = vec![5, 40];
    data.extend_from_slice(peers[2].id.as_bytes());
    data.extend_from_slice(br#"{"forged":true}"#);
    peers[0].proc.cmd(raw(envelope(7, &data)));
    peers[0].proc.cmd(raw(envelope(7, &data)));
    // And a real broadcast after all that.
    peers[0]
        .proc
        .cmd(json!({"cmd":"tree_broadcast","data":{"after":true}}));

    // The link is ordered: when the real broadcast arrives, everything sent before it on the
    // link has been handled. Then a while for copies that should not come.
    let got = peers[1].proc.until_then_quiet(
        Duration::from_secs(20),
        "the broadcast after",
        |v| tree_messages(std::slice::from_ref(v), "after") == 1,
        Duration::from_secs(2),
    );
    let errs = errors(&got);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs.iter().all(|e| e.starts_with("malformed_message")),
        "{errs:#?}"
    );
    assert!(errs.iter().any(|e| e.contains("truncated")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("op 42")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("peer id")), "{errs:#?}");
    assert_eq!(
        tree_messages(&got, "forged"),
        1,
        "the forged broadcast once, its copy dropped"
    );
    assert_eq!(tree_messages(&got, "after"), 1);
    let third = peers[2].proc.until_then_quiet(
        Duration::from_secs(20),
        "the broadcast after",
        |v| tree_messages(std::slice::from_ref(v), "after") == 1,
        Duration::from_millis(500),
    );
    assert_eq!(tree_messages(&third, "after"), 1);
    assert!(errors(&third).is_empty(), "{:#?}", errors(&third));
}
