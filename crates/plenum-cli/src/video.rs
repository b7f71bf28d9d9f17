//! `--video` sources and `--save-frames`: what the CLI publishes and what it does with the
//! pictures it receives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plenum_media::{Content, TestPattern, VideoFrame, VideoSink, VideoSource};

/// What `--video` asks for: `none`, `testsrc[:WIDTHxHEIGHT[@FPS]]`, or
/// `camera[:NAME][@WIDTHxHEIGHT[@FPS]]` (a camera by index or name; default 1280x720@30).
pub(crate) fn source(spec: &str) -> Result<Option<Box<dyn VideoSource>>, (&'static str, String)> {
    if spec == "camera" || spec.starts_with("camera:") || spec.starts_with("camera@") {
        return camera(&spec["camera".len()..]).map(Some);
    }
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "none" if arg.is_empty() => Ok(None),
        "testsrc" => {
            let (width, height, fps) = mode(arg, (640, 360, 30))?;
            Ok(Some(Box::new(
                TestPattern::new(width, height).with_fps(fps),
            )))
        }
        _ => Err((
            "bad_video",
            format!(
                "unknown video source {spec:?}: use none, testsrc[:WxH[@FPS]] or camera[:NAME][@WxH[@FPS]]"
            ),
        )),
    }
}

/// `[:NAME][@WxH[@FPS]]` after `camera`: opens that camera.
fn camera(rest: &str) -> Result<Box<dyn VideoSource>, (&'static str, String)> {
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let (name, mode_spec) = match rest.find('@') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    };
    let defaults = plenum_media::CameraRequest::default();
    let (width, height, fps) = mode(mode_spec, (defaults.width, defaults.height, defaults.fps))?;
    let request = plenum_media::CameraRequest {
        name: (!name.is_empty()).then(|| name.to_owned()),
        width,
        height,
        fps,
    };
    plenum_media::Camera::open(&request)
        .map(|c| Box::new(c) as Box<dyn VideoSource>)
        .map_err(|e| ("video_device", e.to_string()))
}

/// `WxH[@FPS]` (either part may be empty: the default).
pub(crate) fn mode(
    spec: &str,
    default: (u32, u32, u32),
) -> Result<(u32, u32, u32), (&'static str, String)> {
    let (size, fps) = spec.split_once('@').unwrap_or((spec, ""));
    let (width, height) = if size.is_empty() {
        (default.0, default.1)
    } else {
        parse_size(size).ok_or_else(|| {
            (
                "bad_video",
                format!("video size is WIDTHxHEIGHT, not {size:?}"),
            )
        })?
    };
    let fps = if fps.is_empty() {
        default.2
    } else {
        fps.parse()
            .ok()
            .filter(|f| (1..=120).contains(f))
            .ok_or_else(|| ("bad_video", format!("video fps is 1..=120, not {fps:?}")))?
    };
    Ok((width, height, fps))
}

/// What `--screen` and the `screen` command ask for: `none`, `default` (the primary monitor),
/// a monitor by name or index, or `window:TITLE`.
pub(crate) fn screen(
    target: &str,
    fps: u32,
) -> Result<Option<Box<dyn VideoSource>>, (&'static str, String)> {
    if target == "none" {
        return Ok(None);
    }
    let request = plenum_media::ScreenRequest {
        target: (!target.is_empty() && target != "default").then(|| target.to_owned()),
        fps,
    };
    plenum_media::Screen::open(&request)
        .map(|s| Some(Box::new(s) as Box<dyn VideoSource>))
        .map_err(|e| ("screen_capture", e.to_string()))
}

fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once('x')?;
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    ((80..=3840).contains(&w) && (32..=2160).contains(&h)).then_some((w, h))
}

/// Saves received pictures as PNG files `PEER-NNNNNN.png` (a camera) and
/// `PEER-screen-NNNNNN.png` (a shared screen) in a directory, at most `per_second` a second
/// per peer and stream. The PNG encoding happens on a thread of its own; when it falls behind,
/// pictures are skipped, never queued.
pub(crate) struct FrameSaver {
    dir: PathBuf,
    every: Duration,
    last: HashMap<(String, Content), (Instant, u64)>,
    queue: SyncSender<(PathBuf, VideoFrame)>,
}

