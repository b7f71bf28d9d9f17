//! Glare: both peers send an offer at the same moment. Perfect negotiation must leave
//! exactly one link: one peer_join each, no leave, messages exactly once both ways.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn both_peers_offering_at_once_end_with_one_link() {
    let server = serve(&[]);
    for round in 0..3 {
        let room = format!("glare-{round}");
        let mut a = join(&server.url, &room, "a", &["--both-initiate"]);
        let mut b = join(&server.url, &room, "b", &["--both-initiate"]);
        let (a_id, b_id) = (a.id.clone(), b.id.clone());
        a.proc
            .expect(Duration::from_secs(15), "peer_join at a", |v| {
                event(v) == "peer_join" && v["peer"] == b_id.as_str()
            });
        b.proc
            .expect(Duration::from_secs(15), "peer_join at b", |v| {
                event(v) == "peer_join" && v["peer"] == a_id.as_str()
            });
        a.proc
            .cmd(json!({"cmd":"send","channel":"chat","data":"from a"}));
        b.proc
            .cmd(json!({"cmd":"send","channel":"chat","data":"from b"}));
        for (peer, want) in [(&mut a, "from b"), (&mut b, "from a")] {
            // The other's message, however long it takes; then a while for anything that
            // should not come (a copy, a leave, a second join).
            let mut events = peer
                .proc
                .until(Duration::from_secs(20), "the other's message", |v| {
                    event(v) == "message" && v["data"] == want
                });
            events.extend(peer.proc.drain_for(Duration::from_secs(3)));
            let msgs = events
                .iter()
                .filter(|v| event(v) == "message" && v["data"] == want)
                .count();
            assert_eq!(msgs, 1, "round {round}: {events:?}");
            assert!(
                !events
                    .iter()
                    .any(|v| matches!(event(v), "peer_leave" | "peer_join")),
                "round {round}: {events:?}"
            );
            peer.proc.cmd(json!({"cmd":"peers"}));
            let list = peer
                .proc
                .expect(Duration::from_secs(5), "peers", |v| event(v) == "peers");
            assert_eq!(list["peers"][0]["state"], "connected", "{list}");
        }
    }
}
