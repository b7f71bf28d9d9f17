//! Audio through a network that loses 10 % of its datagrams: the server and both peers run in
//! a network namespace of the test's own whose loopback drops a random tenth of every UDP
//! datagram (nftables; ICE, DTLS and RTP alike). The tone still arrives at its frequency,
//! and FEC and concealment leave no hole longer than 60 ms.

use plenum_e2e::cli as common;

use std::time::Duration;

use common::{NetNs, event, serve_in, spawn_join_in};
use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{dominant_frequency, longest_silence_ms};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn a_tone_survives_ten_percent_packet_loss() {
    let ns = NetNs::lossy(10);
    let server = serve_in(Some(&ns), &[]);
    let path = std::env::temp_dir().join(format!("plenum-lossy-{}.wav", std::process::id()));
    let mut a = spawn_join_in(&ns, &server.url, "lossy", "a", &["--audio", "sine:440"]);
    let a_id = a.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = path.to_str().expect("utf-8");
    let mut b = spawn_join_in(&ns, &server.url, "lossy", "b", &["--record-audio", record]);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["peer"] == a_id.as_str() && v["speaking"] == true
    });
    common::wait_recorded(&path, 0, 4.0, "four seconds of a's tone through the loss");
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));
    let (sent, lost) = ns.udp_counts();
    let share = lost as f64 / sent as f64;
    assert!(
        sent > 200 && (0.04..0.18).contains(&share),
        "the network lost {lost} of {sent} datagrams"
    );

    let settled = &common::recording(&path, 1.0);
    assert!(
        settled.len() > 2 * SAMPLE_RATE as usize,
        "{} samples",
        settled.len()
    );
    let f = dominant_frequency(settled, SAMPLE_RATE);
    assert!((f - 440.0).abs() < 2.0, "recorded {f} Hz through the loss");
    let gap = longest_silence_ms(settled, SAMPLE_RATE, -40.0);
    eprintln!("lost {lost} of {sent} datagrams; recorded {f:.1} Hz, longest hole {gap:.0} ms");
    assert!(gap <= 60.0, "a {gap} ms hole through 10 % loss");
    std::fs::remove_file(&path).expect("cleanup");
}
