//! Screen sharing over real WebRTC links: a peer shares an X screen (a virtual one this test
//! starts, showing a known picture) beside its camera stream; the far side receives pictures
//! that match it, the stream says `{"type":"screen"}`, and stopping the share removes that
//! stream alone. And the bad cases: no display, no camera.

use plenum_e2e::cli as common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{MEDIA_WAIT, Proc, event, serve, spawn_join, spawn_join_env, wait_for};
use plenum_media::{Stamp, TestPattern, VideoFrame, psnr, read_stamp};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

/// A virtual X server of this test's own and the window showing a picture on it, both
/// ended by their process ids on drop.
struct Xvfb {
    server: Child,
    viewer: Option<Child>,
    display: String,
}

impl Xvfb {
    fn start(width: u32, height: u32) -> Self {
        // A display number no other server holds (its lock file is absent) and that no
        // other test of this process took (its server may not have locked it yet).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = 200 + std::process::id() % 500;
        let number = std::iter::repeat_with(|| {
            base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        })
        .take(100)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .expect("a free display number");
        // A socket left by a server that was killed is in the way of the new one.
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{number}"));
        let display = format!(":{number}");
        let server = Command::new("Xvfb")
            .args([&display, "-screen", "0", &format!("{width}x{height}x24")])
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/deps.sh installs it)");
        // Ready once its socket takes connections (a socket file alone may be a dead
        // server's).
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "Xvfb did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            server,
            viewer: None,
            display,
        }
    }

    /// Shows a picture in a borderless window at the top-left corner (no window manager:
    /// it covers the screen when it is the screen's size), and waits until the screen shows
    /// it: its stamp reads back from a capture of the whole screen.
    fn show(&mut self, png: &Path, stamp: Stamp) {
        let viewer = Command::new("display")
            .args(["-borderwidth", "0", "-geometry", "+0+0"])
            .arg(png)
            .env("DISPLAY", &self.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ImageMagick display");
        self.viewer = Some(viewer);
        let capture = png.with_extension("screen.png");
        wait_for(LONG, "the picture on the screen", || {
            let status = Command::new("import")
                .args(["-display", &self.display, "-window", "root"])
                .arg(format!("PNG32:{}", capture.display()))
                .stderr(Stdio::null())
                .status()
                .expect("ImageMagick import");
            let shown = VideoFrame::load_png(&capture)
                .ok()
                .filter(|_| status.success())?;
            (read_stamp(&shown).map(|s| s.counter) == Some(stamp.counter)).then_some(())
        });
        let _ = std::fs::remove_file(&capture);
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        for child in self.viewer.iter_mut().chain([&mut self.server]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn frames_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-screen-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("frames dir");
    dir
}

/// Saved pictures whose file name contains `part`, in order.
fn saved(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(part))
    });
    files.sort();
    files
}

fn leave(peers: &mut [&mut Proc]) {
    for peer in peers {
        peer.cmd(json!({"cmd": "leave"}));
        assert_eq!(peer.wait_exit(LONG), Some(0));
    }
}

