//! Two signaling servers sharing a room over a real nats-server (started here with
//! JetStream on a free port of 127.0.0.1, killed by its pid), and frames forged on their
//! NATS subjects: malformed ones, ones for connections a server does not hold, ones from a
//! server that is not a client's home, and a forged client of another room addressing a
//! peer of this one. Each is refused with a log line and counted; the room's own
//! signaling goes on as before.

use std::time::Duration;

use futures_util::StreamExt;
use plenum_proto::identity::{Identity, join_message};
use plenum_proto::signal::{ClientToServer, ServerToClient, SignalPayload};
use plenum_proto::{DisplayName, PROTOCOL_VERSION, PeerId, RoomName};
use plenum_signal::{Server, ServerConfig, SignalConnection, SignalDriver, SignalEvent, WsDriver};
use serde_json::{Value, json};

struct Nats {
    child: std::process::Child,
    url: String,
    store: std::path::PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn nats() -> Nats {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let store = std::env::temp_dir().join(format!("plenum-nats-{}-{port}", std::process::id()));
    let child = std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server (Debian package nats-server) on PATH");
    let nats = Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        store,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return nats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nats-server did not listen on {port}");
}

async fn next_frame(conn: &mut SignalConnection) -> ServerToClient {
    match tokio::time::timeout(Duration::from_secs(10), conn.rx.recv()).await {
        Ok(Some(SignalEvent::Frame(frame))) => frame,
        other => panic!("no frame: {other:?}"),
    }
}

/// Nothing arrives for a while (beyond keep-alive answers).
async fn quiet(conn: &mut SignalConnection) {
    if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(700), conn.rx.recv()).await
    {
        panic!("unexpected {event:?}");
    }
}

fn join_frame(who: &Identity, challenge: &str, room: &str) -> ClientToServer {
    ClientToServer::Join {
        version: PROTOCOL_VERSION,
        room: RoomName::new(room).expect("room"),
        name: DisplayName::new("n").expect("name"),
        password: None,
        key: who.public().encode(),
        proof: who.sign(&join_message(challenge, room)),
        token: None,
        resume: None,
        topology: None,
        root: None,
        role: Default::default(),
        mesh_only: false,
    }
}

