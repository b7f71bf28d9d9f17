//! `--video` sources and `--save-frames`: what the CLI publishes and what it does with the
//! pictures it receives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use plenum_media::{TestPattern, VideoFrame, VideoSink, VideoSource};

/// What `--video` asks for: `none`, `testsrc`, `testsrc:WIDTHxHEIGHT` or
/// `testsrc:WIDTHxHEIGHT@FPS`.
pub(crate) fn source(spec: &str) -> Result<Option<Box<dyn VideoSource>>, (&'static str, String)> {
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "none" if arg.is_empty() => Ok(None),
        "testsrc" => {
            let (size, fps) = arg.split_once('@').unwrap_or((arg, "30"));
            let (width, height) = if size.is_empty() {
                (640, 360)
            } else {
                parse_size(size).ok_or_else(|| {
                    (
                        "bad_video",
                        format!("testsrc size is WIDTHxHEIGHT, not {size:?}"),
                    )
                })?
            };
            let fps: u32 = fps
                .parse()
                .ok()
                .filter(|f| (1..=120).contains(f))
                .ok_or_else(|| ("bad_video", format!("testsrc fps is 1..=120, not {fps:?}")))?;
            Ok(Some(Box::new(
                TestPattern::new(width, height).with_fps(fps),
            )))
        }
        _ => Err((
            "bad_video",
            format!("unknown video source {spec:?}: use none or testsrc[:WxH[@FPS]]"),
        )),
    }
}

fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once('x')?;
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    ((80..=3840).contains(&w) && (32..=2160).contains(&h)).then_some((w, h))
}

/// Saves received pictures as PNG files `PEER-NNNNNN.png` in a directory, at most `per_second`
/// a second per peer. The PNG encoding happens on a thread of its own; when it falls behind,
/// pictures are skipped, never queued.
pub(crate) struct FrameSaver {
    dir: PathBuf,
    every: Duration,
    last: HashMap<String, (Instant, u64)>,
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
    fn frame(&mut self, peer: &str, frame: &VideoFrame) {
        let now = Instant::now();
        let entry = self
            .last
            .entry(peer.to_owned())
            .or_insert((now - self.every, 0));
        if now.duration_since(entry.0) < self.every {
            return;
        }
        entry.0 = now;
        entry.1 += 1;
        let path = self.dir.join(format!("{peer}-{:06}.png", entry.1));
        match self.queue.try_send((path, frame.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("frame saver busy; picture skipped"),
            Err(TrySendError::Disconnected(_)) => tracing::warn!("frame saver gone"),
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
        ] {
            let (code, message) = source(bad).err().expect(bad);
            assert_eq!(code, "bad_video");
            assert!(!message.is_empty());
        }
    }
}
