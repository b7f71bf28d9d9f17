//! Audio with 10 % of its packets lost: the receiving peer drops a random tenth of the RTP
//! packets that arrive, before its jitter buffer (`--simulate-audio-loss 10`; this machine's
//! kernel has no netem to make the network itself lossy). The tone still arrives at its
//! frequency, and FEC and concealment leave no hole longer than 60 ms.

mod common;

use std::time::Duration;

use common::{event, serve, spawn_join};
use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{dominant_frequency, longest_silence_ms};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn a_tone_survives_ten_percent_packet_loss() {
    let server = serve(&[]);
    let path = std::env::temp_dir().join(format!("plenum-lossy-{}.wav", std::process::id()));
    let mut a = spawn_join(&server.url, "lossy", "a", &["--audio", "sine:440"]);
    let a_id = a.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = path.to_str().expect("utf-8");
    let mut b = spawn_join(
        &server.url,
        "lossy",
        "b",
        &["--record-audio", record, "--simulate-audio-loss", "10"],
    );
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["peer"] == a_id.as_str() && v["speaking"] == true
    });
    std::thread::sleep(Duration::from_secs(4));
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));

    let settled = &common::recording(&path, 1.0);
    assert!(
        settled.len() > 2 * SAMPLE_RATE as usize,
        "{} samples",
        settled.len()
    );
    let f = dominant_frequency(settled, SAMPLE_RATE);
    assert!((f - 440.0).abs() < 2.0, "recorded {f} Hz through the loss");
    let gap = longest_silence_ms(settled, SAMPLE_RATE, -40.0);
    assert!(gap <= 60.0, "a {gap} ms hole through 10 % loss");
    std::fs::remove_file(&path).expect("cleanup");
}
