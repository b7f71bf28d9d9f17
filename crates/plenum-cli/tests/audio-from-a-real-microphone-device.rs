//! The real device path: PulseAudio with a null sink (no hardware), a tone played into the
//! sink, and a peer capturing the sink's monitor through cpal (`--audio mic:alsa:pulse`,
//! ALSA's PulseAudio plugin) at the device's own rate and channel count. The far side
//! records the tone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{event, serve, spawn_join_env};
use plenum_media::analysis::dominant_frequency;
use plenum_media::{AudioSource, SAMPLE_RATE, Sine, WavRecorder};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

/// A helper process, killed by its pid on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private PulseAudio server with a null sink whose monitor is the default source.
struct Pulse {
    dir: PathBuf,
    server: String,
    _daemon: Helper,
}

impl Pulse {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("plenum-pulse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pulse dir");
        let socket = dir.join("native");
        let daemon = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--log-target=stderr",
            ])
            .arg(format!(
                "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .arg("--load=module-null-sink sink_name=plenum_null")
            .env("PULSE_RUNTIME_PATH", dir.join("run"))
            .env("PULSE_STATE_PATH", dir.join("state"))
            .env("HOME", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio (Debian package pulseaudio)");
        let daemon = Helper(daemon);
        let deadline = Instant::now() + LONG;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let server = format!("unix:{}", socket.display());
        for args in [
            ["set-default-source", "plenum_null.monitor"],
            ["set-default-sink", "plenum_null"],
        ] {
            let status = Command::new("pactl")
                .args(args)
                .env("PULSE_SERVER", &server)
                .status()
                .expect("pactl");
            assert!(status.success(), "pactl {args:?}");
        }
        Self {
            dir,
            server,
            _daemon: daemon,
        }
    }

    fn play(&self, wav: &Path) -> Helper {
        let child = Command::new("paplay")
            .arg(wav)
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("paplay");
        Helper(child)
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_tone_captured_from_a_real_input_device_reaches_the_far_side() {
    let pulse = Pulse::start();
    let tone = pulse.dir.join("tone.wav");
    let mut rec = WavRecorder::create(&tone).expect("tone file");
    let mut samples = vec![0.0; 15 * SAMPLE_RATE as usize];
    Sine::new(523.0, 0.4).read(&mut samples);
    rec.write(&samples).expect("write tone");
    rec.finish().expect("finish tone");
    let _player = pulse.play(&tone);

    let server = serve(&[]);
    let path = pulse.dir.join("heard.wav");
    // The ALSA PulseAudio plugin finds the private server through PULSE_SERVER.
    let join = |name: &str, extra: &[&str]| {
        let env = [("PULSE_SERVER", pulse.server.as_str())];
        let mut peer = spawn_join_env(&server.url, "mic", name, extra, &env);
        peer.expect(LONG, "joined", |v| event(v) == "joined");
        peer
    };
    let mut a = join("a", &["--audio", "mic:alsa:pulse"]);
    a.expect(LONG, "capturing", |v| {
        event(v) == "audio" && v["source"] == "mic:alsa:pulse"
    });
    let mut b = join("b", &["--record-audio", path.to_str().expect("utf-8")]);
    b.expect(LONG, "a speaks", |v| {
        event(v) == "speaking" && v["speaking"] == true
    });
    std::thread::sleep(Duration::from_secs(3));
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
