//! `plenum bench tree`: media down a broadcast tree of real `plenum join` processes. A root
//! publishes the stamped test pattern and a tone; viewers at a small degree read each
//! picture's stamp as it is decoded. The figures: glass-to-glass latency by depth (what
//! each forwarding hop adds) and each process's CPU: a forwarder's against a leaf's, per
//! stream it forwards, next to what decoding that stream costs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::bench::summary;

#[derive(Debug, clap::Args)]
pub(crate) struct TreeArgs {
    /// Viewers under the root.
    #[arg(long, default_value_t = 14)]
    viewers: usize,
    /// Most children per peer.
    #[arg(long, default_value_t = 3)]
    max_degree: u16,
    /// Most children of the root, if not --max-degree (a presentation's tree: the app's
    /// presenter takes 8).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    root_degree: Option<u16>,
    /// Seconds measured once the tree stands.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The root's test pattern: WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x360@30")]
    video: String,
}

/// Streams each forwarder passes on per child: audio and the camera.
const STREAMS: f64 = 2.0;

struct Proc {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
}

impl Proc {
    async fn cmd(&mut self, cmd: &Value) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .context("a peer ended")
    }
}

/// Starts a peer whose JSON lines go to `lines`, tagged with `index`.
fn spawn(
    url: &str,
    name: &str,
    args: &[&str],
    index: usize,
    lines: mpsc::Sender<(usize, Value)>,
) -> anyhow::Result<Proc> {
    let mut child = crate::bench::join_process(url, "tree-bench", name, args)?;
    let stdin = child.stdin.take().context("child stdin")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let pid = child.id().context("child pid")?;
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && lines.send((index, v)).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Proc { child, stdin, pid })
}

/// CPU time a process has used.
fn cpu_of(pid: u32) -> Option<Duration> {
    crate::bench_audio::cpu_of(&pid.to_string())
}

/// Each peer's newest tree state: (depth, children).
type Places = BTreeMap<usize, (Option<u64>, usize)>;

fn note_place(places: &mut Places, index: usize, v: &Value) {
    if v["event"] == "tree_state" {
        let children = v["children"].as_array().map_or(0, Vec::len);
        places.insert(index, (v["depth"].as_u64(), children));
    }
}

/// Sends `stats` to every viewer and returns each one's answer.
async fn stats_of_all(
    viewers: &mut [Proc],
    lines: &mut mpsc::Receiver<(usize, Value)>,
    places: &mut Places,
) -> anyhow::Result<BTreeMap<usize, Value>> {
    for v in viewers.iter_mut() {
        v.cmd(&json!({"cmd": "stats"})).await?;
    }
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < viewers.len() {
        let (i, v) = tokio::time::timeout_at(deadline.into(), lines.recv())
            .await
            .context("no stats from every viewer within 30 s")?
            .context("the viewers ended")?;
        note_place(places, i, &v);
        if v["event"] == "stats" {
            got.insert(i, v);
        }
    }
    Ok(got)
}

/// The root's upload: what its links sent, in kbit/s (its `stats`).
async fn root_upload_kbps(
    root: &mut Proc,
    lines: &mut mpsc::Receiver<(usize, Value)>,
    places: &mut Places,
) -> anyhow::Result<f64> {
    root.cmd(&json!({"cmd": "stats"})).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (i, v) = tokio::time::timeout_at(deadline.into(), lines.recv())
            .await
            .context("no stats from the root within 30 s")?
            .context("the root ended")?;
        note_place(places, i, &v);
        if i == usize::MAX && v["event"] == "stats" {
            let links = v["links"].as_array().cloned().unwrap_or_default();
            let bps: f64 = links.iter().filter_map(|l| l["send_bps"].as_f64()).sum();
            return Ok(bps / 1000.0);
        }
    }
}

