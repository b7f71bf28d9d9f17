//! `plenum bench turn`: a TURN-relayed link against a direct one, side by side in one run:
//! round-trip time and data throughput. Needs a TURN server with `use-auth-secret`
//! (scripts/bench-turn.sh starts coturn on loopback and runs this).

use std::net::SocketAddr;
use std::time::Duration;

use plenum::{IceTransport, Room, RoomConfig, RoomEvent};
use plenum_signal::{RegistryConfig, Server, ServerConfig, TurnConfig};
use serde_json::{Value, json};

use crate::bench::{summary, throughput_with, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct TurnArgs {
    /// The TURN server (turn:HOST:PORT).
    #[arg(long)]
    turn_url: String,
    /// Its shared secret (coturn's static-auth-secret).
    #[arg(long)]
    turn_secret_file: std::path::PathBuf,
    /// Round trips to time on each link.
    #[arg(long, default_value_t = 200)]
    pings: usize,
    /// Mebibytes to push through each link.
    #[arg(long, default_value_t = 32)]
    megabytes: usize,
}

fn peer(url: &str, room: &str, name: &str, transport: IceTransport) -> anyhow::Result<RoomConfig> {
    Ok(RoomConfig::builder(room, name)
        .server(url)
        .udp_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        .ice_transport(transport)
        .build()?)
}

pub(crate) async fn turn(args: &TurnArgs) -> anyhow::Result<Value> {
    let registry = RegistryConfig {
        turn: Some(TurnConfig {
            urls: vec![args.turn_url.clone()],
            secret: crate::serve::read_secret(&args.turn_secret_file)?,
            ttl: Duration::from_secs(600),
        }),
        ..RegistryConfig::default()
    };
    let config = ServerConfig {
        registry,
        ..ServerConfig::default()
    };
    let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?;
    let url = server.url();
    let mut out = serde_json::Map::new();
    for (label, transport) in [
        ("direct", IceTransport::All),
        ("relayed", IceTransport::Relay),
    ] {
        let (a, mut a_events) = Room::join(peer(&url, label, "a", transport)?).await?;
        let (_b, _b_events) = Room::join(peer(&url, label, "b", transport)?).await?;
        let b_id = wait_for(&mut a_events, "the link", |e| match e {
            RoomEvent::PeerJoin { peer, .. } => Some(peer),
            _ => None,
        })
        .await?;
        let path = a
            .peers()
            .await?
            .into_iter()
            .find(|p| p.peer == b_id)
            .and_then(|p| p.path)
            .map(|p| p.as_str());
        let mut rtt = Vec::with_capacity(args.pings);
        for _ in 0..args.pings {
            rtt.push(a.ping(&b_id).await?.as_secs_f64() * 1000.0);
        }
        let room = format!("{label}-bulk");
        let bulk =
            throughput_with(|name| peer(&url, &room, name, transport), args.megabytes).await?;
        a.leave().await;
        out.insert(
            label.into(),
            json!({"path": path, "rtt_ms": summary(rtt), "throughput": bulk}),
        );
    }
    Ok(Value::Object(out))
}
