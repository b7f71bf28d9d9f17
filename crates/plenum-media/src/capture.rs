//! Capture threads shared by cameras and screens: a device is opened and read on a thread of
//! its own, which keeps only the newest picture. The video task takes that picture at its own
//! frame rate; when the encoder falls behind, older pictures are replaced, never queued.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::video::{VideoFrame, VideoSource};

/// Why a camera or a screen could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// This machine has no camera at all.
    #[error("no camera found on this machine")]
    NoCamera,
    /// No device, monitor or window of that name or index.
    #[error("no {kind} {name:?}; available: {available}")]
    NotFound {
        /// `camera`, `monitor` or `window`.
        kind: &'static str,
        /// What was asked for.
        name: String,
        /// What there is, comma-separated (`none` when empty).
        available: String,
    },
    /// The device exists but cannot be opened or read (busy, gone, unsupported format).
    #[error("{name} is unavailable: {reason}")]
    Unavailable {
        /// The device.
        name: String,
        /// Why.
        reason: String,
    },
    /// No display to capture (no X server, or a session that refuses capture).
    #[error("no display to capture: {0}")]
    NoDisplay(String),
    /// Capture support was left out of this build.
    #[error("{0} capture is not built into this program")]
    NotBuilt(&'static str),
}

/// What a capture thread and its source share.
#[derive(Default)]
struct Shared {
    newest: Mutex<Option<VideoFrame>>,
    error: Mutex<Option<String>>,
    stop: AtomicBool,
}

/// A [`VideoSource`] fed by a capture thread. Dropping it stops the thread (after the
/// capture it is blocked in, if any).
pub(crate) struct Captured {
    shared: Arc<Shared>,
    fps: u32,
    content: plenum_vpx::Content,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured")
            .field("fps", &self.fps)
            .field("content", &self.content)
            .finish_non_exhaustive()
    }
}

/// Starts a capture thread. `open` runs on that thread (device handles need not be `Send`)
/// and returns the function that grabs one picture, blocking until there is one; its error
/// is returned here. Grabbing is paced to at most `fps` pictures a second; a grab error ends
/// the thread and is reported once through [`VideoSource::take_error`].
pub(crate) fn spawn<G>(
    name: &str,
    fps: u32,
    content: plenum_vpx::Content,
    open: impl FnOnce() -> Result<G, CaptureError> + Send + 'static,
) -> Result<Captured, CaptureError>
where
    G: FnMut() -> Result<VideoFrame, String> + 'static,
{
    let fps = fps.clamp(1, 120);
    let shared = Arc::new(Shared::default());
    let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("plenum-capture-{name}"))
        .spawn(move || {
            let mut grab = match open() {
                Ok(grab) => {
                    let _ = opened_tx.send(Ok(()));
                    grab
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
            };
            let every = Duration::from_secs(1) / fps;
            while !thread_shared.stop.load(Ordering::Relaxed) {
                let started = crate::device::now();
                match grab() {
                    Ok(picture) => {
                        if let Ok(mut newest) = thread_shared.newest.lock() {
                            *newest = Some(picture);
                        }
                    }
                    Err(reason) => {
                        if let Ok(mut error) = thread_shared.error.lock() {
                            *error = Some(reason);
                        }
                        return;
                    }
                }
                if let Some(rest) = every.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })
        .map_err(|e| CaptureError::Unavailable {
            name: name.to_owned(),
            reason: format!("no capture thread: {e}"),
        })?;
    match opened_rx.recv() {
        Ok(Ok(())) => Ok(Captured {
            shared,
            fps,
            content,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(CaptureError::Unavailable {
            name: name.to_owned(),
            reason: "the capture thread ended while opening".to_owned(),
        }),
    }
}

impl VideoSource for Captured {
    fn next_frame(&mut self, _now_ms: u32) -> Option<VideoFrame> {
        self.shared.newest.lock().ok()?.take()
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn content(&self) -> plenum_vpx::Content {
        self.content
    }

    fn take_error(&mut self) -> Option<String> {
        self.shared.error.lock().ok()?.take()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// The list of names for an error message: `a, b` or `none`.
pub(crate) fn available(names: impl IntoIterator<Item = String>) -> String {
    let list: Vec<String> = names.into_iter().collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_picture_wins_and_a_grab_error_is_reported_once() {
        let mut count = 0u32;
        let mut source = spawn("test", 120, plenum_vpx::Content::Camera, move || {
            Ok(move || {
                count += 1;
                if count > 5 {
                    return Err("unplugged".to_owned());
                }
                Ok(VideoFrame::black(16 * count, 16))
            })
        })
        .expect("opens");
        let deadline = crate::device::now() + Duration::from_secs(5);
        let mut error = None;
        while error.is_none() && crate::device::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            error = source.take_error();
        }
        assert_eq!(error.as_deref(), Some("unplugged"));
        assert_eq!(source.take_error(), None, "reported once");
        // Only the last picture before the error is left: older ones were replaced.
        let picture = source.next_frame(0).expect("the newest picture");
        assert_eq!(picture.width, 16 * 5);
        assert!(source.next_frame(0).is_none());
    }

    #[test]
    fn an_open_error_comes_back_to_the_caller() {
        let result = spawn("test", 30, plenum_vpx::Content::Camera, || {
            Err::<fn() -> Result<VideoFrame, String>, _>(CaptureError::NoCamera)
        });
        assert_eq!(result.err(), Some(CaptureError::NoCamera));
    }
}
