//! Abuse against the real server: truncated JSON, a 1 MiB frame, an unknown type, a spoofed
//! sender, a relay to another room's peer, a binary frame, a flood. Each gets its error
//! frame, and a room of real peers on the same server keeps working throughout.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).expect("json frame");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Joins as a fresh identity: reads `hello`, signs its challenge.
async fn join_raw(ws: &mut Ws, room: &str) -> String {
    let challenge = loop {
        let v = next_frame(ws).await;
        if v["type"] == "hello" {
            break v["challenge"].as_str().expect("challenge").to_owned();
        }
    };
    let me = plenum_proto::identity::Identity::generate();
    let proof = me.sign(&plenum_proto::identity::join_message(&challenge, room));
    let join = json!({
        "type": "join", "version": plenum_proto::PROTOCOL_VERSION, "room": room, "name": "raw",
        "key": me.public().encode(), "proof": proof,
    });
    ws.send(Message::text(join.to_string()))
        .await
        .expect("send");
    loop {
        let v = next_frame(ws).await;
        if v["type"] == "welcome" {
            return v["peer"].as_str().expect("peer").to_owned();
        }
    }
}

async fn expect_error(ws: &mut Ws, code: &str) {
    loop {
        let v = next_frame(ws).await;
        if v["type"] == "error" {
            assert_eq!(v["code"], code, "{v}");
            return;
        }
    }
}

fn room_still_works(peers: &mut [Peer], tag: &str) {
    peers[0]
        .proc
        .cmd(json!({"cmd":"send","channel":"chat","data":tag}));
    peers[1].proc.expect(Duration::from_secs(5), tag, |v| {
        event(v) == "message" && v["data"] == tag
    });
}

#[test]
fn abuse_is_refused_frame_by_frame() {
    let server = serve(&[]);
    let mut peers = full_room(&server.url, "victims", 2);
    let victim = peers[0].id.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut a = connect(&server.url).await;
        let mut b = connect(&server.url).await;
        let a_id = join_raw(&mut a, "abuse").await;
        let b_id = join_raw(&mut b, "abuse").await;

        a.send(Message::text("{\"type\":\"signal\",\"to\":"))
            .await
            .expect("send");
        expect_error(&mut a, "malformed").await;

        a.send(Message::text(format!(
            "{{\"type\":\"ping\",\"nonce\":1,\"pad\":\"{}\"}}",
            "x".repeat(1 << 20)
        )))
        .await
        .expect("send");
        expect_error(&mut a, "frame_too_large").await;

        a.send(Message::text(r#"{"type":"teleport","to":"x"}"#))
            .await
            .expect("send");
        expect_error(&mut a, "unknown_type").await;

        let spoof =
            json!({"type":"signal","to":b_id,"from":victim,"payload":{"kind":"offer","sdp":"v=0","key":"k","seq":1,"sig":"s"}});
        a.send(Message::text(spoof.to_string()))
            .await
            .expect("send");
        expect_error(&mut a, "spoofed_sender").await;

        let cross = json!({"type":"signal","to":victim,"payload":{"kind":"offer","sdp":"v=0","key":"k","seq":1,"sig":"s"}});
        a.send(Message::text(cross.to_string()))
            .await
            .expect("send");
        expect_error(&mut a, "unknown_peer").await;

        a.send(Message::binary(vec![0u8; 64])).await.expect("send");
        expect_error(&mut a, "malformed").await;

        // A legitimate relay still works for the abuser's own room.
        let ok = json!({"type":"signal","to":b_id,"payload":{"kind":"answer","sdp":"v=0","key":"k","seq":1,"sig":"s"}});
        a.send(Message::text(ok.to_string())).await.expect("send");
        let relayed = loop {
            let v = next_frame(&mut b).await;
            if v["type"] == "signal" {
                break v;
            }
        };
        assert_eq!(relayed["from"], a_id.as_str());

        // Flood: 2,000 frames at once. One rate_limited error, and the server stays up.
        for n in 0..2000 {
            if a.send(Message::text(json!({"type":"ping","nonce":n}).to_string()))
                .await
                .is_err()
            {
                break;
            }
        }
        expect_error(&mut a, "rate_limited").await;
    });
    room_still_works(&mut peers, "after abuse");

    // The victim never saw any of it.
    let seen = peers[0].proc.drain_for(Duration::from_millis(300));
    assert!(
        !seen
            .iter()
            .chain(peers[0].proc.seen.iter())
            .any(|v| event(v) == "error"),
        "{seen:?}"
    );

    // A new peer can still join the victims' room.
    let late = join(&server.url, "victims", "late", &[]);
    peers[0]
        .proc
        .expect(Duration::from_secs(10), "late peer_join", |v| {
            event(v) == "peer_join" && v["peer"] == late.id.as_str()
        });
}
