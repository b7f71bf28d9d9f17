//! The device check before a call (the first run shows it; the join screen offers it again):
//! the chosen microphone's level, the chosen camera's preview and a test sound on the chosen
//! speaker, each opened on its own with no call needed, and a plain sentence for each device
//! that is missing or will not open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use plenum_media::{AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE, VideoSource};

use crate::types::{CommandError, DeviceReport, ErrorKind};
use crate::video::VideoTiles;

/// The tile the camera's preview is drawn in.
pub const PREVIEW_TILE: &str = "preview";

/// How long the test sound plays.
const TONE: Duration = Duration::from_millis(1200);

/// The microphone and camera being checked: threads that read them until dropped.
#[derive(Default)]
pub struct DeviceCheck {
    running: Option<Running>,
    /// The microphone's level, dBFS (as `f32` bits), shared with its thread.
    level: Arc<AtomicU32>,
}

impl std::fmt::Debug for DeviceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCheck")
            .field("running", &self.running.is_some())
            .finish()
    }
}

struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            // A thread that panicked has nothing left to stop.
            let _ = thread.join();
        }
    }
}

impl DeviceCheck {
    /// Opens `microphone` (`None`: the default) and `camera` (an id, `default` or
    /// `testsrc`; `None`: no camera) and reads them until [`stop`](Self::stop) or the next
    /// start; the camera's pictures go to the `preview` tile. Blocking (devices open slowly).
    pub fn start(
        &mut self,
        microphone: Option<String>,
        camera: Option<String>,
        speaker_count: usize,
        tiles: &VideoTiles,
    ) -> DeviceReport {
        self.stop();
        tiles.forget(PREVIEW_TILE);
        self.level
            .store(f32::NEG_INFINITY.to_bits(), Ordering::Release);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut report = DeviceReport::default();

        let inputs = plenum_media::device::list().inputs.len();
        match plenum_media::Microphone::open(microphone.as_deref()) {
            Ok(mic) => {
                let (stop, level) = (Arc::clone(&stop), Arc::clone(&self.level));
                match std::thread::Builder::new()
                    .name("plenum-check-mic".into())
                    .spawn(move || meter(mic, &stop, &level))
                {
                    Ok(thread) => threads.push(thread),
                    Err(e) => {
                        report.microphone = Some(format!("The microphone could not be read ({e})."))
                    }
                }
            }
            Err(_) if inputs == 0 => {
                report.microphone = Some(
                    "No microphone was found: the others will not hear you. Plug one in and check again."
                        .into(),
                );
            }
            Err(e) => {
                report.microphone = Some(format!(
                    "The microphone could not be opened ({e}): the others will not hear you."
                ));
            }
        }

        match camera.as_deref() {
            None => {}
            Some(name) => match crate::session::open_camera(name) {
                Ok(source) => {
                    let (stop, tiles) = (Arc::clone(&stop), tiles.clone());
                    match std::thread::Builder::new()
                        .name("plenum-check-camera".into())
                        .spawn(move || preview(source, &stop, &tiles))
                    {
                        Ok(thread) => threads.push(thread),
                        Err(e) => {
                            report.camera = Some(format!("The camera could not be read ({e})."))
                        }
                    }
                }
                Err(_)
                    if plenum_media::camera::cameras().is_empty()
                        && name != crate::session::TEST_PATTERN =>
                {
                    report.camera = Some(
                        "No camera was found: the others will see your initials instead of you."
                            .into(),
                    );
                }
                Err(e) => {
                    report.camera = Some(format!(
                        "The camera could not be opened ({}): it may be in use by another app.",
                        e.message
                    ));
                }
            },
        }

        if speaker_count == 0 {
            report.speaker =
                Some("No speaker or headphones were found: you will not hear the others.".into());
        }
        self.running = Some(Running { stop, threads });
        report
    }

    /// The microphone's level now, dBFS (`-inf` when none is being read).
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Acquire))
    }

    /// Closes the microphone and the camera.
    pub fn stop(&mut self) {
        self.running = None;
    }
}

/// Reads the microphone a frame at a time and keeps its level: the loudest of the last
/// frames, falling back slowly, as a level meter shows it.
fn meter(mut mic: plenum_media::Microphone, stop: &AtomicBool, level: &AtomicU32) {
    const FALL_DB_PER_FRAME: f32 = 1.5;
    let frame_time = Duration::from_millis(1000 * FRAME_SAMPLES as u64 / u64::from(SAMPLE_RATE));
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut shown = f32::NEG_INFINITY;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(frame_time);
        mic.read(&mut frame);
        if let Some(error) = mic.take_error() {
            tracing::warn!(%error, "device check: the microphone failed");
            level.store(f32::NEG_INFINITY.to_bits(), Ordering::Release);
            return;
        }
        let now = plenum_media::analysis::rms_dbfs(&frame);
        shown = if now >= shown {
            now
        } else {
            (shown - FALL_DB_PER_FRAME).max(now)
        };
        level.store(shown.to_bits(), Ordering::Release);
    }
}

/// Draws the camera's pictures into the preview tile.
fn preview(mut source: Box<dyn VideoSource>, stop: &AtomicBool, tiles: &VideoTiles) {
    let started = std::time::Instant::now();
    let period = Duration::from_millis(1000 / u64::from(source.fps().max(1)));
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(period);
        let now_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        if let Some(picture) = source.next_frame(now_ms) {
            tiles.show(PREVIEW_TILE.to_owned(), picture);
        }
        if let Some(error) = source.take_error() {
            tracing::warn!(%error, "device check: the camera failed");
            return;
        }
    }
}

/// Plays a short chime on `speaker` (`None`: the default). Blocking, for the sound's length.
pub fn play_test_sound(speaker: Option<&str>) -> Result<(), CommandError> {
    let mut out = plenum_media::Speaker::open(speaker).map_err(|e| {
        CommandError::new(
            ErrorKind::Device,
            format!("The speaker could not be opened ({e}): you will not hear the others."),
        )
    })?;
    let frame_time = Duration::from_millis(1000 * FRAME_SAMPLES as u64 / u64::from(SAMPLE_RATE));
    let frames = TONE.as_millis() as usize / frame_time.as_millis().max(1) as usize;
    let mut frame = vec![0.0f32; FRAME_SAMPLES];
    for i in 0..frames {
        for (j, sample) in frame.iter_mut().enumerate() {
            let t = (i * FRAME_SAMPLES + j) as f32 / SAMPLE_RATE as f32;
            // Two notes, a fifth apart, at -12 dBFS.
            let hz = if t < TONE.as_secs_f32() / 2.0 {
                660.0
            } else {
                990.0
            };
            *sample = 0.25 * (2.0 * std::f32::consts::PI * hz * t).sin();
        }
        out.write(&frame);
        std::thread::sleep(frame_time);
    }
    Ok(())
}