#[test]
fn a_shared_screen_arrives_beside_the_camera_and_stops_alone() {
    let mut x = Xvfb::start(1280, 720);
    let dir = frames_dir("share");
    // The known picture: the test pattern with a stamp no camera frame carries.
    let stamp = Stamp {
        counter: 4242,
        capture_ms: 777,
    };
    let shown = TestPattern::draw(1280, 720, stamp);
    let png = dir.join("shown.png");
    shown.save_png(&png).expect("picture written");
    x.show(&png, stamp);

    let server = serve(&[]);
    let frames = dir.join("frames");
    let mut b = spawn_join(
        &server.url,
        "share",
        "b",
        &[
            "--save-frames",
            frames.to_str().expect("utf-8"),
            "--save-frames-per-second",
            "4",
        ],
    );
    let mut a = spawn_join_env(
        &server.url,
        "share",
        "a",
        &["--video", "testsrc:320x180@15", "--screen"],
        &[("DISPLAY", &x.display)],
    );
    let shared = a.expect(LONG, "sharing", |v| event(v) == "screen");
    let screen_stream = shared["stream"].as_str().expect("stream").to_owned();
    let mut added = Vec::new();
    while added.len() < 2 {
        added.push(b.expect(LONG, "a's streams", |v| event(v) == "stream_add"));
    }
    let screen = added
        .iter()
        .find(|v| v["metadata"]["type"] == "screen")
        .unwrap_or_else(|| panic!("no screen stream in {added:?}"));
    assert_eq!(screen["kind"], "video");
    assert_eq!(screen["stream"], screen_stream.as_str());
    assert!(
        added
            .iter()
            .any(|v| v["metadata"]["source"] == "testsrc:320x180@15")
    );

    // Three seconds' worth of screen pictures at 4 a second, however long that takes.
    wait_for(MEDIA_WAIT, "twelve screen pictures", || {
        (saved(&frames, "-screen-").len() >= 12).then_some(())
    });
    let pictures = saved(&frames, "-screen-");
    assert!(
        pictures.len() >= 3,
        "{} screen pictures saved",
        pictures.len()
    );
    // Screen content is coded for sharpness: the last picture is the screen, closely.
    let last = pictures
        .iter()
        .rev()
        .find_map(|p| VideoFrame::load_png(p).ok())
        .expect("a readable screen picture");
    assert_eq!((last.width, last.height), (1280, 720));
    assert_eq!(read_stamp(&last).map(|s| s.counter), Some(4242));
    let db = psnr(&last, &shown);
    eprintln!(
        "screen picture: {db:.1} dB after {} pictures",
        pictures.len()
    );
    assert!(db >= 30.0, "screen picture at {db:.1} dB");

    // Stopping the share removes that stream alone; the camera keeps coming.
    a.cmd(json!({"cmd": "screen", "source": "none"}));
    let removed = b.expect(LONG, "the screen removed", |v| event(v) == "stream_remove");
    assert_eq!(removed["stream"], screen_stream.as_str());
    let cameras = || saved(&frames, "").len() - saved(&frames, "-screen-").len();
    // The saver writes in order and holds five pictures at most (one being written, four
    // queued): six more camera pictures and every picture handed to it before the removal
    // is on disk.
    let at_removal = cameras();
    wait_for(MEDIA_WAIT, "six camera pictures after the removal", || {
        (cameras() >= at_removal + 6).then_some(())
    });
    let (camera_before, screens) = (cameras(), saved(&frames, "-screen-").len());
    wait_for(MEDIA_WAIT, "four camera pictures more", || {
        (cameras() >= camera_before + 4).then_some(())
    });
    assert!(
        cameras() >= camera_before + 4,
        "camera pictures kept coming: {camera_before} then {}",
        cameras()
    );
    assert_eq!(
        saved(&frames, "-screen-").len(),
        screens,
        "no screen after the stop"
    );
    let late: Vec<_> = b.drain_for(Duration::from_millis(200));
    assert!(
        !late.iter().any(|v| event(v) == "stream_remove"),
        "only the screen was removed: {late:?}"
    );
    leave(&mut [&mut a, &mut b]);
    drop(x);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn without_a_display_or_a_camera_the_peer_says_why_and_stays() {
    let server = serve(&[]);
    let mut b = spawn_join(&server.url, "bad", "b", &[]);
    let no_display = [("DISPLAY", ""), ("WAYLAND_DISPLAY", "")];
    let mut a = spawn_join_env(
        &server.url,
        "bad",
        "a",
        &["--screen", "--video", "camera"],
        &no_display,
    );
    let mut errors = Vec::new();
    while errors.len() < 2 {
        errors.push(a.expect(LONG, "two errors", |v| event(v) == "error"));
    }
    let by_code = |code: &str| {
        errors
            .iter()
            .find(|e| e["code"] == code)
            .unwrap_or_else(|| panic!("no {code} in {errors:?}"))["message"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    assert!(
        by_code("screen_capture").contains("no display"),
        "{errors:?}"
    );
    // This machine has no camera (no /dev/video*): the error says so.
    assert!(by_code("video_device").contains("no camera"), "{errors:?}");

    // Still in the room: a message gets through, and another source can be chosen.
    a.expect(LONG, "b", |v| event(v) == "peer_join");
    a.cmd(json!({"cmd": "send", "channel": "chat", "data": "still here"}));
    let got = b.expect(LONG, "the message", |v| event(v) == "message");
    assert_eq!(got["data"], "still here");
    a.cmd(json!({"cmd": "video", "source": "testsrc:320x180@15"}));
    let added = b.expect(LONG, "a's video", |v| event(v) == "stream_add");
    assert_eq!(added["kind"], "video");
    a.cmd(json!({"cmd": "screen", "source": "window:nothing"}));
    let err = a.expect(LONG, "no display again", |v| event(v) == "error");
    assert_eq!(err["code"], "screen_capture");
    leave(&mut [&mut a, &mut b]);
}

#[test]
fn a_display_that_goes_away_ends_the_share_alone_and_says_screen_capture() {
    let mut x = Xvfb::start(640, 360);
    // The display is up and drawing before anyone captures it: a picture shows on it.
    let dir = frames_dir("gone");
    let stamp = Stamp {
        counter: 77,
        capture_ms: 1,
    };
    let png = dir.join("shown.png");
    TestPattern::draw(640, 360, stamp)
        .save_png(&png)
        .expect("picture written");
    x.show(&png, stamp);
    let server = serve(&[]);
    let mut b = spawn_join(&server.url, "gone", "b", &[]);
    let mut a = spawn_join_env(
        &server.url,
        "gone",
        "a",
        &[
            "--video",
            "testsrc:320x180@15",
            "--screen",
            "--screen-fps",
            "5",
        ],
        &[("DISPLAY", &x.display)],
    );
    a.expect(LONG, "sharing", |v| event(v) == "screen");
    let mut added = 0;
    while added < 2 {
        b.expect(LONG, "a's streams", |v| event(v) == "stream_add");
        added += 1;
    }
    // The display goes away (its server ended by its process id) while the screen is shared;
    // SIGTERM, so that it removes its lock and socket.
    let pid = x.server.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = x.server.wait();
    let error = a.expect(LONG, "the share's failure", |v| event(v) == "error");
    assert_eq!(error["code"], "screen_capture", "{error}");
    // The peer stays, and so does its camera.
    a.cmd(json!({"cmd": "send", "channel": "chat", "data": "still here"}));
    let got = b.expect(LONG, "the message", |v| event(v) == "message");
    assert_eq!(got["data"], "still here");
    let late = b.drain_for(Duration::from_millis(500));
    assert!(
        late.iter().filter(|v| event(v) == "stream_remove").count() <= 1,
        "at most the screen was removed: {late:?}"
    );
    leave(&mut [&mut a, &mut b]);
    drop(x);
    let _ = std::fs::remove_dir_all(&dir);
}
