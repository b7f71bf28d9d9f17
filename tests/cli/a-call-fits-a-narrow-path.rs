//! A 720p30 camera and a tone through a 600 kbit/s uplink: two peers in network namespaces
//! of the test's own joined by a veth pair, the sender's side shaped with tbf (200 ms of
//! queue, as a home modem holds) and its bytes counted by nftables before the shaper. The
//! sender must fit the path: pictures keep coming, the tone keeps playing, and what it puts
//! on the wire stays near what the path carries, retransmissions a small part of it.

use plenum_e2e::cli as common;

use std::time::{Duration, Instant};

use common::{NetNs, Proc, event};
use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{dominant_frequency, longest_silence_ms};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);
/// The bottleneck, kbit/s.
const RATE: u32 = 600;
/// Seconds the sender has to find the path's rate before it is held to it.
const RAMP: u64 = 10;
/// Seconds measured after the ramp.
const MEASURED: u64 = 20;

fn stats(peer: &mut Proc) -> Value {
    peer.cmd(json!({"cmd": "stats"}));
    peer.expect(LONG, "stats", |v| event(v) == "stats")
}

fn link(stats: &Value) -> &Value {
    &stats["links"][0]
}

#[test]
fn a_720p_call_through_600_kbits_keeps_its_pictures_and_fits_the_path() {
    let (ns_a, ns_b) = NetNs::veth_pair("10.79.0.1/24", "10.79.0.2/24");
    ns_a.shape("va", RATE);
    let mut server = ns_b.spawn(&["serve", "--bind", "10.79.0.2:0", "--json"], &[]);
    let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let recording = common::TempFile(
        std::env::temp_dir().join(format!("plenum-narrow-{}.wav", std::process::id())),
    );
    let record = recording.0.to_str().expect("utf-8");
    let mut a = ns_a.spawn_join_at(
        &url,
        "narrow",
        "a",
        "10.79.0.1",
        &["--video", "testsrc:1280x720@30", "--audio", "sine:440"],
    );
    let mut b = ns_b.spawn_join_at(
        &url,
        "narrow",
        "b",
        "10.79.0.2",
        &["--record-audio", record],
    );
    b.expect(LONG, "a's video", |v| {
        event(v) == "stream_add" && v["kind"] == "video"
    });
    let started = Instant::now();
    let before = common::recorded_so_far(&recording.0).len();
    // The ramp: the sender finds the path.
    while started.elapsed() < Duration::from_secs(RAMP) {
        stats(&mut b);
        std::thread::sleep(Duration::from_millis(500));
    }
    let audio_from = common::recorded_so_far(&recording.0).len().max(before);
    let first = stats(&mut b);
    let frames_before = first["video"][0]["frames"].as_u64().unwrap_or(0);
    let mut wire = vec![ns_a.bytes_out()];
    let mut estimates = Vec::new();
    let t0 = Instant::now();
    for second in 1..=MEASURED {
        // Sampled once a second (a measurement, not a wait for something to happen).
        let due = t0 + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        wire.push(ns_a.bytes_out());
        estimates.push(link(&stats(&mut a))["estimate_bps"].as_u64().unwrap_or(0));
    }
    let (sent, received) = (stats(&mut a), stats(&mut b));
    let frames = received["video"][0]["frames"].as_u64().unwrap_or(0) - frames_before;
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));
    assert_eq!(a.wait_exit(LONG), Some(0));

    // Per second, then over every 5 s window, in kbit/s.
    let per_second: Vec<f64> = wire
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 * 8.0 / 1000.0)
        .collect();
    let windows: Vec<f64> = per_second
        .windows(5)
        .map(|w| w.iter().sum::<f64>() / 5.0)
        .collect();
    let most = windows.iter().copied().fold(0.0, f64::max);
    let mean_estimate = estimates.iter().sum::<u64>() as f64 / estimates.len() as f64 / 1000.0;
    let (sent_bytes, rtx_bytes) = (
        link(&sent)["sent_bytes"].as_u64().expect("sent"),
        link(&sent)["retransmitted_bytes"].as_u64().expect("rtx"),
    );
    let received_bytes = link(&received)["received_bytes"]
        .as_u64()
        .expect("received");
    let heard = common::recording(&recording.0, 0.0);
    let since = audio_from.saturating_sub(before).min(heard.len());
    let after_ramp = &heard[since..];
    let gap = longest_silence_ms(after_ramp, SAMPLE_RATE, -40.0);
    let f = dominant_frequency(after_ramp, SAMPLE_RATE);
    eprintln!(
        "{}",
        json!({
            "frames_in_measured_window": frames, "wire_kbps_per_second": per_second,
            "most_in_5s_kbps": most, "mean_estimate_kbps": mean_estimate,
            "sent_bytes": sent_bytes, "retransmitted_bytes": rtx_bytes,
            "received_bytes": received_bytes, "longest_audio_gap_ms": gap, "tone_hz": f,
            "last_video": received["video"][0],
        })
    );

    // Pictures keep coming: 30 fps offered, at least a third of them decoded (none did
    // through this path before the sender fitted it).
    assert!(
        frames >= MEASURED * 10,
        "{frames} pictures in {MEASURED} s through {RATE} kbit/s"
    );
    // What the sender hands the path stays near what it carries (a 5 s window at most a
    // third over: the estimate probes above the rate and comes back).
    assert!(
        most <= f64::from(RATE) * 1.35,
        "{most:.0} kbit/s over 5 s into a {RATE} kbit/s path: {per_second:?}"
    );
    // Its estimate is the path's rate, give or take.
    assert!(
        (0.6..=1.5).contains(&(mean_estimate / f64::from(RATE))),
        "estimate {mean_estimate:.0} kbit/s for a {RATE} kbit/s path: {estimates:?}"
    );
    // Retransmissions cannot storm: a small part of what was sent.
    assert!(
        rtx_bytes * 5 <= sent_bytes,
        "{rtx_bytes} of {sent_bytes} bytes were retransmissions"
    );
    // The figures agree with the other side: it received what was sent, less what the path
    // dropped, and no more.
    assert!(
        received_bytes <= sent_bytes && received_bytes * 10 >= sent_bytes * 7,
        "sent {sent_bytes}, received {received_bytes}"
    );
    // The tone plays on, at its pitch. Audio leaves first, but the estimate still swings
    // above the path's rate every few seconds and the bottleneck's queue then drops some of
    // it too: holes of about 300 ms are measured today (the goal is 60 ms).
    assert!((f - 440.0).abs() < 2.0, "recorded {f} Hz");
    assert!(gap <= 750.0, "a {gap:.0} ms hole in the tone");
    server.kill();
}
