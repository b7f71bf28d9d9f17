//! Sockets that connect and never finish the WebSocket upgrade (silent, or trickling half a
//! request) are closed after the handshake timeout, so they cannot hold the connection
//! slots a join needs.

use std::time::{Duration, Instant};

use plenum_proto::signal::ServerToClient;
use plenum_signal::{Server, ServerConfig, SignalDriver, SignalEvent, WsDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn the_default_handshake_timeout_is_ten_seconds() {
    assert_eq!(
        ServerConfig::default().handshake_timeout,
        Duration::from_secs(10)
    );
}

#[tokio::test]
async fn idle_sockets_are_closed_and_a_join_gets_in() {
    let config = ServerConfig {
        max_connections: 4,
        handshake_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for i in 0..4 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            // Half a request, then nothing.
            socket
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        idle.push(socket);
    }
    // Every slot is held. A client gets in once the idle sockets are closed.
    let driver = WsDriver::new(server.url()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let hello = loop {
        assert!(
            Instant::now() < deadline,
            "no join got in while idle sockets held the slots"
        );
        if let Ok(mut conn) = driver.connect().await
            && let Ok(Some(SignalEvent::Frame(frame))) =
                tokio::time::timeout(Duration::from_secs(5), conn.rx.recv()).await
        {
            break frame;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(matches!(hello, ServerToClient::Hello { .. }), "{hello:?}");
    // And each idle socket was closed by the server.
    for mut socket in idle {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf))
            .await
            .expect("an idle socket was left open");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "an idle socket got {read:?}"
        );
    }
}
