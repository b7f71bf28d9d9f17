//! A private PulseAudio server for tests that need real audio devices: no hardware, one
//! null sink whose monitor is the default source, reached through `PULSE_SERVER` (by
//! `pactl`, `paplay`, and cpal through ALSA's PulseAudio plugin). The daemon is killed by
//! its process id and its directory removed when the guard drops.
//!
//! Self-contained (std only), so that crate-level tests can include it with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to start, and a capture stream to come or go.
const LONG: Duration = Duration::from_secs(20);

/// A child process, killed by its pid on drop.
#[derive(Debug)]
pub struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The private server.
#[derive(Debug)]
pub struct Pulse {
    dir: PathBuf,
    server: String,
    daemon: Option<Helper>,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pulse {
    /// Starts a server of its own; `tag` tells apart servers of one test binary.
    pub fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plenum-pulse-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pulse dir");
        let socket = dir.join("native");
        let daemon = Command::new("pulseaudio")
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1"])
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
        let pulse = Self {
            server: format!("unix:{}", socket.display()),
            dir,
            daemon: Some(Helper(daemon)),
        };
        let deadline = Instant::now() + LONG;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse.pactl(&["set-default-source", "plenum_null.monitor"]);
        pulse.pactl(&["set-default-sink", "plenum_null"]);
        pulse
    }

    /// What `PULSE_SERVER` is set to for a process to reach this server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A directory of its own for the test's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `pactl` against this server; its output.
    pub fn pactl(&self, args: &[&str]) -> String {
        pactl(&self.server, args)
    }

    /// Plays a WAV file into the null sink (so into the default source).
    pub fn play(&self, wav: &Path) -> Helper {
        let child = Command::new("paplay")
            .arg(wav)
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("paplay");
        Helper(child)
    }

    /// Stops the sound server (by its process id): every device it offered is gone, and
    /// opening one fails.
    pub fn stop(&mut self) {
        drop(self.daemon.take());
    }

    /// Removes the null sink and with it the monitor source, as pulling out a USB headset
    /// does.
    pub fn unplug(&self) {
        let modules = self.pactl(&["list", "short", "modules"]);
        let index = modules
            .lines()
            .find(|l| l.contains("module-null-sink"))
            .and_then(|l| l.split_whitespace().next())
            .expect("the null sink module")
            .to_owned();
        self.pactl(&["unload-module", &index]);
    }
}

/// Runs `pactl` against the server at `server` (a `PULSE_SERVER` value); its output.
pub fn pactl(server: &str, args: &[&str]) -> String {
    let out = Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", server)
        .output()
        .expect("pactl");
    assert!(out.status.success(), "pactl {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Capture streams open on the server at `server` now.
pub fn captures(server: &str) -> usize {
    pactl(server, &["list", "short", "source-outputs"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Waits until [`captures`] is `want`, or fails after a generous bound.
pub fn wait_captures(server: &str, want: usize, what: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let now = captures(server);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} capture streams, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
