//! Video over real WebRTC links: a peer sends the stamped test pattern (`--video testsrc`),
//! another saves what it decodes (`--save-frames`). Every saved picture is read back: its
//! stamp gives the frame counter, and the pattern redrawn for that counter is what was sent.

use plenum_e2e::cli as common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    MEDIA_WAIT, NetNs, Proc, event, serve, serve_in, spawn_join, spawn_join_in, wait_for,
};
use plenum_media::{TestPattern, VideoFrame, psnr, read_stamp};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

fn frames_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-frames-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// (counter, PSNR against the sent picture) of every saved picture, in file order.
fn saved(dir: &Path) -> Vec<(u32, f64)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            // A file still being written reads as an error; it is skipped.
            let got = VideoFrame::load_png(path).ok()?;
            let stamp =
                read_stamp(&got).unwrap_or_else(|| panic!("{} has no stamp", path.display()));
            Some((stamp.counter, psnr(&got, &sent_as(&got, stamp))))
        })
        .collect()
}

/// What the sender sent for `stamp` at the size `got` arrived at: its pattern at the size it
/// sends ([`SENT`]), made smaller as a simulcast layer is (three quarters of it, or halved
/// until the sizes match).
fn sent_as(got: &VideoFrame, stamp: plenum_media::Stamp) -> VideoFrame {
    let mut sent = TestPattern::draw(SENT.0, SENT.1, stamp);
    if VideoFrame::three_quarters_size(SENT.0, SENT.1) == (got.width, got.height) {
        return sent.three_quarters();
    }
    while sent.width > got.width && sent.width > 2 {
        sent = sent.half();
    }
    if sent.width == got.width {
        sent
    } else {
        TestPattern::draw(got.width, got.height, stamp)
    }
}

/// The size every sender of these tests sends at.
const SENT: (u32, u32) = (640, 360);

/// How many pictures have been saved in `dir` so far (one may still be being written).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// Waits until `dir` holds `n` saved pictures: video has flowed for that long, however long
/// a busy machine takes.
fn wait_pictures(dir: &Path, n: usize, what: &str) {
    wait_for(MEDIA_WAIT, what, || (count(dir) >= n).then_some(()));
}

/// The counter of the newest readable picture in `dir`.
fn newest(dir: &Path) -> Option<u32> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .rev()
        .find_map(|path| read_stamp(&VideoFrame::load_png(path).ok()?))
        .map(|stamp| stamp.counter)
}

/// A peer that saves what it receives in `dir`, `per_second` pictures a second.
fn spawn_saver(
    ns: Option<&NetNs>,
    url: &str,
    room: &str,
    name: &str,
    dir: &Path,
    per_second: &str,
) -> Proc {
    let dir = dir.to_str().expect("utf-8");
    let args = ["--save-frames", dir, "--save-frames-per-second", per_second];
    match ns {
        Some(ns) => spawn_join_in(ns, url, room, name, &args),
        None => spawn_join(url, room, name, &args),
    }
}

fn leave(peers: &mut [&mut Proc]) {
    for peer in peers {
        peer.cmd(json!({"cmd": "leave"}));
        assert_eq!(peer.wait_exit(LONG), Some(0));
    }
}

