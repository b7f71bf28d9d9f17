//! `plenum serve`.

use std::net::SocketAddr;

use plenum_signal::{RegistryConfig, Server, ServerConfig, Tls, TurnConfig};

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
    /// Peers per full-mesh room.
    #[arg(long, default_value_t = RegistryConfig::default().max_peers_per_room)]
    max_peers_per_room: usize,
    /// Peers per cellular or tree room (`join --topology cells` or `tree`).
    #[arg(long, default_value_t = RegistryConfig::default().max_peers_per_cellular_room)]
    max_peers_per_cellular_room: usize,
    /// Rooms per server.
    #[arg(long, default_value_t = RegistryConfig::default().max_rooms)]
    max_rooms: usize,
    /// Admit only peers with a room token minted with the secret in this file
    /// (`plenum token`).
    #[arg(long)]
    token_secret_file: Option<std::path::PathBuf>,
    /// A TURN server to hand every admitted peer, with short-lived credentials
    /// (turn:HOST:PORT; repeatable; needs --turn-secret-file).
    #[arg(long, requires = "turn_secret_file")]
    turn_url: Vec<String>,
    /// The secret shared with the TURN server (coturn's static-auth-secret).
    #[arg(long, requires = "turn_url")]
    turn_secret_file: Option<std::path::PathBuf>,
    /// How long minted TURN credentials stay valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    turn_ttl: u64,
    /// A STUN server to hand every admitted peer (repeatable).
    #[arg(long)]
    stun_url: Vec<String>,
    /// Seconds a peer whose connection dropped keeps its place, able to resume.
    #[arg(long, default_value_t = RegistryConfig::default().resume_grace.as_secs())]
    resume_grace: u64,
    /// Share rooms with the other servers on this NATS server (nats://host:port, with
    /// JetStream: `nats-server -js`); peers of one room may then use any of them.
    #[arg(long)]
    nats: Option<String>,
    /// Serve https:// and wss:// with this certificate chain (PEM); browsers allow a guest's
    /// camera and microphone only on https (or localhost).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,
}

/// Reads a secret file: its content without surrounding whitespace, at least 16 bytes.
pub(crate) fn read_secret(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("secret file {}: {e}", path.display()))?;
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < 16 {
        anyhow::bail!(
            "secret file {} holds {} bytes; at least 16 are needed",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let registry = RegistryConfig {
        max_frame_bytes: args.max_frame_bytes,
        max_frames_per_sec: args.max_frames_per_sec.max(1),
        max_peers_per_room: args.max_peers_per_room,
        max_peers_per_cellular_room: args.max_peers_per_cellular_room,
        max_rooms: args.max_rooms,
        resume_grace: std::time::Duration::from_secs(args.resume_grace),
        token_secret: args
            .token_secret_file
            .as_deref()
            .map(read_secret)
            .transpose()?,
        turn: match &args.turn_secret_file {
            Some(path) => Some(TurnConfig {
                urls: args.turn_url.clone(),
                secret: read_secret(path)?,
                ttl: std::time::Duration::from_secs(args.turn_ttl),
            }),
            None => None,
        },
        stun_urls: args.stun_url.clone(),
        ..RegistryConfig::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::from_pem_files(cert, key)?),
        _ => None,
    };
    let config = ServerConfig {
        registry,
        tls,
        hard_frame_limit: args.max_frame_bytes.saturating_mul(32),
        nats: args.nats.clone(),
        site: plenum_site::site(),
        ..ServerConfig::default()
    };
    let server = Server::bind(args.bind, config).await?;
    if args.json {
        let cluster_id = server.federation().map(|f| f.id().to_owned());
        println!(
            "{}",
            serde_json::json!({"event": "listening", "url": server.url(), "cluster_id": cluster_id})
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
