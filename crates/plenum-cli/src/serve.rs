//! `plenum serve`.

use std::net::SocketAddr;

use plenum_signal::{RegistryConfig, Server, ServerConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Print a JSON line `{"event":"listening","url":...}` first on stdout.
    #[arg(long)]
    json: bool,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = RegistryConfig::default().max_frame_bytes)]
    max_frame_bytes: usize,
    /// Sustained frames per second per connection.
    #[arg(long, default_value_t = RegistryConfig::default().max_frames_per_sec)]
    max_frames_per_sec: u32,
    /// Peers per room.
    #[arg(long, default_value_t = RegistryConfig::default().max_peers_per_room)]
    max_peers_per_room: usize,
    /// Rooms per server.
    #[arg(long, default_value_t = RegistryConfig::default().max_rooms)]
    max_rooms: usize,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let registry = RegistryConfig {
        max_frame_bytes: args.max_frame_bytes,
        max_frames_per_sec: args.max_frames_per_sec.max(1),
        max_peers_per_room: args.max_peers_per_room,
        max_rooms: args.max_rooms,
        ..RegistryConfig::default()
    };
    let config = ServerConfig {
        registry,
        hard_frame_limit: args.max_frame_bytes.saturating_mul(32),
        ..ServerConfig::default()
    };
    let server = Server::bind(args.bind, config).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "url": server.url()})
        );
    } else {
        println!("plenum signaling server listening on {}", server.url());
    }
    shutdown_signal().await;
    tracing::info!(stats = ?server.stats(), "shutting down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