impl FrameSaver {
    pub(crate) fn new(dir: PathBuf, per_second: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let (queue, pictures) = sync_channel::<(PathBuf, VideoFrame)>(4);
        std::thread::Builder::new()
            .name("plenum-frame-saver".into())
            .spawn(move || {
                for (path, frame) in pictures {
                    if let Err(e) = frame.save_png(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "frame not saved");
                    }
                }
            })?;
        Ok(Self {
            dir,
            every: Duration::from_secs(1) / per_second.max(1),
            last: HashMap::new(),
            queue,
        })
    }
}

impl VideoSink for FrameSaver {
    fn frame(&mut self, peer: &str, lane: Content, frame: VideoFrame) {
        let now = Instant::now();
        let entry = self
            .last
            .entry((peer.to_owned(), lane))
            .or_insert((now - self.every, 0));
        if now.duration_since(entry.0) < self.every {
            return;
        }
        entry.0 = now;
        entry.1 += 1;
        let name = match lane {
            Content::Camera => format!("{peer}-{:06}.png", entry.1),
            Content::Screen => format!("{peer}-screen-{:06}.png", entry.1),
        };
        match self.queue.try_send((self.dir.join(name), frame)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("frame saver busy; picture skipped"),
            Err(TrySendError::Disconnected(_)) => tracing::warn!("frame saver gone"),
        }
    }
}

/// Glass-to-glass latencies in milliseconds, gathered by [`StampLatency`].
#[derive(Clone, Default)]
pub(crate) struct Latencies(Arc<Mutex<Vec<f64>>>);

impl Latencies {
    /// What was gathered since the last call.
    pub(crate) fn take(&self) -> Vec<f64> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Reads the stamp of each received test-pattern picture: the time from its capture (the
/// sender's wall clock, the same machine's in a bench) to now, when it is decoded. The
/// picture goes on to `inner`.
pub(crate) struct StampLatency {
    latencies: Latencies,
    inner: Option<Box<dyn VideoSink>>,
}

impl StampLatency {
    pub(crate) fn new(latencies: Latencies, inner: Option<Box<dyn VideoSink>>) -> Self {
        Self { latencies, inner }
    }
}

/// The time from a stamped picture's capture (the sender's wall clock, this machine's in a
/// bench) to now, in milliseconds.
pub(crate) fn since_capture_ms(stamp: plenum_media::Stamp) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32);
    f64::from(now.wrapping_sub(stamp.capture_ms))
}

impl VideoSink for StampLatency {
    fn frame(&mut self, peer: &str, lane: Content, frame: VideoFrame) {
        if let Some(stamp) = plenum_media::read_stamp(&frame)
            && let Ok(mut l) = self.latencies.0.lock()
        {
            l.push(since_capture_ms(stamp));
        }
        if let Some(inner) = &mut self.inner {
            inner.frame(peer, lane, frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_specs_parse_or_say_why_not() {
        assert!(source("none").expect("none").is_none());
        let s = source("testsrc:320x180@15")
            .expect("testsrc")
            .expect("a source");
        assert_eq!(s.fps(), 15);
        assert!(source("testsrc").expect("default").is_some());
        for bad in [
            "testsrc:0x0",
            "testsrc:640x360@0",
            "testsrc:wide",
            "webcam",
            "none:1",
            "camera@1280x",
            "camera:front@640x480@0",
        ] {
            let (code, message) = source(bad).err().expect(bad);
            assert_eq!(code, "bad_video", "{bad}: {message}");
            assert!(!message.is_empty());
        }
    }

    #[test]
    fn modes_take_their_defaults_part_by_part() {
        assert_eq!(mode("", (1, 2, 3)), Ok((1, 2, 3)));
        assert_eq!(mode("640x480", (1, 2, 3)), Ok((640, 480, 3)));
        assert_eq!(mode("@15", (1, 2, 3)), Ok((1, 2, 15)));
        assert_eq!(mode("320x240@60", (1, 2, 3)), Ok((320, 240, 60)));
    }
}
