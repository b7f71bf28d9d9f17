//! Calls through a network lab: two peers in network namespaces of the test's own joined by
//! a veth pair, the sender's side shaped with tbf (200 ms of queue, as a home modem holds)
//! and its bytes counted by nftables before the shaper; a 720p30 camera and a tone from the
//! sender, the receiver recording what it hears. The sender must fit the path: pictures keep
//! coming, the tone keeps playing, and what it puts on the wire stays near what the path
//! carries. The paths: a narrow one, one that narrows and widens again, a lossy one, a mesh
//! with one narrow receiver, and a file sent during the call (beside video, and beside a
//! voice alone).
//!
//! The scenarios run one at a time (a lock): each is two encoders and decoders at work, and
//! two at once on two cores would measure the machine, not the path.

use plenum_e2e::cli as common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{NetNs, Proc, TempFile, event};
use plenum_media::SAMPLE_RATE;
use plenum_media::analysis::{dominant_frequency, longest_silence_ms};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(30);
/// Seconds the sender has to find the path's rate before it is held to it.
const RAMP: u64 = 10;
/// The longest hole in the tone allowed once the call has found its path, in ms.
const AUDIO_GAP_MS: f64 = 60.0;

/// The longest hole allowed when the path narrows sevenfold at once, in ms.
const STEP_AUDIO_GAP_MS: f64 = 300.0;

static LAB: Mutex<()> = Mutex::new(());

fn link(stats: &Value) -> &Value {
    &stats["links"][0]
}

/// The camera's size on the sender's link, if it sends it.
fn sending(stats: &Value) -> Option<(u64, u64)> {
    sending_of(link(stats))
}

