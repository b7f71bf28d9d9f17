//! `plenum bench resume`: how fast a room comes back after its signaling server restarts,
//! and what identity checks cost a join.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use plenum::{Room, RoomEvent, RoomEvents};
use plenum_proto::identity::{Identity, join_message, sign_link, verify_link};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};

use crate::bench::{loopback_peer, summary, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct ResumeArgs {
    /// Peers in the room.
    #[arg(long, default_value_t = 10)]
    peers: usize,
    /// Server restarts to time.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How long the server stays down each time, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    outage_ms: u64,
}

pub(crate) async fn resume(args: &ResumeArgs) -> anyhow::Result<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server = Server::bind(addr, ServerConfig::default()).await?;
    let addr = server.local_addr();
    let url = server.url();
    let mut rooms: Vec<(Room, RoomEvents)> = Vec::new();
    let mut joins = Vec::new();
    for i in 0..args.peers {
        let started = Instant::now();
        rooms.push(Room::join(loopback_peer(&url, "resume", &format!("p{i}"))?).await?);
        joins.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // Wait for the full mesh: every peer sees every other.
    for (_, events) in &mut rooms {
        for _ in 1..args.peers {
            wait_for(events, "the full mesh", |e| {
                matches!(e, RoomEvent::PeerJoin { .. }).then_some(())
            })
            .await?;
        }
    }
    let mut back = Vec::new();
    for _ in 0..args.runs {
        drop(server);
        for (_, events) in &mut rooms {
            wait_for(events, "signaling lost", |e| {
                matches!(e, RoomEvent::Error(plenum::RoomError::SignalingLost(_))).then_some(())
            })
            .await?;
        }
        tokio::time::sleep(Duration::from_millis(args.outage_ms)).await;
        server = Server::bind(addr, ServerConfig::default())
            .await
            .context("rebinding the server's port")?;
        let up = Instant::now();
        for (_, events) in &mut rooms {
            wait_for(events, "signaling resumed", |e| {
                matches!(e, RoomEvent::SignalingResumed).then_some(())
            })
            .await?;
        }
        back.push(up.elapsed().as_secs_f64() * 1000.0);
    }
    let linked = rooms[0]
        .0
        .peers()
        .await?
        .iter()
        .filter(|p| p.state == plenum::LinkState::Connected)
        .count();
    Ok(json!({
        "peers": args.peers,
        "outage_ms": args.outage_ms,
        "restart_to_all_resumed_ms": summary(back),
        "links_of_first_peer_after": linked,
        "join_ms": summary(joins),
        "identity_cost_us": identity_cost(),
    }))
}

/// Microseconds of the signing and checking a join and one link add, measured here.
fn identity_cost() -> Value {
    const N: u32 = 2000;
    let a = Identity::generate();
    let b = Identity::generate();
    let sdp = "v=0\r\na=fingerprint:sha-256 \
        AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n";
    let message = join_message("mW3kQ0s2dGhpcyBpcyBhIGNoYWxsZW5nZSBvZiAzMiBieXRlcw", "room");
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..N {
            f();
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(N)
    };
    let mut proof = String::new();
    let sign_join = time(&mut || proof = a.sign(&message));
    let key = a.public();
    let verify_join = time(&mut || {
        let _ = key.verify(&message, &proof);
    });
    let mut sig = String::new();
    let sign_offer = time(&mut || {
        sig = sign_link(&a, "offer", &b.peer_id(), 1, sdp).unwrap_or_default();
    });
    let encoded = key.encode();
    let verify_offer = time(&mut || {
        let _ = verify_link("offer", &a.peer_id(), &b.peer_id(), 1, sdp, &encoded, &sig);
    });
    json!({
        "sign_join": sign_join,
        "verify_join": verify_join,
        "sign_description": sign_offer,
        "verify_description": verify_offer,
        // A join: one signature (client) and one check (server). A link: each side signs
        // one description and checks the other's.
        "per_join": sign_join + verify_join,
        "per_link": 2.0 * (sign_offer + verify_offer),
    })
}
