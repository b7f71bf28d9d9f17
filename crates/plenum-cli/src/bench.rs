//! `plenum bench rooms`: join time, round trip, throughput and signaling memory, as JSON.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plenum::{PeerId, Room, RoomConfig, RoomEvent, RoomEvents, Target};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Rooms over loopback: join time, message round trip, throughput, server memory.
    Rooms(RoomsArgs),
    /// The whiteboard: stroke latency between peers, applying points, a late joiner's sync.
    Board(crate::bench_board::BoardArgs),
    /// Audio: mouth-to-ear latency on loopback, Opus speed.
    Audio(crate::bench_audio::AudioArgs),
    /// Video: VP8 speed, glass-to-glass latency on loopback, CPU of a 4-peer video call.
    Video(crate::bench_video::VideoArgs),
    /// Signaling restarts: time until every peer resumed; the cost of identity checks.
    Resume(crate::bench_resume::ResumeArgs),
    /// A TURN-relayed link against a direct one: round trip and throughput.
    Turn(crate::bench_turn::TurnArgs),
    /// Host rooms: failover from the host's SIGKILL to every survivor relinked.
    Host(crate::bench_host::HostArgs),
    /// A relay room at a small neighbour bound: when every pair is reached and stays so,
    /// and how much the links change meanwhile.
    Relay(crate::bench_relay::RelayArgs),
    /// Signaling servers alone and linked over NATS: join time, memory, joins per second.
    Signal(crate::bench_signal::SignalArgs),
    /// A frozen peer: the others' round trips and traffic while its link stalls, and how
    /// soon it is given up and linked again.
    Stall(crate::bench_stall::StallArgs),
    /// Media down a broadcast tree: glass-to-glass latency by depth, and the CPU a
    /// forwarder spends per stream it passes on.
    Tree(crate::bench_tree::TreeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct RoomsArgs {
    /// Print one JSON object (the only output mode; kept for symmetry with other commands).
    #[arg(long)]
    json: bool,
    /// Joins to time.
    #[arg(long, default_value_t = 20)]
    joins: usize,
    /// Joins to time from a new `plenum join` process, one after another.
    #[arg(long, default_value_t = 7)]
    process_joins: usize,
    /// Round trips to time.
    #[arg(long, default_value_t = 500)]
    pings: usize,
    /// Mebibytes to push through one link in 64 KiB messages.
    #[arg(long, default_value_t = 64)]
    megabytes: usize,
    /// Idle signaling connections for the memory figure.
    #[arg(long, default_value_t = 1000)]
    idle_peers: usize,
    /// webrtc-rs's data-channels-stress-bench binary, run for comparison (see scripts/bench.sh).
    #[arg(long)]
    baseline_bin: Option<std::path::PathBuf>,
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let figures = match command {
        BenchCommand::Rooms(args) => rooms(&args).await?,
        BenchCommand::Video(args) => crate::bench_video::video(&args).await?,
        BenchCommand::Audio(args) => crate::bench_audio::audio(&args).await?,
        BenchCommand::Turn(args) => crate::bench_turn::turn(&args).await?,
        BenchCommand::Resume(args) => crate::bench_resume::resume(&args).await?,
        BenchCommand::Board(args) => crate::bench_board::board(&args).await?,
        BenchCommand::Host(args) => crate::bench_host::host(&args).await?,
        BenchCommand::Relay(args) => crate::bench_relay::relay(&args).await?,
        BenchCommand::Signal(args) => crate::bench_signal::signal(&args).await?,
        BenchCommand::Stall(args) => crate::bench_stall::stall(&args).await?,
        BenchCommand::Tree(args) => crate::bench_tree::tree(&args).await?,
    };
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(())
}

pub(crate) fn loopback_peer(url: &str, room: &str, name: &str) -> anyhow::Result<RoomConfig> {
    Ok(RoomConfig::builder(room, name)
        .server(url)
        .udp_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        .build()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A signaling server on loopback and two peers in `room`, linked to each other.
pub(crate) struct Pair {
    pub(crate) _server: Server,
    pub(crate) url: String,
    pub(crate) a: Room,
    /// Held, unread, for as long as the pair lives.
    pub(crate) _a_events: RoomEvents,
    pub(crate) b: Room,
    pub(crate) b_events: RoomEvents,
}

pub(crate) async fn linked_pair(room: &str) -> anyhow::Result<Pair> {
    let server = Server::bind(([127, 0, 0, 1], 0).into(), ServerConfig::default()).await?;
    let url = server.url();
    let (a, mut a_events) = Room::join(loopback_peer(&url, room, "a")?).await?;
    let (b, b_events) = Room::join(loopback_peer(&url, room, "b")?).await?;
    let b_id = b.id().clone();
    wait_for(&mut a_events, "b's link", |e| {
        matches!(e, RoomEvent::PeerJoin { peer, .. } if peer == b_id).then_some(())
    })
    .await?;
    Ok(Pair {
        _server: server,
        url,
        a,
        _a_events: a_events,
        b,
        b_events,
    })
}

/// A `plenum join` process of this executable on loopback, printing JSON lines, with
/// `args` after the common ones; its stdin and stdout piped, killed when dropped.
pub(crate) fn join_process(
    url: &str,
    room: &str,
    name: &str,
    args: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    use anyhow::Context;
    let exe = std::env::current_exe().context("own executable")?;
    tokio::process::Command::new(exe)
        .args(["join", "--server", url, "--room", room, "--name", name])
        .args(["--json", "--bind-ip", "127.0.0.1"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn plenum join")
}

pub(crate) fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    json!({
        "n": samples.len(),
        "p50": percentile(&samples, 50.0),
        "p95": percentile(&samples, 95.0),
        "min": samples.first(),
        "max": samples.last(),
    })
}

pub(crate) async fn wait_for<T>(
    events: &mut RoomEvents,
    what: &str,
    mut pick: impl FnMut(RoomEvent) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Duration::from_secs(20);
    tokio::time::timeout(deadline, async {
        while let Some(event) = events.recv().await {
            if let Some(v) = pick(event) {
                return Ok(v);
            }
        }
        bail!("room closed while waiting for {what}")
    })
    .await
    .with_context(|| format!("no {what} within {deadline:?}"))?
}

/// Spawns `plenum join` into the bench room and times it to the anchor's greeting on its
/// standard output, in milliseconds; then it leaves (killed if it does not end).
async fn process_join(url: &str, i: usize) -> anyhow::Result<f64> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let started = Instant::now();
    let mut child = join_process(url, "bench", &format!("process{i}"), &[])?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let greeted = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["event"] == "message" {
                return anyhow::Ok(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        bail!("plenum join ended before its first message")
    })
    .await
    .context("no first message from a new plenum join within 20 s")??;
    if let Some(stdin) = child.stdin.as_mut() {
        stdin.write_all(b"{\"cmd\":\"leave\"}\n").await?;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        child.kill().await?;
    }
    Ok(greeted)
}

async fn rooms(args: &RoomsArgs) -> anyhow::Result<Value> {
    let server = Server::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        ServerConfig::default(),
    )
    .await?;
    let url = server.url();

    // Anchor: greets every newcomer on "bench" and echoes "echo".
    let (anchor, mut anchor_events) = Room::join(loopback_peer(&url, "bench", "anchor")?).await?;
    let greeter = anchor.clone();
    let greet_task = tokio::spawn(async move {
        while let Some(event) = anchor_events.recv().await {
            match event {
                RoomEvent::PeerJoin { peer, .. } => {
                    let _ = greeter
                        .send(
                            &plenum::ChannelName::new("bench").expect("valid"),
                            "hi".into(),
                            Target::One(peer),
                        )
                        .await;
                }
                RoomEvent::Message {
                    channel,
                    from,
                    data,
                } if channel.as_str() == "echo" => {
                    let _ = greeter.send(&channel, data, Target::One(from)).await;
                }
                _ => {}
            }
        }
    });

    // 1. Join time: from join() to the first message delivered from the existing peer.
    let mut join_ms = Vec::new();
    let mut link_ms = Vec::new();
    for i in 0..args.joins {
        let started = Instant::now();
        let (room, mut events) =
            Room::join(loopback_peer(&url, "bench", &format!("joiner{i}"))?).await?;
        wait_for(&mut events, "peer_join", |e| {
            matches!(e, RoomEvent::PeerJoin { .. }).then_some(())
        })
        .await?;
        link_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        wait_for(&mut events, "greeting", |e| {
            matches!(e, RoomEvent::Message { .. }).then_some(())
        })
        .await?;
        join_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        room.leave().await;
    }

    // 1b. The same from a new `plenum join` process: from its spawn to its first message
    // (the greeting) on its standard output; it includes the process's start and its
    // signaling handshake.
    let mut process_ms = Vec::new();
    for i in 0..args.process_joins {
        process_ms.push(process_join(&url, i).await?);
    }

    // 2. Round trips: envelope ping/pong, and a 16-byte application echo.
    let (client, mut client_events) = Room::join(loopback_peer(&url, "bench", "client")?).await?;
    let anchor_id: PeerId = wait_for(&mut client_events, "anchor link", |e| match e {
        RoomEvent::PeerJoin { peer, .. } => Some(peer),
        _ => None,
    })
    .await?;
    let mut ping_ms = Vec::new();
    for _ in 0..args.pings {
        ping_ms.push(client.ping(&anchor_id).await?.as_secs_f64() * 1000.0);
    }
    let echo = plenum::ChannelName::new("echo")?;
    let mut echo_ms = Vec::new();
    for _ in 0..args.pings {
        let started = Instant::now();
        client
            .send(&echo, vec![7u8; 16].into(), Target::One(anchor_id.clone()))
            .await?;
        wait_for(&mut client_events, "echo", |e| {
            matches!(e, RoomEvent::Message { ref channel, .. } if channel.as_str() == "echo")
                .then_some(())
        })
        .await?;
        echo_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    client.leave().await;
    anchor.leave().await;
    greet_task.abort();

    // 3. Throughput: reliable, ordered, 64 KiB messages over one link, against webrtc-rs
    // alone with the same channel settings, in turns (three of each, medians).
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for turn in 0..3 {
        ours.push(throughput(&url, args.megabytes).await?);
        raw.push(raw_throughput(&url, args.megabytes, turn).await?);
    }
    let median = |runs: &[Value]| {
        let mut rates: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["mbit_per_s"].as_f64())
            .collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    };
    let (ours_mbit, raw_mbit) = (median(&ours), median(&raw));
    let throughput = json!({
        "message_bytes": CHUNK,
        "megabytes": args.megabytes,
        "ordered": true,
        "reliable": true,
        "mbit_per_s": ours_mbit,
        "runs_mbit_per_s": ours.iter().map(|r| r["mbit_per_s"].clone()).collect::<Vec<_>>(),
        "webrtc_rs_mbit_per_s": raw_mbit,
        "webrtc_rs_runs_mbit_per_s": raw.iter().map(|r| r["mbit_per_s"].clone()).collect::<Vec<_>>(),
        "ratio_to_webrtc_rs": ours_mbit / raw_mbit.max(1e-9),
    });

    // 4. Signaling server memory with idle joined peers, in a separate process.
    let memory = crate::bench_signal::idle_memory(args.idle_peers).await?;

    let baseline = match &args.baseline_bin {
        Some(bin) => baseline(bin, args.megabytes).await?,
        None => Value::Null,
    };
    let ratio = baseline
        .get("mbit_per_s")
        .and_then(Value::as_f64)
        .map(|b| throughput["mbit_per_s"].as_f64().unwrap_or(0.0) / b);

    Ok(json!({
        "bench": "rooms",
        "join_to_first_message_ms": summary(join_ms),
        "join_to_peer_join_ms": summary(link_ms),
        "process_join_to_first_message_ms": process_ms.clone(),
        "process_join_to_first_message_summary_ms": summary(process_ms),
        "ping_rtt_ms": summary(ping_ms),
        "echo_16b_rtt_ms": summary(echo_ms),
        "throughput": throughput,
        "baseline_stress_bench": baseline,
        "throughput_ratio_to_baseline": ratio,
        "signaling_memory": memory,
    }))
}

/// Message size of the throughput figures.
const CHUNK: usize = 64 * 1024;

/// webrtc-rs alone, with the links' settings and the same volume (see `plenum::baseline`).
async fn raw_throughput(url: &str, megabytes: usize, turn: usize) -> anyhow::Result<Value> {
    let config = loopback_peer(url, "raw", &format!("raw{turn}"))?;
    let count = megabytes * 1024 * 1024 / CHUNK;
    let figures = plenum::baseline::data_channel_throughput(&config, bytes_of(CHUNK), count)
        .await
        .context("webrtc-rs baseline")?;
    Ok(json!({
        "bytes": figures.bytes,
        "messages": figures.messages,
        "seconds": figures.elapsed.as_secs_f64(),
        "mbit_per_s": figures.mbit_per_s(),
    }))
}

async fn throughput(url: &str, megabytes: usize) -> anyhow::Result<Value> {
    let config = |name: &str| loopback_peer(url, "bulk", name);
    throughput_with(config, megabytes).await
}

/// Pushes `megabytes` from one new peer to another, both made by `config(name)`.
pub(crate) async fn throughput_with(
    config: impl Fn(&str) -> anyhow::Result<RoomConfig>,
    megabytes: usize,
) -> anyhow::Result<Value> {
    let (rx_room, mut rx_events) = Room::join(config("sink")?).await?;
    let (tx_room, mut tx_events) = Room::join(config("source")?).await?;
    let sink: PeerId = wait_for(&mut tx_events, "sink link", |e| match e {
        RoomEvent::PeerJoin { peer, .. } => Some(peer),
        _ => None,
    })
    .await?;
    wait_for(&mut rx_events, "source link", |e| {
        matches!(e, RoomEvent::PeerJoin { .. }).then_some(())
    })
    .await?;
    let total = megabytes * 1024 * 1024;
    let count = total / CHUNK;
    let channel = plenum::ChannelName::new("bulk")?;
    let payload = bytes_of(CHUNK);
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..count {
            tx_room
                .send(&channel, payload.clone(), Target::One(sink.clone()))
                .await?;
        }
        Ok::<_, plenum::SendError>(tx_room)
    });
    let mut received = 0usize;
    let mut messages = 0usize;
    while messages < count {
        let size = wait_for(&mut rx_events, "bulk data", |e| match e {
            RoomEvent::Message { data, .. } => Some(data.len()),
            _ => None,
        })
        .await?;
        received += size;
        messages += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let tx_room = sender.await??;
    tx_room.leave().await;
    rx_room.leave().await;
    Ok(json!({
        "message_bytes": CHUNK,
        "messages": messages,
        "bytes": received,
        "seconds": secs,
        "mbit_per_s": received as f64 * 8.0 / secs / 1e6,
        "ordered": true,
        "reliable": true,
    }))
}

fn bytes_of(n: usize) -> bytes::Bytes {
    (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
}

pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Runs webrtc-rs's own stress bench with one pair and the same volume.
async fn baseline(bin: &std::path::Path, megabytes: usize) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new(bin)
        .env("STRESS_PAIRS", "1")
        .env("STRESS_MB_PER_PAIR", megabytes.to_string())
        .env("RUST_LOG", "error")
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("STRESS "))
        .context("no STRESS line from the baseline")?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    // The bench reports Mbps as bits / 2^20; convert to 10^6 like ours.
    let mbps = field("agg_Mbps").context("no agg_Mbps")? * 1_048_576.0 / 1e6;
    Ok(json!({
        "binary": bin.display().to_string(),
        "pairs": 1,
        "megabytes": megabytes,
        "message_bytes": 1024,
        "ordered": false,
        "reliable": false,
        "mbit_per_s": mbps,
        "raw": line,
    }))
}
