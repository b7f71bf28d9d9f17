//! An echo service written once against `DatagramSocket`, run over UDP and over a relay
//! room of three peers with the same two functions: UDP sockets on 127.0.0.1 in the one
//! case, peer ids and `RelaySocket`s in the other.
//!
//! `cargo run -p plenum --example echo` prints one line per transport and exits 0 when
//! every echo came back (a test runs it too).
#![allow(clippy::disallowed_methods)] // an application of the crate reads the clock as any would

use std::time::Duration;

use plenum::datagram::{DatagramSocket, RelaySocket};
use plenum::{Room, RoomConfig, TopologySpec};

/// Answers `count` datagrams with the same bytes.
#[allow(unreachable_pub)]
pub async fn serve<S: DatagramSocket>(socket: &S, count: usize) -> std::io::Result<()> {
    let mut buf = [0u8; 1500];
    for _ in 0..count {
        let (len, from) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..len], &from).await?;
    }
    Ok(())
}

/// Sends each of `messages` to `server` and waits for it to come back.
#[allow(unreachable_pub)]
pub async fn ask<S: DatagramSocket>(
    socket: &S,
    server: &S::Addr,
    messages: &[&str],
) -> std::io::Result<Vec<String>> {
    let mut buf = [0u8; 1500];
    let mut back = Vec::new();
    for m in messages {
        socket.send_to(m.as_bytes(), server).await?;
        let (len, _) = socket.recv_from(&mut buf).await?;
        back.push(String::from_utf8_lossy(&buf[..len]).into_owned());
    }
    Ok(back)
}

const MESSAGES: &[&str] = &["hello", "echo", "over whatever carries datagrams"];

async fn over_udp() -> std::io::Result<Vec<String>> {
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = DatagramSocket::local_addr(&server)?;
    let serving = tokio::spawn(async move { serve(&server, MESSAGES.len()).await });
    let back = ask(&client, &addr, MESSAGES).await?;
    serving.await.map_err(std::io::Error::other)??;
    Ok(back)
}

async fn relay_peer(url: &str, name: &str) -> anyhow::Result<RelaySocket> {
    let config = RoomConfig::builder("echo", name)
        .server(url)
        .topology(TopologySpec::relay(2))
        .udp_bind(vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))])
        .build()?;
    let (room, events) = Room::join(config).await?;
    Ok(RelaySocket::new(room, events))
}

async fn over_relay() -> anyhow::Result<Vec<String>> {
    let signaling = plenum_signal::Server::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        plenum_signal::ServerConfig::default(),
    )
    .await?;
    let url = signaling.url();
    let server = relay_peer(&url, "server").await?;
    let _middle = relay_peer(&url, "middle").await?;
    let client = relay_peer(&url, "client").await?;
    let addr = server.local_addr()?;
    // Links take a moment to open: wait until the client and the server have one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for peer in [&client, &server] {
        while peer
            .room()
            .links()
            .await?
            .iter()
            .all(|(_, s)| s.as_str() != "connected")
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "a peer never linked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The server's room lives until the client has its last echo: a room dropped at once
    // would take the last reply, not yet on its way, with it.
    let serving =
        tokio::spawn(async move { serve(&server, MESSAGES.len()).await.map(|()| server) });
    let back =
        tokio::time::timeout(Duration::from_secs(30), ask(&client, &addr, MESSAGES)).await??;
    let server = serving.await??;
    server.room().leave().await;
    client.room().leave().await;
    Ok(back)
}

#[allow(unreachable_pub)]
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let udp = over_udp().await?;
    println!("udp: {udp:?}");
    let relay = over_relay().await?;
    println!("relay: {relay:?}");
    anyhow::ensure!(udp == MESSAGES, "udp echoed {udp:?}");
    anyhow::ensure!(relay == MESSAGES, "relay echoed {relay:?}");
    Ok(())
}
