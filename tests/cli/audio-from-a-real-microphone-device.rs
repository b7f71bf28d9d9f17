//! The real device path: PulseAudio with a null sink (no hardware), a tone played into the
//! sink, and a peer capturing the sink's monitor through cpal (`--audio mic:alsa:pulse`,
//! ALSA's PulseAudio plugin) at the device's own rate and channel count. The far side
//! records the tone. Then the device is unplugged mid-call (its PulseAudio module unloaded):
//! the peer reports the device by name, stays in the room, and a source chosen afterwards
//! reaches the far side. And an echo path: a peer whose speaker plays straight into its
//! microphone sends nothing of what it hears back, with echo cancellation on (and, as the
//! control, sends it all back with it off).

use std::time::Duration;

use plenum_e2e::cli as common;

use common::{event, serve, spawn_join_env};
use plenum_e2e::pulse::{Helper, Pulse};
use plenum_media::analysis::{dominant_frequency, rms_dbfs, tone_level_db};
use plenum_media::{AudioSource, SAMPLE_RATE, Sine, WavRecorder};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

/// What these tests do with the private PulseAudio server.
trait Mic {
    fn play_tone(&self, hz: f64) -> Helper;
    fn join(&self, url: &str, room: &str, name: &str, extra: &[&str]) -> common::Proc;
}

impl Mic for Pulse {
    /// Writes a tone that outlasts every wait of these tests and plays it into the null
    /// sink.
    fn play_tone(&self, hz: f64) -> Helper {
        let tone = self.dir().join("tone.wav");
        let mut rec = WavRecorder::create(&tone).expect("tone file");
        let seconds = 2 * common::MEDIA_WAIT.as_secs() as usize;
        let mut samples = vec![0.0; seconds * SAMPLE_RATE as usize];
        Sine::new(hz, 0.4).read(&mut samples);
        rec.write(&samples).expect("write tone");
        rec.finish().expect("finish tone");
        self.play(&tone)
    }

    /// Starts a headless peer that reaches this PulseAudio server (the ALSA PulseAudio plugin
    /// finds it through PULSE_SERVER) and waits until it has joined.
    fn join(&self, url: &str, room: &str, name: &str, extra: &[&str]) -> common::Proc {
        let env = [("PULSE_SERVER", self.server())];
        let mut peer = spawn_join_env(url, room, name, extra, &env);
        peer.expect(LONG, "joined", |v| event(v) == "joined");
        peer
    }
}

#[test]
fn a_tone_captured_from_a_real_input_device_reaches_the_far_side() {
    let pulse = Pulse::start("capture");
    let _player = pulse.play_tone(523.0);
    let server = serve(&[]);
    let path = pulse.dir().join("heard.wav");
    let mut a = pulse.join(&server.url, "mic", "a", &["--audio", "mic:alsa:pulse"]);
    a.expect(LONG, "capturing", |v| {
        event(v) == "audio" && v["source"] == "mic:alsa:pulse"
    });
    let record = path.to_str().expect("utf-8");
    let mut b = pulse.join(&server.url, "mic", "b", &["--record-audio", record]);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["speaking"] == true
    });
    common::wait_recorded(&path, 0, 3.0, "three seconds of the microphone at b");
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));

    let settled = &common::recording(&path, 0.5);
    let f = dominant_frequency(settled, SAMPLE_RATE);
    assert!(
        (f - 523.0).abs() < 2.0,
        "recorded {f} Hz from the microphone"
    );
}