#[test]
fn decoded_pictures_carry_increasing_counters_and_match_what_was_sent() {
    let server = serve(&[]);
    let dir = frames_dir("plain");
    let mut a = spawn_join(&server.url, "video", "a", &["--video", "testsrc"]);
    a.expect(LONG, "publishing", |v| event(v) == "video");
    let mut b = spawn_saver(None, &server.url, "video", "b", &dir, "5");
    let added = b.expect(LONG, "a's video stream", |v| event(v) == "stream_add");
    assert_eq!(added["kind"], "video");
    assert_eq!(added["metadata"]["source"], "testsrc");
    wait_pictures(&dir, 15, "three seconds' worth of pictures at 5 a second");
    leave(&mut [&mut b, &mut a]);

    let frames = saved(&dir);
    assert!(frames.len() >= 8, "{} pictures saved", frames.len());
    for pair in frames.windows(2) {
        assert!(pair[1].0 > pair[0].0, "counters go up: {frames:?}");
    }
    for (counter, db) in &frames {
        assert!(*db >= 30.0, "picture {counter}: {db:.1} dB");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_late_joiner_gets_a_picture_without_waiting_for_a_periodic_keyframe() {
    // The sender's periodic keyframe comes 300 frames (10 s of the 30 fps pattern) after
    // the last keyframe. The early peer's first picture is a keyframe; if the late joiner's
    // first picture comes less than 300 frames after it, it came from a keyframe sent for
    // the late joiner, not from a periodic one.
    let server = serve(&[]);
    let (dir, early_dir) = (frames_dir("late"), frames_dir("early"));
    let mut a = spawn_join(&server.url, "late", "a", &["--video", "testsrc"]);
    let mut early = spawn_saver(None, &server.url, "late", "early", &early_dir, "5");
    early.expect(LONG, "a's video", |v| event(v) == "stream_add");
    // 1.5 s of pattern (45 frames) decoded before the late joiner comes.
    let before = wait_for(MEDIA_WAIT, "45 frames of the pattern at early", || {
        newest(&early_dir).filter(|counter| *counter >= 45)
    });
    let early_keyframe = saved(&early_dir)[0].0;
    let mut late = spawn_saver(None, &server.url, "late", "late", &dir, "10");
    late.expect(LONG, "a's video", |v| event(v) == "stream_add");
    wait_pictures(&dir, 1, "a picture at the late joiner");
    leave(&mut [&mut late, &mut early, &mut a]);
    let frames = saved(&dir);
    assert!(!frames.is_empty(), "the late joiner decoded nothing");
    // It started from a picture sent after it joined.
    assert!(frames[0].0 >= 30, "first picture {:?}", frames[0]);
    assert!(
        frames[0].0 > before,
        "first picture {:?}, from before the late joiner came (frame {before})",
        frames[0]
    );
    assert!(
        frames[0].0 < early_keyframe + 300,
        "first picture {:?}: the periodic keyframe after frame {early_keyframe}, not one sent \
         for the late joiner",
        frames[0]
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
    std::fs::remove_dir_all(&early_dir).expect("cleanup");
}

#[test]
fn the_picture_recovers_through_ten_percent_packet_loss() {
    let ns = NetNs::lossy(10);
    let server = serve_in(Some(&ns), &[]);
    let dir = frames_dir("lossy");
    let mut a = spawn_join_in(
        &ns,
        &server.url,
        "lossy",
        "a",
        &["--video", "testsrc:640x360@30"],
    );
    a.expect(LONG, "publishing", |v| event(v) == "video");
    let mut b = spawn_saver(Some(&ns), &server.url, "lossy", "b", &dir, "4");
    b.expect(LONG, "a's video", |v| event(v) == "stream_add");
    wait_pictures(&dir, 24, "six seconds' worth of pictures at 4 a second");
    leave(&mut [&mut b, &mut a]);
    let (sent, lost) = ns.udp_counts();
    assert!(
        lost * 20 > sent,
        "the network lost {lost} of {sent} datagrams"
    );

    let frames = saved(&dir);
    eprintln!("{} pictures through the loss: {frames:?}", frames.len());
    assert!(frames.len() >= 10, "{} pictures saved", frames.len());
    for pair in frames.windows(2) {
        assert!(pair[1].0 > pair[0].0, "counters go up: {frames:?}");
    }
    // Pictures keep coming until the end: the last one is from the last seconds.
    let last = frames.last().map_or(0, |f| f.0);
    assert!(last >= 30 * 4, "the last picture is {last}");
    for (counter, db) in &frames {
        assert!(*db >= 30.0, "picture {counter}: {db:.1} dB");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Mean PSNR of what a receiver decodes from a sender at `bitrate` kbit/s.
fn quality_at(bitrate: &str) -> f64 {
    let server = serve(&[]);
    let dir = frames_dir(&format!("rate-{bitrate}"));
    let args = ["--video", "testsrc:640x360@30", "--video-bitrate", bitrate];
    let mut a = spawn_join(&server.url, "rate", "a", &args);
    a.expect(LONG, "publishing", |v| event(v) == "video");
    let mut b = spawn_saver(None, &server.url, "rate", "b", &dir, "5");
    b.expect(LONG, "a's video", |v| event(v) == "stream_add");
    wait_pictures(&dir, 15, "three seconds' worth of pictures at 5 a second");
    leave(&mut [&mut b, &mut a]);
    // The first second: the rate control settles.
    let frames: Vec<f64> = saved(&dir).iter().skip(5).map(|f| f.1).collect();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(
        frames.len() >= 5,
        "{} pictures at {bitrate} kbit/s",
        frames.len()
    );
    frames.iter().sum::<f64>() / frames.len() as f64
}

#[test]
fn the_video_bitrate_is_what_the_sender_asks_for() {
    let high = quality_at("2500");
    let low = quality_at("100");
    eprintln!("mean PSNR {high:.1} dB at 2500 kbit/s, {low:.1} dB at 100 kbit/s");
    assert!(
        high > low + 3.0,
        "{high:.1} dB at 2500 kbit/s vs {low:.1} dB at 100"
    );
}
