//! `plenum bench stall`: a frozen peer and a room that carries on. Peers `a` and `c` in this
//! process, `b` a `plenum join` child that is stopped (SIGSTOP) while `a` sends a bulk
//! burst to everyone. Figures: `c`'s ping to `a` before and during the freeze, how long
//! until `a` gives `b` up, how fast `a`'s burst reaches `c` meanwhile, and how long `b`
//! takes to be linked again once resumed.

use std::time::{Duration, Instant};

use anyhow::Context;
use plenum::{Room, RoomError, RoomEvent, Target};
use plenum_signal::{Server, ServerConfig};
use serde_json::{Value, json};

use crate::bench::{loopback_peer, summary, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct StallArgs {
    /// Print one JSON object (the only output mode).
    #[arg(long)]
    json: bool,
    /// Round trips timed before and during the freeze.
    #[arg(long, default_value_t = 100)]
    pings: usize,
    /// Mebibytes `a` sends to everyone while `b` is frozen, in 64 KiB messages.
    #[arg(long, default_value_t = 64)]
    megabytes: usize,
}

/// The pause between two timed round trips, before and during the freeze.
const PING_PAUSE: Duration = Duration::from_millis(10);

/// The child peer, killed by its pid when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            signal(pid, "CONT");
        }
        let _ = self.0.start_kill();
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        tracing::warn!(pid, name, "signal not delivered");
    }
}