pub(crate) async fn tree(args: &TreeArgs) -> anyhow::Result<Value> {
    if args.viewers < 2 || args.seconds < 1 {
        bail!("--viewers must be at least 2 and --seconds at least 1");
    }
    let (width, height, fps) =
        crate::video::mode(&args.video, (640, 360, 30)).map_err(|(_, e)| anyhow::anyhow!(e))?;
    let server = Server::bind(([127, 0, 0, 1], 0).into(), ServerConfig::default()).await?;
    let url = server.url();
    let degree = args.max_degree.to_string();
    let root_degree = args.root_degree.unwrap_or(args.max_degree).to_string();
    let tree = [
        "--topology",
        "tree",
        "--max-degree",
        degree.as_str(),
        "--root-degree",
        root_degree.as_str(),
    ];
    let (tx, mut lines) = mpsc::channel(65_536);

    let video = format!("testsrc:{width}x{height}@{fps}");
    let mut root_args = tree.to_vec();
    root_args.extend(["--root", "--secret", "bench", "--video", &video]);
    root_args.extend(["--audio", "sine:440"]);
    let mut root = spawn(&url, "root", &root_args, usize::MAX, tx.clone())?;
    let mut viewer_args = tree.to_vec();
    viewer_args.push("--stamp-latency");
    let mut viewers = Vec::new();
    for i in 0..args.viewers {
        viewers.push(spawn(&url, &format!("v{i}"), &viewer_args, i, tx.clone())?);
    }
    drop(tx);

    // The tree stands: every viewer placed, and no change for three seconds.
    let mut places = Places::new();
    let started = Instant::now();
    let mut changed = Instant::now();
    loop {
        let placed = (0..args.viewers).all(|i| places.get(&i).is_some_and(|(d, _)| d.is_some()));
        if placed && changed.elapsed() > Duration::from_secs(3) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the tree did not stand within 60 s: {places:?}");
        }
        if let Ok(Some((i, v))) =
            tokio::time::timeout(Duration::from_millis(200), lines.recv()).await
        {
            if v["event"] == "tree_state" {
                changed = Instant::now();
            }
            note_place(&mut places, i, &v);
        }
    }
    let formed_ms = started.elapsed().as_millis() as u64;

    stats_of_all(&mut viewers, &mut lines, &mut places).await?;
    let cpu0: Vec<Option<Duration>> = viewers.iter().map(|v| cpu_of(v.pid)).collect();
    let root_cpu0 = cpu_of(root.pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1: Vec<Option<Duration>> = viewers.iter().map(|v| cpu_of(v.pid)).collect();
    let root_cpu1 = cpu_of(root.pid);
    let stats = stats_of_all(&mut viewers, &mut lines, &mut places).await?;
    let root_upload = root_upload_kbps(&mut root, &mut lines, &mut places).await?;

    let cores = |a: Option<Duration>, b: Option<Duration>| {
        b.zip(a)
            .map(|(b, a)| b.saturating_sub(a).as_secs_f64() / wall)
    };
    let mut by_depth: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let mut leaves = Vec::new();
    let mut forwarders = Vec::new();
    for (i, s) in &stats {
        let (depth, children) = places.get(i).copied().unwrap_or((None, 0));
        if let (Some(depth), Some(l)) = (depth, s["stamp_latency_ms"].as_array()) {
            by_depth
                .entry(depth)
                .or_default()
                .extend(l.iter().filter_map(Value::as_f64));
        }
        let Some(c) = cores(cpu0[*i], cpu1[*i]) else {
            continue;
        };
        let forwarded = s["forwarded_packets"].as_u64().unwrap_or(0);
        if children == 0 {
            leaves.push(c);
        } else {
            forwarders.push((children, c, forwarded));
        }
    }
    let leaf = {
        let mut l = leaves.clone();
        l.sort_by(f64::total_cmp);
        l.get(l.len() / 2).copied()
    };
    let per_stream: Vec<f64> = forwarders
        .iter()
        .filter_map(|(children, c, _)| leaf.map(|leaf| (c - leaf) / (*children as f64 * STREAMS)))
        .collect();
    let p50 = |d: u64| {
        let mut l = by_depth.get(&d)?.clone();
        l.sort_by(f64::total_cmp);
        l.get(l.len() / 2).copied()
    };
    let deepest = by_depth.keys().copied().max().unwrap_or(1);
    let per_hop = p50(deepest)
        .zip(p50(1))
        .filter(|_| deepest > 1)
        .map(|(deep, first)| (deep - first) / (deepest - 1) as f64);
    let decode = crate::bench_video::codec_speed(width, height)?;
    let per_frame_ms = |key: &str| {
        decode[key]
            .as_f64()
            .filter(|f| *f > 0.0)
            .map(|f| 1000.0 / f)
    };
    let decode_cores = per_frame_ms("decode_fps").map(|ms| ms * f64::from(fps) / 1000.0);
    let transcode_ms = per_frame_ms("decode_fps")
        .zip(per_frame_ms("encode_fps"))
        .map(|(d, e)| d + e);

    for mut p in viewers.into_iter().chain(std::iter::once(root)) {
        let _ = p.cmd(&json!({"cmd": "leave"})).await;
        if tokio::time::timeout(Duration::from_secs(5), p.child.wait())
            .await
            .is_err()
        {
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
        }
    }
    Ok(json!({
        "bench": "tree",
        "viewers": args.viewers,
        "max_degree": args.max_degree,
        "root_degree": args.root_degree.unwrap_or(args.max_degree),
        "video": video,
        "seconds": args.seconds,
        "tree_formed_ms": formed_ms,
        "glass_to_glass_ms_by_depth": by_depth
            .into_iter()
            .map(|(d, l)| (d.to_string(), summary(l)))
            .collect::<BTreeMap<_, _>>(),
        "added_per_hop_ms_p50": per_hop,
        "decode_and_encode_per_picture_ms": transcode_ms,
        "decode_and_encode_is": "what a hop that decoded and encoded again would add per picture, at least (libvpx, one core, the same pattern)",
        "glass_to_glass_includes": "pattern drawn at the root -> VP8 encode -> each hop: SRTP decrypt, forward, SRTP encrypt, paced -> reassembly -> VP8 decode at the viewer",
        "root_cpu_cores": cores(root_cpu0, root_cpu1),
        "root_children": places.values().filter(|(d, _)| *d == Some(1)).count(),
        "root_upload_kbps": root_upload,
        "leaf_cpu_cores": summary(leaves),
        "forwarder_cpu_cores": forwarders.iter().map(|(children, c, forwarded)| json!({
            "children": children, "cores": c,
            "forwarded_packets_per_s": *forwarded as f64 / wall,
        })).collect::<Vec<_>>(),
        "cpu_per_forwarded_stream_cores": summary(per_stream),
        "cpu_per_forwarded_stream_is": "(a forwarder's cores - the median leaf's) / (its children x 2 streams: audio and camera); both decode and play the same streams",
        "decode_one_stream_cores": decode_cores,
        "decode_one_stream_is": format!("libvpx decoding {width}x{height} at {fps} fps on one core, alone"),
    }))
}
