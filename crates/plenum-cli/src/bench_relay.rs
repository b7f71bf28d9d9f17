//! `plenum bench relay`: a relay room of real `plenum join` processes at a small neighbour
//! bound. Once every peer has joined, each sends a numbered `relay_send` probe to every
//! other every second; a probe counts when it arrives within a second. The figures: from
//! the last join, when every pair's probes began to arrive in time and kept doing so; how
//! many pairs the rounds at 5 s and 15 s missed; link changes per five seconds; the most
//! neighbours a peer announced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::bench::summary;

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    /// Peers in the room.
    #[arg(long, default_value_t = 8)]
    peers: usize,
    /// The neighbour bound of every peer.
    #[arg(long, default_value_t = 2)]
    max_neighbours: u16,
    /// Rooms to measure, one after another.
    #[arg(long, default_value_t = 4)]
    runs: usize,
    /// Probe rounds (one a second) per room.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

/// Lines the peers may print ahead of the bench reading them (a round is read before the
/// next is sent: a few hundred).
const LINES_AHEAD: usize = 65_536;

/// How soon a probe must arrive to count.
const IN_TIME: Duration = Duration::from_secs(1);

struct Peer {
    child: Child,
    stdin: ChildStdin,
    id: String,
}

/// One line a peer printed: which peer, when, what.
type Line = (usize, Instant, Value);

async fn spawn_peer(
    url: &str,
    room: &str,
    i: usize,
    max: u16,
    lines: mpsc::Sender<Line>,
) -> anyhow::Result<Peer> {
    let max = max.to_string();
    let args = ["--topology", "relay", "--max-neighbours", &max];
    let mut child = crate::bench::join_process(url, room, &format!("r{i}"), &args)?;
    let stdin = child.stdin.take().context("child stdin")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut id_tx = Some(id_tx);
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["event"] == "joined"
                && let Some(tx) = id_tx.take()
            {
                let _ = tx.send(v["peer"].as_str().unwrap_or_default().to_owned());
            }
            if lines.send((i, Instant::now(), v)).await.is_err() {
                return;
            }
        }
    });
    let id = tokio::time::timeout(Duration::from_secs(30), id_rx)
        .await
        .context("no joined line within 30 s")?
        .context("the peer ended before it joined")?;
    Ok(Peer { child, stdin, id })
}

/// One room's figures.
struct Run {
    joined_ms: f64,
    settled_ms: Option<f64>,
    missed_at: BTreeMap<u64, usize>,
    changes_per_5s: Vec<usize>,
    most_neighbours: usize,
    duplicates: usize,
    unreachable: usize,
}