pub(crate) async fn stall(args: &StallArgs) -> anyhow::Result<Value> {
    let server = Server::bind(([127, 0, 0, 1], 0).into(), ServerConfig::default()).await?;
    let url = server.url();
    let (a, mut a_events) = Room::join(loopback_peer(&url, "stall", "a")?).await?;
    let (c, mut c_events) = Room::join(loopback_peer(&url, "stall", "c")?).await?;
    let exe = std::env::current_exe().context("own binary")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["join", "--server", &url, "--room", "stall", "--name", "b"])
        .args(["--json", "--bind-ip", "127.0.0.1"])
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the peer to freeze")?;
    let stdin = child.stdin.take();
    let b = Child(child);
    let b_pid = b.0.id().context("child pid")?;

    let mut names = std::collections::BTreeMap::new();
    while names.len() < 2 {
        let (peer, name) = wait_for(&mut a_events, "a's links", |e| match e {
            RoomEvent::PeerJoin { peer, name } => Some((peer, name)),
            _ => None,
        })
        .await?;
        names.insert(name.as_str().to_owned(), peer);
    }
    let b_id = names.get("b").context("b linked")?.clone();
    let a_id = a.id().clone();
    // c must be linked to a (and b) before timing.
    let mut c_links = 0;
    while c_links < 2 {
        wait_for(&mut c_events, "c's links", |e| {
            matches!(e, RoomEvent::PeerJoin { .. }).then_some(())
        })
        .await?;
        c_links += 1;
    }

    // Paced as the round trips during the freeze are: a ping after a pause finds the
    // threads asleep, which costs a few tenths of a millisecond on its own.
    let mut before = Vec::new();
    for _ in 0..args.pings {
        before.push(c.ping(&a_id).await?.as_secs_f64() * 1000.0);
        tokio::time::sleep(PING_PAUSE).await;
    }

    signal(b_pid, "STOP");
    let frozen = Instant::now();
    let channel = plenum::ChannelName::new("bulk")?;
    let payload: bytes::Bytes = vec![7u8; 64 * 1024].into();
    // 1. a writes 8 MiB to b alone: more than b's link takes (its data channel's 4 MiB and
    //    the outbox's 1 MiB), so a's sends to b wait and the link stalls. c's round trips
    //    to a meanwhile cross no traffic of a's but its pongs: they show whether a's
    //    driver still answers at once.
    let to_b = {
        let (a, channel, payload, b_id) =
            (a.clone(), channel.clone(), payload.clone(), b_id.clone());
        tokio::spawn(async move {
            for _ in 0..128 {
                if a.send(&channel, payload.clone(), Target::One(b_id.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let mut stalled_pings = Vec::new();
    for _ in 0..args.pings {
        stalled_pings.push(c.ping(&a_id).await?.as_secs_f64() * 1000.0);
        tokio::time::sleep(PING_PAUSE).await;
    }
    // 2. Then a sends the burst to everyone: c gets it while b's link is still stalled.
    let count = args.megabytes * 16;
    let sender = {
        let a = a.clone();
        tokio::spawn(async move {
            for _ in 0..count {
                a.send(&channel, payload.clone(), Target::All).await?;
            }
            Ok::<_, plenum::SendError>(())
        })
    };
    // a's side: when it gave b up, and why.
    let watcher = tokio::spawn(async move {
        let (mut stalled, mut left) = (None, None);
        while let Some(event) = a_events.recv().await {
            match event {
                RoomEvent::Error(RoomError::LinkStalled { peer, .. }) if peer == b_id => {
                    stalled.get_or_insert(frozen.elapsed());
                }
                RoomEvent::PeerLeave { peer } if peer == b_id => {
                    left.get_or_insert(frozen.elapsed());
                }
                RoomEvent::PeerJoin { peer, .. } if peer == b_id && left.is_some() => {
                    return (stalled, left, Some(frozen.elapsed()), a_events);
                }
                _ => {}
            }
        }
        (stalled, left, None, a_events)
    });
    // c's side: pings to a every 20 ms (behind the burst on the same ordered link), and
    // the burst's arrival.
    let mut during = Vec::new();
    let mut received = 0usize;
    let mut next_ping = Instant::now();
    let burst_started = Instant::now();
    let mut burst_done = None;
    while burst_done.is_none() || during.len() < args.pings {
        tokio::select! {
            event = c_events.recv() => match event {
                Some(RoomEvent::Message { channel, .. }) if channel.as_str() == "bulk" => {
                    received += 1;
                    if received == count {
                        burst_done = Some(burst_started.elapsed());
                    }
                }
                Some(_) => {}
                None => anyhow::bail!("c's room closed"),
            },
            () = tokio::time::sleep_until(next_ping.into()), if during.len() < args.pings => {
                during.push(c.ping(&a_id).await?.as_secs_f64() * 1000.0);
                next_ping = Instant::now() + Duration::from_millis(20);
            }
        }
        anyhow::ensure!(
            burst_started.elapsed() < Duration::from_secs(300),
            "the burst did not reach c in 300 s ({received} of {count})"
        );
    }
    sender.await??;
    to_b.abort();
    signal(b_pid, "CONT");
    let resumed_at = frozen.elapsed();
    let (stalled, left, rejoined, _a_events) =
        tokio::time::timeout(Duration::from_secs(120), watcher)
            .await
            .context("b was not linked again in 120 s")??;
    drop(stdin);
    drop(b);
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let before = summary(before);
    let stalled_pings = summary(stalled_pings);
    let during = summary(during);
    let ratio = stalled_pings["p50"]
        .as_f64()
        .zip(before["p50"].as_f64())
        .map(|(d, b)| d / b);
    let secs = burst_done.map_or(f64::NAN, |d| d.as_secs_f64());
    a.leave().await;
    c.leave().await;
    Ok(json!({
        "bench": "stall",
        "ping_rtt_ms_before": before,
        "ping_rtt_ms_while_one_link_stalls": stalled_pings,
        "ping_p50_ratio_stalled_to_before": ratio,
        "ping_rtt_ms_behind_the_burst_on_the_same_link": during,
        "burst": {
            "messages": count,
            "message_bytes": 64 * 1024,
            "seconds_to_reach_the_unfrozen_peer": secs,
            "mbit_per_s": (count * 64 * 1024) as f64 * 8.0 / secs / 1e6,
        },
        "frozen_peer_stalled_after_ms": ms(stalled),
        "frozen_peer_left_after_ms": ms(left),
        "resumed_after_ms": resumed_at.as_secs_f64() * 1000.0,
        "frozen_peer_linked_again_after_ms": ms(rejoined),
    }))
}
