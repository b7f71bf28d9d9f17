//! The server sends text frames above 2 KiB as WebSocket fragments; a client gets them
//! whole: the 30th peer of a room reads a `welcome` listing the 29 before it.

use std::time::Duration;

use plenum_proto::identity::{Identity, join_message};
use plenum_proto::signal::{ClientToServer, ServerToClient};
use plenum_proto::{DisplayName, PROTOCOL_VERSION, RoomName};
use plenum_signal::{Server, ServerConfig, SignalConnection, SignalDriver, SignalEvent, WsDriver};

async fn next_frame(conn: &mut SignalConnection) -> ServerToClient {
    match tokio::time::timeout(Duration::from_secs(10), conn.rx.recv()).await {
        Ok(Some(SignalEvent::Frame(frame))) => frame,
        other => panic!("no frame: {other:?}"),
    }
}

#[tokio::test]
async fn a_welcome_of_many_peers_arrives_whole() {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap();
    let driver = WsDriver::new(server.url()).unwrap();
    let mut held = Vec::new();
    for i in 0..30 {
        let mut conn = driver.connect().await.unwrap();
        let ServerToClient::Hello { challenge, .. } = next_frame(&mut conn).await else {
            panic!("no hello");
        };
        let who = Identity::generate();
        let join = ClientToServer::Join {
            version: PROTOCOL_VERSION,
            room: RoomName::new("big").unwrap(),
            name: DisplayName::new(format!("a rather long display name {i}")).unwrap(),
            password: None,
            key: who.public().encode(),
            proof: who.sign(&join_message(&challenge, "big")),
            token: None,
            resume: None,
            topology: None,
            root: None,
            role: Default::default(),
            mesh_only: false,
        };
        let sent = join.encode();
        conn.tx.send(join).await.unwrap();
        let ServerToClient::Welcome { peers, .. } = next_frame(&mut conn).await else {
            panic!("no welcome");
        };
        assert_eq!(peers.len(), i, "the welcome lists everyone before");
        if i == 29 {
            let welcome = serde_json::to_string(&peers).unwrap();
            assert!(welcome.len() > 2048, "{} bytes: sent whole", welcome.len());
            assert!(sent.len() < 2048);
        }
        held.push(conn);
    }
}