async fn run_room(url: &str, run: usize, args: &RelayArgs) -> anyhow::Result<Run> {
    let room = format!("relay-bench-{run}");
    let (tx, mut lines) = mpsc::channel(LINES_AHEAD);
    let started = Instant::now();
    let mut peers = Vec::new();
    for i in 0..args.peers {
        peers.push(spawn_peer(url, &room, i, args.max_neighbours, tx.clone()).await?);
    }
    drop(tx);
    let index: BTreeMap<String, usize> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let n = peers.len();
    let joined = Instant::now();
    // Each probe's arrivals: how many, and when the first came.
    let mut got: BTreeMap<(usize, usize, u64), (u32, Instant)> = BTreeMap::new();
    let mut changes: Vec<Instant> = Vec::new();
    let mut most = 0;
    let mut unreachable = 0;
    let mut take =
        |(b, at, v): Line, got: &mut BTreeMap<_, (u32, Instant)>| match v["event"].as_str() {
            Some("relay_message") => {
                let from = v["from"].as_str().and_then(|f| index.get(f)).copied();
                if let (Some(a), Some(k)) = (from, v["data"]["probe"].as_u64()) {
                    got.entry((a, b, k)).or_insert((0, at)).0 += 1;
                }
            }
            Some("link_up" | "link_down") => changes.push(at),
            Some("relay_state") => {
                most = most.max(v["neighbours"].as_array().map_or(0, Vec::len));
            }
            Some("error") if v["code"] == "unreachable" => unreachable += 1,
            _ => {}
        };
    let mut sent = Vec::new();
    for k in 0..args.seconds {
        let round = joined + Duration::from_secs(k);
        while let Ok(Some(line)) = tokio::time::timeout_at(round.into(), lines.recv()).await {
            take(line, &mut got);
        }
        sent.push(Instant::now());
        for a in 0..n {
            for b in (0..n).filter(|b| *b != a) {
                let cmd = json!({"cmd": "relay_send", "to": peers[b].id, "data": {"probe": k}});
                let line = format!("{cmd}\n");
                peers[a]
                    .stdin
                    .write_all(line.as_bytes())
                    .await
                    .with_context(|| format!("peer r{a} ended"))?;
            }
        }
    }
    let end = joined + Duration::from_secs(args.seconds) + IN_TIME;
    while let Ok(Some(line)) = tokio::time::timeout_at(end.into(), lines.recv()).await {
        take(line, &mut got);
    }
    for mut p in peers {
        let _ = p.child.start_kill();
        let _ = p.child.wait().await;
    }
    let pairs = n * (n - 1);
    let missed = |k: u64| {
        let by = sent[k as usize] + IN_TIME;
        let arrived: BTreeSet<(usize, usize)> = got
            .iter()
            .filter(|((_, _, j), (_, at))| *j == k && *at <= by)
            .map(|((a, b, _), _)| (*a, *b))
            .collect();
        pairs - arrived.len()
    };
    let settled = (0..args.seconds)
        .find(|k| (*k..args.seconds).all(|j| missed(j) == 0))
        .map(|k| k as f64 * 1000.0);
    let missed_at = [5, 15]
        .into_iter()
        .filter(|k| *k < args.seconds)
        .map(|k| (k, missed(k)))
        .collect();
    let changes_per_5s = (0..args.seconds.div_ceil(5))
        .map(|w| {
            let from = started + Duration::from_secs(w * 5);
            let to = from + Duration::from_secs(5);
            changes
                .iter()
                .filter(|at| **at >= from && **at < to)
                .count()
        })
        .collect();
    Ok(Run {
        settled_ms: settled,
        missed_at,
        changes_per_5s,
        most_neighbours: most,
        duplicates: got.values().filter(|(c, _)| *c > 1).count(),
        joined_ms: joined.duration_since(started).as_secs_f64() * 1000.0,
        unreachable,
    })
}

pub(crate) async fn relay(args: &RelayArgs) -> anyhow::Result<Value> {
    if args.peers < 3 || args.seconds < 1 {
        bail!("--peers must be at least 3 and --seconds at least 1");
    }
    let server = Server::bind(([127, 0, 0, 1], 0).into(), ServerConfig::default()).await?;
    let url = server.url();
    let mut runs = Vec::new();
    let mut settled = Vec::new();
    for run in 0..args.runs {
        let r = run_room(&url, run, args).await?;
        if let Some(ms) = r.settled_ms {
            settled.push(ms);
        }
        runs.push(json!({
            "every_peer_joined_ms": r.joined_ms,
            "settled_ms_after_last_join": r.settled_ms,
            "pairs_missed_at_s": r.missed_at,
            "link_changes_per_5s_from_first_start": r.changes_per_5s,
            "most_neighbours_announced": r.most_neighbours,
            "probes_delivered_twice": r.duplicates,
            "unreachable_errors": r.unreachable,
        }));
    }
    Ok(json!({
        "peers": args.peers,
        "max_neighbours": args.max_neighbours,
        "seconds": args.seconds,
        "pairs": args.peers * (args.peers - 1),
        "runs_settled": settled.len(),
        "settled_ms_after_last_join": summary(settled),
        "runs": runs,
    }))
}