/// The camera's size on a link, as `stats` reports it.
fn sending_of(link: &Value) -> Option<(u64, u64)> {
    link["sending"]
        .as_array()?
        .iter()
        .find(|s| s["lane"] == "camera")
        .map(|s| {
            (
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
}

/// The link to `peer` in a peer's `stats`.
fn link_to(stats: &Value, peer: &str) -> Value {
    stats["links"]
        .as_array()
        .and_then(|links| links.iter().find(|l| l["peer"] == peer))
        .cloned()
        .unwrap_or(Value::Null)
}

/// A peer's id, from its `joined` event.
fn joined(peer: &mut Proc) -> String {
    peer.expect(LONG, "joined", |v| event(v) == "joined")["peer"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// One second of the call, as both sides saw it.
#[derive(Debug, Clone)]
struct Second {
    wire_bytes: u64,
    estimate_bps: u64,
    sending: Option<(u64, u64)>,
    frames: u64,
    freeze_total_ms: u64,
    /// What the sender's data channel sent over the last second, in bits per second.
    data_bps: u64,
    /// Messages the receiver has had on the `file` channel so far.
    file_messages: usize,
}

struct Call {
    a_ns: NetNs,
    _b_ns: NetNs,
    server: Proc,
    a: Proc,
    b: Proc,
    recording: TempFile,
    /// Samples of the recording before the call was measured.
    audio_from: usize,
}

impl Call {
    /// A call from `a` (camera and tone) to `b` through `kbit` kbit/s, `b` losing
    /// `loss_percent` of what it receives; returns once `b` has `a`'s video.
    fn start(room: &str, subnet: u8, kbit: u32, loss_percent: u32) -> Self {
        Self::start_with(room, subnet, kbit, loss_percent, true)
    }

    /// As [`Call::start`]; without `video`, `a` sends the tone alone, and this returns once
    /// `b` has it.
    fn start_with(room: &str, subnet: u8, kbit: u32, loss_percent: u32, video: bool) -> Self {
        let (a_ip, b_ip) = (format!("10.{subnet}.0.1"), format!("10.{subnet}.0.2"));
        let (a_ns, b_ns) = NetNs::veth_pair(&format!("{a_ip}/24"), &format!("{b_ip}/24"));
        a_ns.shape("va", kbit);
        if loss_percent > 0 {
            b_ns.lose(loss_percent);
        }
        let bind = format!("{b_ip}:0");
        let mut server = b_ns.spawn(&["serve", "--bind", &bind, "--json"], &[]);
        let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
            .as_str()
            .expect("url")
            .to_owned();
        let recording = TempFile(
            std::env::temp_dir().join(format!("plenum-{room}-{}.wav", std::process::id())),
        );
        let record = recording.0.to_str().expect("utf-8").to_owned();
        let media: &[&str] = if video {
            &["--video", "testsrc:1280x720@30", "--audio", "sine:440"]
        } else {
            &["--audio", "sine:440"]
        };
        let a = a_ns.spawn_join_at(&url, room, "a", &a_ip, media);
        let mut b = b_ns.spawn_join_at(&url, room, "b", &b_ip, &["--record-audio", &record]);
        let kind = if video { "video" } else { "audio" };
        b.expect(LONG, "a's first stream", |v| {
            event(v) == "stream_add" && v["kind"] == kind
        });
        Self {
            a_ns,
            _b_ns: b_ns,
            server,
            a,
            b,
            recording,
            audio_from: 0,
        }
    }

    /// The sender sends a file: `messages` messages of `bytes` bytes (each numbered) on
    /// the `file` channel, all at once.
    fn send_file(&mut self, messages: usize, bytes: usize) {
        let chunk = "x".repeat(bytes);
        for i in 0..messages {
            self.a
                .cmd(json!({"cmd": "send", "channel": "file", "data": format!("{i:02}{chunk}")}));
        }
    }

    /// One sample now.
    fn sample(&mut self) -> Second {
        let received = self.b.stats();
        let sent = self.a.stats();
        Second {
            wire_bytes: self.a_ns.bytes_out(),
            estimate_bps: link(&sent)["estimate_bps"].as_u64().unwrap_or(0),
            sending: sending(&sent),
            frames: received["video"][0]["frames"].as_u64().unwrap_or(0),
            freeze_total_ms: received["video"][0]["freeze_total_ms"]
                .as_u64()
                .unwrap_or(0),
            data_bps: link(&sent)["data_send_bps"].as_u64().unwrap_or(0),
            file_messages: self
                .b
                .seen
                .iter()
                .filter(|v| event(v) == "message" && v["channel"] == "file")
                .count(),
        }
    }

    /// Samples once a second for `seconds` (a measurement, not a wait for something to
    /// happen), the first at once.
    fn run(&mut self, seconds: u64) -> Vec<Second> {
        let t0 = Instant::now();
        (0..=seconds)
            .map(|second| {
                let due = t0 + Duration::from_secs(second);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                self.sample()
            })
            .collect()
    }

    /// The ramp: the sender finds the path; what is heard from now on is measured.
    fn ramp(&mut self) {
        self.ramp_until(|_| false);
    }

    /// The ramp, sampled every 250 ms: how long until `reached` first held, if it did.
    fn ramp_until(&mut self, reached: impl Fn(&Second) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        let mut at = None;
        while t0.elapsed() < Duration::from_secs(RAMP) {
            if at.is_none() && reached(&self.sample()) {
                at = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.audio_from = common::recorded_so_far(&self.recording.0).len();
        at
    }

    /// Ends the call (both leave cleanly) and returns what the receiver heard since the ramp
    /// and both sides' last figures (receiver first: what it counts can then only be less
    /// than what the sender counts after it).
    fn end(mut self) -> (Vec<f32>, Value, Value) {
        let received = self.b.stats();
        let sent = self.a.stats();
        self.b.cmd(json!({"cmd": "leave"}));
        assert_eq!(self.b.wait_exit(LONG), Some(0));
        self.a.cmd(json!({"cmd": "leave"}));
        assert_eq!(self.a.wait_exit(LONG), Some(0));
        self.server.kill();
        let heard = common::recording(&self.recording.0, 0.0);
        let since = self.audio_from.min(heard.len());
        (heard[since..].to_vec(), received, sent)
    }
}

/// What was put on the wire each second, in kbit/s.
fn per_second_kbps(samples: &[Second]) -> Vec<f64> {
    samples
        .windows(2)
        .map(|w| (w[1].wire_bytes - w[0].wire_bytes) as f64 * 8.0 / 1000.0)
        .collect()
}

/// The most put on the wire over any 5 s window, in kbit/s.
fn most_over_five_seconds(samples: &[Second]) -> f64 {
    per_second_kbps(samples)
        .windows(5)
        .map(|w| w.iter().sum::<f64>() / 5.0)
        .fold(0.0, f64::max)
}

fn mean_estimate_kbps(samples: &[Second]) -> f64 {
    samples.iter().map(|s| s.estimate_bps).sum::<u64>() as f64 / samples.len() as f64 / 1000.0
}

fn frames_over(samples: &[Second]) -> u64 {
    samples.last().map_or(0, |l| l.frames) - samples.first().map_or(0, |f| f.frames)
}

fn freeze_ms_over(samples: &[Second]) -> u64 {
    samples.last().map_or(0, |l| l.freeze_total_ms)
        - samples.first().map_or(0, |f| f.freeze_total_ms)
}

/// The tone is heard at its pitch, with no hole over `most_ms`.
fn assert_tone(heard: &[f32], most_ms: f64) {
    let gap = longest_silence_ms(heard, SAMPLE_RATE, -40.0);
    let f = dominant_frequency(heard, SAMPLE_RATE);
    assert!((f - 440.0).abs() < 2.0, "recorded {f} Hz");
    assert!(gap <= most_ms, "a {gap:.0} ms hole in the tone");
}

#[test]
fn a_720p_call_through_600_kbits_keeps_its_pictures_and_fits_the_path() {
    const RATE: u32 = 600;
    const MEASURED: u64 = 20;
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut call = Call::start("narrow", 79, RATE, 0);
    call.ramp();
    let samples = call.run(MEASURED);
    let (heard, received, sent) = call.end();

    let frames = frames_over(&samples);
    let freeze_ms = freeze_ms_over(&samples);
    let most = most_over_five_seconds(&samples);
    let mean_estimate = mean_estimate_kbps(&samples);
    let sent_bytes = link(&sent)["sent_bytes"].as_u64().expect("sent");
    let rtx_bytes = link(&sent)["retransmitted_bytes"].as_u64().expect("rtx");
    let received_bytes = link(&received)["received_bytes"]
        .as_u64()
        .expect("received");
    eprintln!(
        "{}",
        json!({
            "scenario": "narrow", "frames_in_measured_window": frames, "freeze_ms": freeze_ms,
            "wire_kbps_per_second": per_second_kbps(&samples),
            "most_in_5s_kbps": most, "mean_estimate_kbps": mean_estimate,
            "sent_bytes": sent_bytes, "retransmitted_bytes": rtx_bytes,
            "received_bytes": received_bytes,
            "longest_audio_gap_ms": longest_silence_ms(&heard, SAMPLE_RATE, -40.0),
            "video": received["video"][0], "audio": received["audio"][0],
        })
    );

    // Pictures keep coming (none did through this path before the sender fitted it), with
    // no freeze over 500 ms (all freezes together are under it).
    assert!(
        frames >= MEASURED * 15,
        "{frames} pictures in {MEASURED} s through {RATE} kbit/s"
    );
    assert!(freeze_ms <= 500, "{freeze_ms} ms frozen");
    // What the sender hands the path is never more than 1.2x what it carries over 5 s.
    assert!(
        most <= f64::from(RATE) * 1.2,
        "{most:.0} kbit/s over 5 s into a {RATE} kbit/s path: {:?}",
        per_second_kbps(&samples)
    );
    // Its estimate is the path's rate, within 30 %.
    assert!(
        (0.7..=1.3).contains(&(mean_estimate / f64::from(RATE))),
        "estimate {mean_estimate:.0} kbit/s for a {RATE} kbit/s path: {samples:?}"
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
    assert_tone(&heard, AUDIO_GAP_MS);
}

#[test]
fn a_path_that_narrows_and_widens_again_is_followed_down_and_back_up() {
    const WIDE: u32 = 2_000;
    const NARROW: u32 = 300;
    const TOP: Option<(u64, u64)> = Some((1280, 720));
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut call = Call::start("step", 78, WIDE, 0);
    // From the first picture announced to 720p on the wire: a figure.
    let to_top = call.ramp_until(|s| s.sending == TOP);
    let wide = call.run(10);
    call.a_ns.reshape("va", NARROW);
    let narrow = call.run(20);
    call.a_ns.reshape("va", WIDE);
    // Back up: sampled until the top layer is sent again, 20 s at most.
    let widened = Instant::now();
    let mut back_up = None;
    let mut climbing = Vec::new();
    while widened.elapsed() < Duration::from_secs(20) {
        let sample = call.sample();
        let top = sample.sending == TOP;
        climbing.push(sample);
        if top {
            back_up = Some(widened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (heard, received, _) = call.end();

    let at_top = wide.iter().filter(|s| s.sending == TOP).count();
    let narrow_settled = &narrow[5..];
    let narrow_kbps = (narrow_settled.last().unwrap().wire_bytes
        - narrow_settled.first().unwrap().wire_bytes) as f64
        * 8.0
        / 1000.0
        / (narrow_settled.len() - 1) as f64;
    let longest_freeze = received["video"][0]["longest_freeze_ms"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "{}",
        json!({
            "scenario": "step", "seconds_at_top_while_wide": at_top,
            "top_layer_after_start_s": to_top.map(|d| d.as_secs_f64()),
            "estimates_narrow_kbps": narrow.iter().map(|s| s.estimate_bps / 1000).collect::<Vec<_>>(),
            "sizes_narrow": narrow.iter().map(|s| s.sending).collect::<Vec<_>>(),
            "wire_kbps_narrow": per_second_kbps(&narrow),
            "narrow_settled_kbps": narrow_kbps,
            "back_at_top_after_s": back_up.map(|d| d.as_secs_f64()),
            "climbing": climbing.iter().map(|s| (s.estimate_bps / 1000, s.sending)).collect::<Vec<_>>(),
            "longest_freeze_ms": longest_freeze,
            "frames_narrow": frames_over(&narrow),
            "longest_audio_gap_ms": longest_silence_ms(&heard, SAMPLE_RATE, -40.0),
            "video": received["video"][0], "audio": received["audio"][0],
        })
    );

    // Wide: the top layer.
    assert!(
        at_top >= 5,
        "720p in {at_top} of 10 s through {WIDE} kbit/s: {wide:?}"
    );
    // Narrow: a smaller layer, pictures still coming, held to the path.
    assert!(
        narrow_settled.iter().all(|s| s.sending != TOP),
        "still 720p through {NARROW} kbit/s: {narrow:?}"
    );
    assert!(frames_over(&narrow) >= 20 * 5, "{narrow:?}");
    assert!(
        narrow_kbps <= f64::from(NARROW) * 1.2,
        "{narrow_kbps:.0} kbit/s into {NARROW}"
    );
    // No freeze over a second, through both steps.
    assert!(longest_freeze <= 1_000, "a {longest_freeze} ms freeze");
    // Wide again: back at the top within 20 s.
    assert!(
        back_up.is_some(),
        "not back at 720p 20 s after the path widened"
    );
    // A path that narrows sevenfold at once overflows its queue before any sender can
    // know: some audio is lost with it, once (about 80 ms measured).
    assert_tone(&heard, STEP_AUDIO_GAP_MS);
}

#[test]
fn video_and_audio_keep_going_through_five_percent_loss() {
    const RATE: u32 = 1_000;
    const MEASURED: u64 = 20;
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut call = Call::start("lossy", 77, RATE, 5);
    call.ramp();
    let samples = call.run(MEASURED);
    let (heard, received, sent) = call.end();

    let frames = frames_over(&samples);
    let mean_estimate = mean_estimate_kbps(&samples);
    let sent_bytes = link(&sent)["sent_bytes"].as_u64().expect("sent");
    let rtx_bytes = link(&sent)["retransmitted_bytes"].as_u64().expect("rtx");
    eprintln!(
        "{}",
        json!({
            "scenario": "lossy", "frames_in_measured_window": frames,
            "freeze_ms": freeze_ms_over(&samples),
            "mean_estimate_kbps": mean_estimate, "most_in_5s_kbps": most_over_five_seconds(&samples),
            "sent_bytes": sent_bytes, "retransmitted_bytes": rtx_bytes,
            "retransmissions_received": link(&received)["retransmissions_received"],
            "retransmissions_refused": link(&sent)["retransmissions_refused"],
            "probe_bytes": link(&sent)["probe_bytes"],
            "loss_seen_by_sender": link(&sent)["loss"],
            "longest_audio_gap_ms": longest_silence_ms(&heard, SAMPLE_RATE, -40.0),
            "video": received["video"][0], "audio": received["audio"][0],
        })
    );

    // Video keeps going: retransmission and keyframes make up for the loss.
    assert!(
        frames >= MEASURED * 10,
        "{frames} pictures in {MEASURED} s through 5 % loss"
    );
    // Lost video comes again on its repair stream (RTX) and fills the gaps.
    assert!(
        rtx_bytes > 0 && link(&received)["retransmissions_received"].as_u64() > Some(0),
        "sent {rtx_bytes} bytes again; received: {}",
        link(&received)
    );
    // Random loss under the estimator's threshold does not starve the link.
    assert!(
        mean_estimate >= f64::from(RATE) * 0.5,
        "estimate {mean_estimate:.0} kbit/s through 5 % loss: {samples:?}"
    );
    assert!(
        most_over_five_seconds(&samples) <= f64::from(RATE) * 1.2,
        "{:?}",
        per_second_kbps(&samples)
    );
    // The sender sees the loss the path makes (over its last second of feedback).
    let seen = link(&sent)["loss"].as_f64().unwrap_or(0.0);
    assert!(
        (0.005..=0.15).contains(&seen),
        "the sender sees {seen} lost of 5 %"
    );
    // The lost audio is recovered from FEC or concealed: no hole.
    let audio = &received["audio"][0];
    assert!(
        audio["recovered"].as_u64().unwrap_or(0) + audio["concealed"].as_u64().unwrap_or(0) > 0,
        "5 % loss and nothing recovered or concealed: {audio}"
    );
    assert_tone(&heard, AUDIO_GAP_MS);
}

#[test]
fn a_narrow_receiver_does_not_lower_what_the_others_receive() {
    const NARROW: u32 = 400;
    const MEASURED: u64 = 15;
    const TOP: (u64, u64) = (1280, 720);
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    // a sends; b's downlink is 400 kbit/s (the hub's port towards it is shaped); c's is free.
    let (hub, spokes) = NetNs::star(76, 3);
    hub.shape("p1", NARROW);
    let mut server = hub.spawn(&["serve", "--bind", "10.76.0.254:0", "--json"], &[]);
    let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let video = ["--video", "testsrc:1280x720@30", "--audio", "sine:440"];
    let mut a = spokes[0].spawn_join_at(&url, "mesh", "a", "10.76.0.1", &video);
    let mut b = spokes[1].spawn_join_at(&url, "mesh", "b", "10.76.0.2", &[]);
    let mut c = spokes[2].spawn_join_at(&url, "mesh", "c", "10.76.0.3", &[]);
    for peer in [&mut b, &mut c] {
        peer.expect(LONG, "a's video", |v| {
            event(v) == "stream_add" && v["kind"] == "video"
        });
    }
    // The ramp, then the measure. Only a sends video: each receiver's first stream is a's.
    std::thread::sleep(Duration::from_secs(RAMP));
    let video_of = |stats: &Value| stats["video"][0].clone();
    let (b0, c0) = (video_of(&b.stats()), video_of(&c.stats()));
    let mut sizes: Vec<Value> = Vec::new();
    let t0 = Instant::now();
    for second in 1..=MEASURED {
        std::thread::sleep(
            (t0 + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
        );
        sizes.push(a.stats()["links"].clone());
    }
    let (b1, c1) = (video_of(&b.stats()), video_of(&c.stats()));
    for peer in [&mut a, &mut b, &mut c] {
        peer.cmd(json!({"cmd": "leave"}));
        assert_eq!(peer.wait_exit(LONG), Some(0));
    }
    server.kill();

    let frames = |before: &Value, after: &Value| {
        after["frames"].as_u64().unwrap_or(0) - before["frames"].as_u64().unwrap_or(0)
    };
    let (b_frames, c_frames) = (frames(&b0, &b1), frames(&c0, &c1));
    eprintln!(
        "{}",
        json!({
            "scenario": "mesh", "b_frames": b_frames, "c_frames": c_frames,
            "b_video": b1, "c_video": c1, "a_links": sizes.last(),
        })
    );
    let size = |v: &Value| {
        (
            v["width"].as_u64().unwrap_or(0),
            v["height"].as_u64().unwrap_or(0),
        )
    };
    // c, unconstrained, keeps the top layer at its full frame rate (20 of 30 fps at least,
    // on a machine running three peers' codecs).
    assert_eq!(size(&c1), TOP, "c receives {c1}");
    assert!(
        c_frames >= MEASURED * 20,
        "c decoded {c_frames} pictures in {MEASURED} s"
    );
    assert!(
        c1["freeze_total_ms"].as_u64().unwrap_or(0)
            <= c0["freeze_total_ms"].as_u64().unwrap_or(0) + 500,
        "c froze: {c0} -> {c1}"
    );
    // b, behind 400 kbit/s, gets a smaller layer, and pictures keep coming.
    assert_ne!(size(&b1), TOP, "b receives {b1}");
    assert!(
        b_frames >= MEASURED * 10,
        "b decoded {b_frames} pictures in {MEASURED} s"
    );
}

/// A file sent during a call: it goes through, inside the estimate, and the call keeps its
/// picture. (Before the data channel was paced, its association filled the path as it
/// found it, the estimate fell to its floor, and the picture to its smallest layer for the
/// transfer and the 15 s after it.)
#[test]
fn a_file_sent_during_a_call_shares_the_path_with_it() {
    const RATE: u32 = 1_000;
    const MEASURED: u64 = 25;
    /// 16 messages of 40 kB: 5.1 Mbit, five seconds of the whole path.
    const MESSAGES: usize = 16;
    const MESSAGE_BYTES: usize = 40_000;
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut call = Call::start("file", 75, RATE, 0);
    call.ramp();
    call.send_file(MESSAGES, MESSAGE_BYTES);
    let samples = call.run(MEASURED);
    let (heard, received, _) = call.end();
    let done_after = samples.iter().position(|s| s.file_messages == MESSAGES);
    let most_data_kbps = samples.iter().map(|s| s.data_bps / 1000).max().unwrap_or(0);
    let smallest = samples.iter().filter_map(|s| s.sending).min();
    eprintln!(
        "{}",
        json!({
            "scenario": "file", "file_done_after_s": done_after,
            "frames_in_measured_window": frames_over(&samples),
            "freeze_ms": freeze_ms_over(&samples),
            "wire_kbps_per_second": per_second_kbps(&samples),
            "data_kbps_per_second": samples.iter().map(|s| s.data_bps / 1000).collect::<Vec<_>>(),
            "most_in_5s_kbps": most_over_five_seconds(&samples),
            "estimates_kbps": samples.iter().map(|s| s.estimate_bps / 1000).collect::<Vec<_>>(),
            "sizes": samples.iter().map(|s| s.sending).collect::<Vec<_>>(),
            "longest_audio_gap_ms": longest_silence_ms(&heard, SAMPLE_RATE, -40.0),
            "video": received["video"][0], "audio": received["audio"][0],
        })
    );
    // The file arrives whole, and the sender's figures saw it go.
    assert!(
        done_after.is_some(),
        "{} of {MESSAGES} messages in {MEASURED} s",
        samples.last().map_or(0, |s| s.file_messages)
    );
    assert!(most_data_kbps > 0, "no data counted: {samples:?}");
    // The call keeps fitting the path, and keeps its picture: the estimate is the path's,
    // not what the media was left, and the camera stays above its smallest layer.
    assert!(
        most_over_five_seconds(&samples) <= f64::from(RATE) * 1.2,
        "{:?}",
        per_second_kbps(&samples)
    );
    let mean_estimate = mean_estimate_kbps(&samples);
    assert!(
        (0.7..=1.3).contains(&(mean_estimate / f64::from(RATE))),
        "estimate {mean_estimate:.0} kbit/s for a {RATE} kbit/s path: {samples:?}"
    );
    assert!(
        smallest > Some((320, 180)),
        "the camera went down to {smallest:?}: {samples:?}"
    );
    assert!(frames_over(&samples) >= MEASURED * 15, "{samples:?}");
    assert!(freeze_ms_over(&samples) <= 500, "{samples:?}");
    assert_tone(&heard, AUDIO_GAP_MS);
}

/// A file sent during a voice call on a narrow path: the data goes at what the path leaves
/// the voice, not as fast as its association finds room in the modem's queue, so the tone
/// keeps playing.
#[test]
fn a_file_sent_during_a_voice_call_leaves_the_voice_its_room() {
    const RATE: u32 = 400;
    const MEASURED: u64 = 25;
    /// 8 messages of 40 kB: 2.6 Mbit, about seven seconds of the whole path.
    const MESSAGES: usize = 8;
    const MESSAGE_BYTES: usize = 40_000;
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut call = Call::start_with("voicefile", 74, RATE, 0, false);
    call.ramp();
    call.send_file(MESSAGES, MESSAGE_BYTES);
    let samples = call.run(MEASURED);
    let (heard, _, _) = call.end();
    let done_after = samples.iter().position(|s| s.file_messages == MESSAGES);
    eprintln!(
        "{}",
        json!({
            "scenario": "voice_file", "file_done_after_s": done_after,
            "wire_kbps_per_second": per_second_kbps(&samples),
            "data_kbps_per_second": samples.iter().map(|s| s.data_bps / 1000).collect::<Vec<_>>(),
            "most_in_5s_kbps": most_over_five_seconds(&samples),
            "estimates_kbps": samples.iter().map(|s| s.estimate_bps / 1000).collect::<Vec<_>>(),
            "longest_audio_gap_ms": longest_silence_ms(&heard, SAMPLE_RATE, -40.0),
        })
    );
    assert!(
        done_after.is_some(),
        "{} of {MESSAGES} messages in {MEASURED} s",
        samples.last().map_or(0, |s| s.file_messages)
    );
    assert!(
        most_over_five_seconds(&samples) <= f64::from(RATE) * 1.2,
        "{:?}",
        per_second_kbps(&samples)
    );
    assert_tone(&heard, AUDIO_GAP_MS);
}

/// A tree of three in a line: the root `a` sends 720p to `b`, which passes it on to `c`
/// without decoding; `c`'s downlink is 400 kbit/s. `b` tells `a` the narrowest path below
/// it, so `a` sends `b` a picture that fits `c`'s path (before, `b` passed on 720p that
/// `c`'s path could not carry, and `c`'s picture froze). When `c`'s path widens, the
/// branch climbs.
#[test]
fn a_narrow_path_down_a_tree_holds_the_branch_above_it_to_what_it_carries() {
    const NARROW: u32 = 400;
    const WIDE: u32 = 20_000;
    const MEASURED: u64 = 15;
    const TOP: (u64, u64) = (1280, 720);
    let _lab = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let (hub, spokes) = NetNs::star(79, 3);
    hub.shape("p2", NARROW);
    let mut server = hub.spawn(&["serve", "--bind", "10.79.0.254:0", "--json"], &[]);
    let url = server.expect(LONG, "listening", |v| event(v) == "listening")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let tree = ["--topology", "tree", "--max-degree", "1"];
    let mut root = tree.to_vec();
    root.extend(["--root", "--secret", "s3cret"]);
    root.extend(["--video", "testsrc:1280x720@30", "--audio", "sine:440"]);
    let mut a = spokes[0].spawn_join_at(&url, "line", "a", "10.79.0.1", &root);
    a.expect(LONG, "crowned", |v| {
        event(v) == "tree_state" && v["is_root"] == true
    });
    let mut b = spokes[1].spawn_join_at(&url, "line", "b", "10.79.0.2", &tree);
    let b_id = joined(&mut b);
    b.expect(LONG, "a's video at b", |v| {
        event(v) == "stream_add" && v["kind"] == "video"
    });
    let mut c = spokes[2].spawn_join_at(&url, "line", "c", "10.79.0.3", &tree);
    let c_id = joined(&mut c);
    c.expect(LONG, "c under b", |v| {
        event(v) == "tree_state" && v["depth"] == 2
    });
    // Forwarded pictures are announced by no stream of b's own: c's figures tell.
    common::wait_for(LONG, "the root's pictures at c", || {
        let got = c.stats()["video"][0]["frames"].as_u64().unwrap_or(0);
        (got > 0).then_some(())
    });
    // The ramp, then the measure: what a sends b, and what c decodes.
    std::thread::sleep(Duration::from_secs(RAMP));
    let video_of = |stats: &Value| stats["video"][0].clone();
    let c0 = video_of(&c.stats());
    let mut narrow: Vec<(Value, Value)> = Vec::new();
    let t0 = Instant::now();
    for second in 1..=MEASURED {
        std::thread::sleep(
            (t0 + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
        );
        narrow.push((link_to(&a.stats(), &b_id), link_to(&b.stats(), &c_id)));
    }
    let c1 = video_of(&c.stats());
    // c's path widens: the branch climbs past the layer it had, 40 s at most (how long it
    // took is a figure: docs/benchmarks.md).
    let area = |size: Option<(u64, u64)>| size.map_or(0, |(w, h)| w * h);
    let narrowest_sent = narrow
        .iter()
        .map(|(a, _)| area(sending_of(a)))
        .max()
        .unwrap_or(0);
    hub.reshape("p2", WIDE);
    let widened = Instant::now();
    let mut climbed = None;
    let mut climbing = Vec::new();
    while widened.elapsed() < Duration::from_secs(40) {
        let to_b = link_to(&a.stats(), &b_id);
        let to_c = link_to(&b.stats(), &c_id);
        let size = sending_of(&to_b);
        climbing.push(json!([
            to_b["cap_bps"].as_u64().map(|c| c / 1000),
            size,
            to_c["estimate_bps"].as_u64().map(|e| e / 1000),
            to_c["send_bps"].as_u64().map(|e| e / 1000),
            to_c["probe_bytes"],
        ]));
        if area(size) > narrowest_sent {
            climbed = Some(widened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let c2 = video_of(&c.stats());
    for peer in [&mut c, &mut b, &mut a] {
        peer.cmd(json!({"cmd": "leave"}));
        assert_eq!(peer.wait_exit(LONG), Some(0));
    }
    server.kill();

    let frames = |before: &Value, after: &Value| {
        after["frames"].as_u64().unwrap_or(0) - before["frames"].as_u64().unwrap_or(0)
    };
    let freeze = |before: &Value, after: &Value| {
        after["freeze_total_ms"].as_u64().unwrap_or(0)
            - before["freeze_total_ms"].as_u64().unwrap_or(0)
    };
    let c_frames = frames(&c0, &c1);
    let c_freeze_ms = freeze(&c0, &c1);
    let b_to_c_kbps: Vec<u64> = narrow
        .iter()
        .map(|(_, b)| b["send_bps"].as_u64().unwrap_or(0) / 1000)
        .collect();
    eprintln!(
        "{}",
        json!({
            "scenario": "tree_line", "c_frames": c_frames, "c_freeze_ms": c_freeze_ms,
            "c_video": c1,
            "a_to_b_sizes": narrow.iter().map(|(a, _)| sending_of(a)).collect::<Vec<_>>(),
            "a_to_b_caps_kbps": narrow.iter().map(|(a, _)| a["cap_bps"].as_u64().map(|c| c / 1000)).collect::<Vec<_>>(),
            "b_to_c_send_kbps": b_to_c_kbps,
            "climbed_after_s": climbed.map(|d| d.as_secs_f64()),
            "climbing": climbing,
            "c_video_after": c2,
        })
    );
    // a hears of c's path through b, and sends b less than 720p.
    let settled = &narrow[5..];
    assert!(
        settled.iter().all(|(a, _)| a["cap_bps"].as_u64().is_some()),
        "b never told a of the path below it: {narrow:?}"
    );
    assert!(
        settled.iter().all(|(a, _)| sending_of(a) != Some(TOP)),
        "a sends b 720p while c's path carries {NARROW} kbit/s: {narrow:?}"
    );
    // What b passes on fits c's path, and c's pictures keep coming (10 of 30 fps at least,
    // on a machine running three peers' codecs).
    let b_to_c = b_to_c_kbps[5..].iter().sum::<u64>() as f64 / (b_to_c_kbps.len() - 5) as f64;
    assert!(
        b_to_c <= f64::from(NARROW) * 1.2,
        "b passes on {b_to_c:.0} kbit/s into {NARROW}"
    );
    assert!(
        c_frames >= MEASURED * 10,
        "c decoded {c_frames} pictures in {MEASURED} s"
    );
    assert!(
        c_freeze_ms <= 1_000,
        "c froze {c_freeze_ms} ms: {c0} -> {c1}"
    );
    // The path widens: the branch climbs (before a forwarder passed each packet on once,
    // the root's probes went down as copies and held it down).
    assert!(
        climbed.is_some(),
        "no bigger picture 40 s after c's path widened: {climbing:?}"
    );
}