async fn join(url: &str, room: &str) -> (SignalConnection, PeerId) {
    let mut conn = WsDriver::new(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let ServerToClient::Hello { challenge, .. } = next_frame(&mut conn).await else {
        panic!("no hello");
    };
    let who = Identity::generate();
    conn.tx
        .send(join_frame(&who, &challenge, room))
        .await
        .expect("send");
    loop {
        if let ServerToClient::Welcome { peer, .. } = next_frame(&mut conn).await {
            return (conn, peer);
        }
    }
}

fn candidate(to: &PeerId, text: &str) -> ClientToServer {
    ClientToServer::Signal {
        to: to.clone(),
        from: None,
        payload: SignalPayload::Candidate {
            candidate: text.into(),
            sdp_mid: None,
            sdp_mline_index: None,
        },
    }
}

async fn receives(conn: &mut SignalConnection, text: &str) {
    loop {
        if let ServerToClient::Signal {
            payload: SignalPayload::Candidate { candidate, .. },
            ..
        } = next_frame(conn).await
        {
            assert_eq!(candidate, text);
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_frames_on_the_nats_subjects_are_refused_and_change_nothing() {
    let nats = nats();
    let config = || ServerConfig {
        nats: Some(nats.url.clone()),
        ..ServerConfig::default()
    };
    let s1 = Server::bind("127.0.0.1:0".parse().unwrap(), config())
        .await
        .unwrap();
    let s2 = Server::bind("127.0.0.1:0".parse().unwrap(), config())
        .await
        .unwrap();
    let (f1, f2) = (s1.federation().unwrap(), s2.federation().unwrap());
    let id1 = f1.id().to_owned();
    let id2 = f2.id().to_owned();

    // A spy on the cluster's subjects learns the number s2 gave b's connection.
    let nc = async_nats::connect(&nats.url).await.unwrap();
    let mut spy = nc.subscribe(format!("plenum.srv.{id1}.up")).await.unwrap();
    nc.flush().await.unwrap();

    let (mut a, a_id) = join(&s1.url(), "room").await;
    let (mut b, b_id) = join(&s2.url(), "room").await;
    let opened: Value = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), spy.next())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&msg.payload).unwrap();
        if v["op"] == "open" {
            break v;
        }
    };
    assert_eq!(opened["from"], id2.as_str());
    let b_conn = opened["conn"].as_u64().unwrap();
    assert_eq!(f1.forwarded(), (1, 0), "s1 holds b's connection for s2");
    assert_eq!(f2.forwarded(), (0, 1));
    // The room works across the servers.
    b.tx.send(candidate(&a_id, "b to a")).await.unwrap();
    receives(&mut a, "b to a").await;

    let up1 = format!("plenum.srv.{id1}.up");
    let down2 = format!("plenum.srv.{id2}.down");
    let forged_server = "00000000000000ff";
    let signal_a = candidate(&a_id, "forged").encode();
    let forgeries: Vec<(&str, Value)> = vec![
        // Not JSON, and JSON of no known operation.
        (&up1, json!("not a frame")),
        (&up1, json!({"op": "shout", "from": id2, "conn": b_conn})),
        // A sender that is no server id.
        (
            &up1,
            json!({"op": "frame", "from": "*", "conn": b_conn, "text": signal_a}),
        ),
        // b's connection number, claimed by a server that does not hold it.
        (
            &up1,
            json!({"op": "frame", "from": forged_server, "conn": b_conn, "text": signal_a}),
        ),
        // A connection s2 never opened.
        (
            &up1,
            json!({"op": "frame", "from": id2, "conn": b_conn ^ 1, "text": signal_a}),
        ),
        // A second open of b's connection.
        (
            &up1,
            json!({"op": "open", "from": id2, "conn": b_conn, "challenge": "x"}),
        ),
        // A frame for b from a server that is not its home, and for a client s2 lacks.
        (
            &down2,
            json!({"op": "frame", "from": forged_server, "conn": b_conn, "text": "{}"}),
        ),
        (
            &down2,
            json!({"op": "close", "from": id1, "conn": b_conn ^ 1}),
        ),
    ];
    let (refused1, refused2) = (f1.refused_frames(), f2.refused_frames());
    for (subject, payload) in &forgeries {
        let bytes = match payload {
            Value::String(s) => s.clone().into_bytes(),
            v => v.to_string().into_bytes(),
        };
        nc.publish(subject.to_string(), bytes.into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f1.refused_frames() < refused1 + 6 || f2.refused_frames() < refused2 + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "forgeries not all refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    quiet(&mut a).await;
    quiet(&mut b).await;
    assert_eq!(f1.refused_frames(), refused1 + 6);
    assert_eq!(f2.refused_frames(), refused2 + 2);

    // A client of another room, forged over NATS with a server id of its own, addresses
    // a: it gets unknown_peer, and a hears nothing.
    let mut forged_down = nc
        .subscribe(format!("plenum.srv.{forged_server}.down"))
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let who = Identity::generate();
    let open = json!({"op": "open", "from": forged_server, "conn": 1, "challenge": "c"});
    nc.publish(up1.clone(), open.to_string().into())
        .await
        .unwrap();
    let frames = [
        join_frame(&who, "c", "another room").encode(),
        candidate(&a_id, "from another room").encode(),
    ];
    for text in frames {
        let up = json!({"op": "frame", "from": forged_server, "conn": 1, "text": text});
        nc.publish(up1.clone(), up.to_string().into())
            .await
            .unwrap();
    }
    let mut codes = Vec::new();
    while !codes.contains(&"unknown_peer".to_owned()) {
        let msg = tokio::time::timeout(Duration::from_secs(5), forged_down.next())
            .await
            .expect("an answer to the forged client")
            .unwrap();
        let down: Value = serde_json::from_slice(&msg.payload).unwrap();
        if let Some(text) = down["text"].as_str()
            && let Ok(ServerToClient::Error { code, .. }) = ServerToClient::decode(text)
        {
            codes.push(
                serde_json::to_value(code)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    quiet(&mut a).await;

    // And the room goes on, both ways.
    a.tx.send(candidate(&b_id, "a to b")).await.unwrap();
    receives(&mut b, "a to b").await;
    b.tx.send(candidate(&a_id, "b to a again")).await.unwrap();
    receives(&mut a, "b to a again").await;
}