#[test]
fn a_device_unplugged_mid_call_is_reported_and_another_source_takes_over() {
    let pulse = Pulse::start("unplug");
    let _player = pulse.play_tone(523.0);
    let server = serve(&[]);
    let path = pulse.dir().join("heard.wav");
    let mut a = pulse.join(&server.url, "unplug", "a", &["--audio", "mic:alsa:pulse"]);
    let a_id = a.seen[0]["peer"].as_str().expect("id").to_owned();
    let record = path.to_str().expect("utf-8");
    let mut b = pulse.join(&server.url, "unplug", "b", &["--record-audio", record]);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["speaking"] == true
    });

    pulse.unplug();
    let error = a.expect(LONG, "the device error", |v| event(v) == "error");
    assert_eq!(error["code"], "audio_device", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("alsa:pulse"),
        "names the device: {message}"
    );

    // Still in the room: a chat line gets through both ways, and nobody saw a leave.
    a.cmd(json!({"cmd": "send", "channel": "chat", "data": "still here"}));
    b.expect(LONG, "a's message", |v| {
        event(v) == "message" && v["from"] == a_id.as_str() && v["data"] == "still here"
    });
    let from = common::recorded_so_far(&path).len();
    a.cmd(json!({"cmd": "audio", "source": "sine:300"}));
    a.expect(LONG, "the new source", |v| {
        event(v) == "audio" && v["source"] == "sine:300"
    });
    common::wait_recorded(&path, from, 3.0, "three seconds of the new source at b");
    b.cmd(json!({"cmd": "leave"}));
    assert_eq!(b.wait_exit(LONG), Some(0));
    a.cmd(json!({"cmd": "leave"}));
    assert_eq!(a.wait_exit(LONG), Some(0));
    assert!(
        !b.seen.iter().any(|v| event(v) == "peer_leave"),
        "a left the room: {:#?}",
        b.seen
    );

    let heard = common::recording(&path, 0.0);
    let tail = &heard[heard.len().saturating_sub(2 * SAMPLE_RATE as usize)..];
    let f = dominant_frequency(tail, SAMPLE_RATE);
    assert!(
        (f - 300.0).abs() < 2.0,
        "after the unplug the far side heard {f} Hz"
    );
}

/// A far side (a) sends a 440 Hz tone to a peer (b) whose microphone hears everything its
/// speaker plays (the null sink's monitor) and also a 1500 Hz "voice" in b's room (played into
/// the sink). Returns how loud, in dBFS, a hears its own tone and b's voice come back, over the
/// last two seconds of four, once the canceller has had time to learn the path.
fn echo_returned(tag: &str, extra: &[&str]) -> (f64, f64) {
    let pulse = Pulse::start(tag);
    let server = serve(&[]);
    let path = pulse.dir().join("own-echo.wav");
    let record = path.to_str().expect("utf-8");
    let mut a = pulse.join(
        &server.url,
        "echo",
        "a",
        &["--audio", "sine:440", "--record-audio", record],
    );
    let mut args = vec!["--audio", "mic:alsa:pulse", "--speaker", "alsa:pulse"];
    args.extend_from_slice(extra);
    let mut b = pulse.join(&server.url, "echo", "b", &args);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["speaking"] == true
    });
    let from = common::recorded_so_far(&path).len();
    let _voice = pulse.play_tone(1500.0);
    common::wait_recorded(&path, from, 4.0, "four seconds of what b sends back");
    a.cmd(json!({"cmd": "leave"}));
    assert_eq!(a.wait_exit(LONG), Some(0));
    b.cmd(json!({"cmd": "leave"}));
    assert!(!b.seen.iter().any(|v| event(v) == "error"), "{:#?}", b.seen);

    let mut src = plenum_media::WavSource::open(&path).expect("a recording");
    let mut heard = vec![0.0; src.len()];
    src.read(&mut heard);
    let tail = &heard[heard.len().saturating_sub(2 * SAMPLE_RATE as usize)..];
    let level = |hz| f64::from(rms_dbfs(tail)) + tone_level_db(tail, SAMPLE_RATE, hz);
    (level(440.0), level(1500.0))
}

#[test]
fn a_speaker_playing_into_the_microphone_sends_no_echo_back() {
    // a's tone is sent at -9 dBFS (amplitude 0.5), b's voice played at -11 dBFS.
    // Noise suppression is off in both runs: it would take a steady tone for noise.
    let (echo_open, voice_open) = echo_returned(
        "echo-open",
        &["--no-echo-cancellation", "--no-noise-suppression"],
    );
    let (echo_cancelled, voice_cancelled) =
        echo_returned("echo-cancelled", &["--no-noise-suppression"]);
    eprintln!(
        "echo back {echo_open:.1} -> {echo_cancelled:.1} dBFS; \
         b's voice {voice_open:.1} -> {voice_cancelled:.1} dBFS"
    );
    assert!(
        echo_open > -30.0,
        "the echo path works: {echo_open:.1} dBFS came back"
    );
    assert!(
        echo_open - echo_cancelled > 20.0,
        "cancellation took {echo_open:.1} dBFS of echo only to {echo_cancelled:.1} dBFS"
    );
    assert!(
        (voice_open - voice_cancelled).abs() < 6.0,
        "b's own voice fell from {voice_open:.1} to {voice_cancelled:.1} dBFS"
    );
}
