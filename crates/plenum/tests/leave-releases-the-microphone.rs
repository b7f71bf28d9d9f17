//! `Room::leave` closes the capture device even while a clone of the room handle lives (an
//! app that keeps running after its call ends): a real microphone, through cpal and ALSA's
//! PulseAudio plugin, on a private PulseAudio server with a null sink, is captured during
//! the call, and PulseAudio shows no capture stream once `leave` has returned.
//!
//! The ALSA plugin finds the server through `PULSE_SERVER`, which a test cannot set in its
//! own process; the outer test starts the server and runs the inner one in a child process
//! of this test binary with it set.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);
const CHILD: &str = "PLENUM_TEST_PULSE_CHILD";

/// The private PulseAudio daemon, killed by its pid on drop, its directory removed.
struct Pulse {
    dir: std::path::PathBuf,
    server: String,
    daemon: Child,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pulse {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("plenum-pulse-leave-{}", std::process::id()));
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
            daemon,
        };
        let deadline = Instant::now() + LONG;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "pulseaudio did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        pactl(
            &pulse.server,
            &["set-default-source", "plenum_null.monitor"],
        );
        pulse
    }
}

fn pactl(server: &str, args: &[&str]) -> String {
    let out = Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", server)
        .output()
        .expect("pactl");
    assert!(out.status.success(), "pactl {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Capture streams open on the server now.
fn captures(server: &str) -> usize {
    pactl(server, &["list", "short", "source-outputs"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Waits until `captures` is `want`, up to [`LONG`].
fn wait_captures(server: &str, want: usize, what: &str) {
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

#[test]
fn leave_releases_the_microphone_while_a_room_handle_lives() {
    let pulse = Pulse::start();
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "the_call_in_a_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("PULSE_SERVER", &pulse.server)
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "the child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran no test:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The call itself; run by the test above with `PULSE_SERVER` set.
#[test]
#[ignore = "runs inside leave_releases_the_microphone_while_a_room_handle_lives"]
fn the_call_in_a_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server_addr = std::env::var("PULSE_SERVER").expect("PULSE_SERVER");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = plenum_signal::Server::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            plenum_signal::ServerConfig::default(),
        )
        .await
        .expect("server");
        let config = plenum::RoomConfig::builder("leave", "ann")
            .server(&server.url())
            .udp_bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
            .build()
            .expect("config");
        let (room, _events) = plenum::Room::join(config).await.expect("join");
        let mic = plenum_media::Microphone::open(Some("alsa:pulse")).expect("the microphone");
        room.set_audio_source(Some(Box::new(mic)))
            .await
            .expect("publish");
        wait_captures(&server_addr, 1, "while publishing");
        let kept = room.clone();
        room.leave().await;
        // The handle lives on; the device does not.
        wait_captures(&server_addr, 0, "after leave");
        assert!(
            kept.set_audio_muted(true).await.is_err(),
            "the room still runs"
        );
    });
}
