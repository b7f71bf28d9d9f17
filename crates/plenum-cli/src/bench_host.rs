//! `plenum bench host`: host failover in a host room of real `plenum join` processes. Each
//! run starts a room, waits until every peer is in step with the first, kills the host
//! with SIGKILL and times until every survivor is linked to the one new host (detection
//! included: the server sees the connection end, the survivors choose, one claims).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::bench::summary;

#[derive(Debug, clap::Args)]
pub(crate) struct HostArgs {
    /// Peers in the room.
    #[arg(long, default_value_t = 5)]
    peers: usize,
    /// Failovers to time (one room each).
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

/// A `plenum join` process and the JSON lines it prints, with their arrival times.
struct Joined {
    child: Child,
    id: String,
    lines: mpsc::Receiver<(Instant, Value)>,
}

/// Lines a peer may print ahead of the bench reading them (a run reads a few dozen).
const LINES_AHEAD: usize = 4096;

const WAIT: Duration = Duration::from_secs(30);

async fn spawn_peer(url: &str, room: &str, name: &str) -> anyhow::Result<Joined> {
    let mut child = crate::bench::join_process(url, room, name, &["--topology", "host"])?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, mut lines) = mpsc::channel(LINES_AHEAD);
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send((Instant::now(), v)).await.is_err()
            {
                return;
            }
        }
    });
    let (_, joined) = next_event(&mut lines, "joined", |_| true).await?;
    let id = joined["peer"].as_str().unwrap_or_default().to_owned();
    Ok(Joined { child, id, lines })
}

async fn next_event(
    lines: &mut mpsc::Receiver<(Instant, Value)>,
    name: &str,
    pick: impl Fn(&Value) -> bool,
) -> anyhow::Result<(Instant, Value)> {
    tokio::time::timeout(WAIT, async {
        while let Some((at, v)) = lines.recv().await {
            if v["event"] == name && pick(&v) {
                return Ok((at, v));
            }
        }
        bail!("peer ended waiting for {name}")
    })
    .await
    .with_context(|| format!("no {name} within {WAIT:?}"))?
}

pub(crate) async fn host(args: &HostArgs) -> anyhow::Result<Value> {
    if args.peers < 3 {
        bail!("--peers must be at least 3 (a host and two survivors)");
    }
    let server = Server::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await?;
    let url = server.url();
    let mut failover = Vec::new();
    let mut first_relinked = Vec::new();
    let mut lowest = 0;
    for run in 0..args.runs {
        let room = format!("failover-{run}");
        let mut peers = Vec::new();
        for i in 0..args.peers {
            peers.push(spawn_peer(&url, &room, &format!("p{i}")).await?);
        }
        let first = peers[0].id.clone();
        for p in &mut peers {
            next_event(&mut p.lines, "host", |v| v["peer"] == first.as_str()).await?;
        }
        let killed = Instant::now();
        peers[0].child.start_kill().context("kill the host")?;
        let mut hosts = BTreeSet::new();
        let mut times = Vec::new();
        for p in &mut peers[1..] {
            let (at, v) = next_event(&mut p.lines, "host", |v| v["peer"] != first.as_str()).await?;
            hosts.insert(v["peer"].as_str().unwrap_or_default().to_owned());
            times.push(at.duration_since(killed).as_secs_f64() * 1000.0);
        }
        if hosts.len() != 1 {
            bail!("run {run}: the survivors disagree on the host: {hosts:?}");
        }
        let ids: BTreeSet<&str> = peers[1..].iter().map(|p| p.id.as_str()).collect();
        if hosts.iter().next().map(String::as_str) == ids.first().copied() {
            lowest += 1;
        }
        times.sort_by(f64::total_cmp);
        first_relinked.push(times[0]);
        failover.push(times[times.len() - 1]);
        for mut p in peers {
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
        }
    }
    Ok(json!({
        "peers": args.peers,
        "runs": args.runs,
        "failover_ms_every_survivor_relinked": summary(failover),
        "failover_ms_first_survivor_relinked": summary(first_relinked),
        "new_host_was_lowest_id": lowest,
    }))
}
