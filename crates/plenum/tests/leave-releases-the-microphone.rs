//! `Room::leave` closes the capture device even while a clone of the room handle lives (an
//! app that keeps running after its call ends): a real microphone, through cpal and ALSA's
//! PulseAudio plugin, on a private PulseAudio server with a null sink, is captured during
//! the call, and PulseAudio shows no capture stream once `leave` has returned.
//!
//! The ALSA plugin finds the server through `PULSE_SERVER`, which a test cannot set in its
//! own process; the outer test starts the server and runs the inner one in a child process
//! of this test binary with it set.

use std::net::SocketAddr;
use std::process::Command;

const CHILD: &str = "PLENUM_TEST_PULSE_CHILD";

#[path = "../../../tests/src/pulse.rs"]
#[allow(dead_code, unreachable_pub, clippy::disallowed_methods)]
mod pulse;

use pulse::{Pulse, wait_captures};

#[test]
fn leave_releases_the_microphone_while_a_room_handle_lives() {
    let pulse = Pulse::start("leave");
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "the_call_in_a_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("PULSE_SERVER", pulse.server())
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
