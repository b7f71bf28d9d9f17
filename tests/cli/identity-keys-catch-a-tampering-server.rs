//! Identity keys against the real server: a signaling proxy that rewrites the DTLS
//! fingerprint in every offer and answer (a server trying to sit in the middle) is caught by
//! both peers (`identity_mismatch`) and no data flows; a join presenting someone else's key
//! fails the challenge; an identity file keeps a peer's id across runs, and both sides of a
//! link show the same safety code.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Changes the first hex digit pair of every `a=fingerprint:` value.
fn tamper(text: &str) -> String {
    text.split("a=fingerprint:sha-256 ")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return part.to_owned();
            }
            let swapped = if part.starts_with("00") { "11" } else { "00" };
            format!(
                "a=fingerprint:sha-256 {swapped}{}",
                part.get(2..).unwrap_or("")
            )
        })
        .collect()
}

/// What the proxy does to the frames clients send.
#[derive(Clone, Copy, PartialEq)]
enum Mischief {
    /// Rewrites every DTLS fingerprint.
    Tamper,
    /// Relays everything, and sends each client's first offer a second time, 3 s later.
    Replay,
}

/// A WebSocket proxy in front of `upstream` that makes `mischief` with the frames it
/// relays. Returns its URL; it runs on its own thread until the test ends.
fn tampering_proxy(upstream: String, mischief: Mischief) -> String {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(format!("ws://{}", listener.local_addr().expect("addr")))
                .expect("send url");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(client) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let Ok((server, _)) = tokio_tungstenite::connect_async(&upstream).await else {
                        return;
                    };
                    let (mut c_tx, mut c_rx) = client.split();
                    let (mut s_tx, mut s_rx) = server.split();
                    let up = async {
                        let mut first_offer: Option<Message> = None;
                        let replay_at = tokio::time::sleep(Duration::from_secs(3600));
                        tokio::pin!(replay_at);
                        loop {
                            let msg = tokio::select! {
                                msg = c_rx.next() => match msg {
                                    Some(Ok(msg)) => msg,
                                    _ => break,
                                },
                                () = &mut replay_at, if first_offer.is_some() => {
                                    replay_at.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                                    first_offer.take().expect("an offer to replay")
                                }
                            };
                            let msg = match (mischief, msg) {
                                (Mischief::Tamper, Message::Text(t)) => Message::text(tamper(t.as_str())),
                                (Mischief::Replay, Message::Text(t)) => {
                                    if first_offer.is_none() && t.as_str().contains(r#""kind":"offer""#) {
                                        first_offer = Some(Message::text(t.as_str()));
                                        replay_at.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3));
                                    }
                                    Message::Text(t)
                                }
                                (_, other) => other,
                            };
                            if s_tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async {
                        while let Some(Ok(msg)) = s_rx.next().await {
                            if c_tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! { () = up => {}, () = down => {} }
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("proxy url")
}

#[test]
fn the_proxy_rewrites_fingerprints() {
    let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD\r\nm=x\r\na=fingerprint:sha-256 00:EF\r\n";
    let out = tamper(sdp);
    assert!(out.contains("a=fingerprint:sha-256 00:CD"));
    assert!(out.contains("a=fingerprint:sha-256 11:EF"));
}

#[test]
fn a_server_that_swaps_fingerprints_is_refused_by_both_peers() {
    let server = serve(&[]);
    let proxy = tampering_proxy(server.url.clone(), Mischief::Tamper);
    let mut a = join(&proxy, "mitm", "a", &[]);
    let mut b = join(&proxy, "mitm", "b", &[]);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    for (me, other) in [(&mut a, b_id), (&mut b, a_id)] {
        // The newcomer's offer is refused at once; the other side offers after the connect
        // timeout (10 s) and is refused too.
        let error = me
            .proc
            .expect(Duration::from_secs(25), "identity_mismatch", |v| {
                event(v) == "error" && v["code"] == "identity_mismatch"
            });
        assert!(
            error["message"].as_str().unwrap_or("").contains(&other),
            "{error}"
        );
    }
    a.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": "secret"}));
    let heard = b.proc.drain_for(Duration::from_secs(2));
    let all: Vec<&Value> = b.proc.seen.iter().chain(&heard).collect();
    assert!(
        !all.iter().any(|v| event(v) == "peer_join"),
        "a link formed: {all:?}"
    );
    assert!(
        !all.iter().any(|v| event(v) == "message"),
        "data flowed: {all:?}"
    );
}

/// The next text frame as JSON, within 5 s.
async fn next_text<S>(ws: &mut S, what: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).expect("json");
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no {what}: {other:?}"),
        }
    }
}

