//! `plenum bench signal`: signaling servers alone and linked over NATS. Join time through
//! one server against a join forwarded between two; one server's memory per 10,000 idle
//! joined peers; joins per second admitted by one server and by three NATS-linked ones.
//! Servers run as `plenum serve` processes, and nats-server (Debian package
//! `nats-server`) is started on a free port of 127.0.0.1; all are ended by process id.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use plenum_proto::identity::{Identity, join_message};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{rss_kib, summary};

#[derive(Debug, clap::Args)]
pub(crate) struct SignalArgs {
    /// Print one JSON object (the only output mode).
    #[arg(long)]
    json: bool,
    /// Joins to time through each setup.
    #[arg(long, default_value_t = 200)]
    joins: usize,
    /// Idle joined peers for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    idle_peers: usize,
    /// Joins for the throughput figure.
    #[arg(long, default_value_t = 3_000)]
    burst: usize,
    /// Joins in flight at once in the throughput figure.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// A child process ended by its pid when dropped.
pub(crate) struct Child {
    child: tokio::process::Child,
    pub(crate) pid: u32,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

struct Nats {
    _proc: Child,
    url: String,
    store: std::path::PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

async fn nats() -> anyhow::Result<Nats> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let store = std::env::temp_dir().join(format!("plenum-bench-nats-{port}"));
    let child = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("nats-server (Debian package nats-server) is not on PATH")?;
    let pid = child.id().context("nats-server pid")?;
    let nats = Nats {
        _proc: Child { child, pid },
        url: format!("nats://127.0.0.1:{port}"),
        store,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nats-server did not listen on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(nats)
}

/// `plenum serve` on a free port, linked to `nats` when given; returns it and its URL.
pub(crate) async fn serve(nats: Option<&str>, extra: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.args(["serve", "--bind", "127.0.0.1:0", "--json"]);
    if let Some(url) = nats {
        command.args(["--nats", url]);
    }
    let mut child = command
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("server pid")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await??
        .context("no listening line")?;
    let url = serde_json::from_str::<Value>(&first)?["url"]
        .as_str()
        .context("no url")?
        .to_owned();
    Ok((Child { child, pid }, url))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await? {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
            Some(Ok(_)) => continue,
            other => bail!("signaling connection ended: {other:?}"),
        }
    }
}

/// A signed join of a fresh identity: the open connection once welcomed.
async fn join(url: &str, room: &str, who: &Identity) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let hello = next_text(&mut ws).await?;
    let challenge = hello["challenge"].as_str().context("no challenge")?;
    let frame = json!({
        "type": "join", "version": plenum_proto::PROTOCOL_VERSION, "room": room, "name": "b",
        "key": who.public().encode(), "proof": who.sign(&join_message(challenge, room)),
    });
    ws.send(Message::text(frame.to_string())).await?;
    loop {
        let v = next_text(&mut ws).await?;
        match v["type"].as_str() {
            Some("welcome") => return Ok(ws),
            Some("error") => bail!("join refused: {v}"),
            _ => continue,
        }
    }
}

pub(crate) async fn signal(args: &SignalArgs) -> anyhow::Result<Value> {
    let nats = nats().await?;
    let join_time = join_time(&nats.url, args.joins).await?;
    let memory = idle_memory(args.idle_peers).await?;
    let one = throughput(None, 1, args.burst, args.concurrency).await?;
    let three = throughput(Some(&nats.url), 3, args.burst, args.concurrency).await?;
    Ok(json!({
        "join_ms": join_time,
        "memory": memory,
        "joins_per_sec": {"one_server": one, "three_nats_linked_servers": three},
    }))
}

/// Join time, connect to welcome: into a room of one server, and into a room of another
/// server of the cluster (forwarded over NATS), taken in turns.
async fn join_time(nats: &str, joins: usize) -> anyhow::Result<Value> {
    let (_alone, alone) = serve(None, &[]).await?;
    let (_home, home) = serve(Some(nats), &[]).await?;
    let (_front, front) = serve(Some(nats), &[]).await?;
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    let mut held = Vec::new();
    for i in 0..joins {
        let room = format!("t-{}", i / 50);
        if i % 50 == 0 {
            // The room is created through its home first, untimed.
            held.push(join(&home, &room, &Identity::generate()).await?);
        }
        let who = Identity::generate();
        let started = Instant::now();
        held.push(join(&alone, &room, &who).await?);
        direct.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        held.push(join(&front, &room, &who).await?);
        forwarded.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(json!({
        "joins": joins,
        "one_server": summary(direct),
        "two_nats_linked_servers": summary(forwarded),
    }))
}

/// RSS of one `plenum serve` before and after `peers` joined peers sit idle on it, in
/// rooms of 100.
pub(crate) async fn idle_memory(peers: usize) -> anyhow::Result<Value> {
    let (server, url) = serve(None, &[]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(server.pid)?;
    let mut sockets = Vec::with_capacity(peers);
    for i in 0..peers {
        let room = format!("idle-{}", i / 100);
        sockets.push(join(&url, &room, &Identity::generate()).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(server.pid)?;
    drop(sockets);
    let per_10k = after.saturating_sub(before) as f64 * 10_000.0 / peers.max(1) as f64 / 1024.0;
    Ok(json!({
        "idle_peers": peers,
        "rss_before_mib": before as f64 / 1024.0,
        "rss_after_mib": after as f64 / 1024.0,
        "mib_per_10000_idle_peers": per_10k,
    }))
}

/// `burst` joins, `concurrency` at a time, into rooms of 10, spread over `servers`
/// servers (NATS-linked when more than one): joins per second, wall clock.
async fn throughput(
    nats: Option<&str>,
    servers: usize,
    burst: usize,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let mut procs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..servers {
        let (proc, url) = serve(nats, &["--max-frames-per-sec", "1000"]).await?;
        procs.push(proc);
        urls.push(url);
    }
    // Identities are made before the clock starts: signing is the clients' cost.
    let work: Vec<(String, String, Identity)> = (0..burst)
        .map(|i| {
            let room = format!("burst-{servers}-{}", i / 10);
            (urls[i % servers].clone(), room, Identity::generate())
        })
        .collect();
    let started = Instant::now();
    let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(work)
        .map(|(url, room, who)| async move { join(&url, &room, &who).await })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    drop(results);
    drop(procs);
    Ok(json!({
        "servers": servers,
        "joins": burst,
        "failed": failed,
        "seconds": elapsed,
        "joins_per_sec": (burst - failed) as f64 / elapsed,
    }))
}