#[test]
fn a_join_with_someone_elses_key_fails_the_challenge() {
    let server = serve(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&server.url)
            .await
            .expect("connect");
        let hello = next_text(&mut ws, "hello").await;
        assert_eq!(hello["type"], "hello");
        let challenge = hello["challenge"].as_str().expect("challenge");
        use plenum_proto::identity::{Identity, join_message};
        let victim = Identity::generate();
        let mallory = Identity::generate();
        let join = json!({
            "type": "join", "version": plenum_proto::PROTOCOL_VERSION, "room": "r", "name": "m",
            "key": victim.public().encode(),
            "proof": mallory.sign(&join_message(challenge, "r")),
        });
        ws.send(Message::text(join.to_string()))
            .await
            .expect("send");
        let refusal = next_text(&mut ws, "refusal").await;
        assert_eq!(refusal["code"], "bad_identity", "{refusal}");
        assert_eq!(refusal["fatal"], true);
    });
}

#[test]
fn an_identity_file_keeps_the_id_and_both_sides_show_one_safety_code() {
    let server = serve(&[]);
    let path = std::env::temp_dir().join(format!("plenum-id-{}.key", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = path.to_str().expect("utf-8");
    let first = join(&server.url, "ids", "a", &["--identity", file]);
    let id = first.id.clone();
    assert_eq!(id.len(), 40, "160 bits as hex");
    drop(first);
    let mut a = join(&server.url, "ids2", "a", &["--identity", file]);
    assert_eq!(a.id, id, "the same key, the same id");
    let mut b = join(&server.url, "ids2", "b", &[]);
    let mut codes = Vec::new();
    for p in [&mut a, &mut b] {
        p.proc.expect(Duration::from_secs(20), "peer_join", |v| {
            event(v) == "peer_join"
        });
        p.proc.cmd(json!({"cmd": "peers"}));
        let peers = p
            .proc
            .expect(Duration::from_secs(5), "peers", |v| event(v) == "peers");
        codes.push(
            peers["peers"][0]["safety_code"]
                .as_str()
                .expect("code")
                .to_owned(),
        );
    }
    assert_eq!(codes[0], codes[1]);
    assert_eq!(
        codes[0].len(),
        23,
        "four groups of five digits: {}",
        codes[0]
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_replayed_offer_is_refused_and_the_link_stays() {
    let server = serve(&[]);
    let proxy = tampering_proxy(server.url.clone(), Mischief::Replay);
    let mut a = join(&proxy, "replay", "a", &[]);
    let mut b = join(&proxy, "replay", "b", &[]);
    for p in [&mut a, &mut b] {
        p.proc.expect(Duration::from_secs(20), "peer_join", |v| {
            event(v) == "peer_join"
        });
    }
    // B's first offer reaches A a second time, 3 s later: signed, but not newer.
    let error = a
        .proc
        .expect(Duration::from_secs(10), "identity_mismatch", |v| {
            event(v) == "error" && v["code"] == "identity_mismatch"
        });
    assert!(
        error["message"].as_str().unwrap_or("").contains("replayed"),
        "{error}"
    );
    b.proc
        .cmd(json!({"cmd": "send", "channel": "chat", "data": "still here"}));
    a.proc.expect(
        Duration::from_secs(5),
        "a message over the same link",
        |v| event(v) == "message" && v["data"] == "still here",
    );
    let all: Vec<&Value> = a.proc.seen.iter().chain(&b.proc.seen).collect();
    assert!(
        !all.iter().any(|v| event(v) == "peer_leave"),
        "the replay broke the link: {all:?}"
    );
}
