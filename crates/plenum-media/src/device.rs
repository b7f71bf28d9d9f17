//! Real devices through cpal: listing microphones and speakers, and capturing from a
//! microphone at any native rate and channel count, converted to 48 kHz mono.
//!
//! The capture callback runs on the audio driver's thread: it only copies samples into a
//! preallocated lock-free ring and counts what does not fit; it never blocks or allocates.
//! The cpal stream lives on a thread of its own (cpal streams are not `Send`), which ends
//! when the [`Microphone`] is dropped.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

use crate::resample::Resampler;
use crate::source::AudioSource;

/// A device as listed for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// cpal's identifier (stable between runs on the same machine).
    pub id: String,
    /// The human-readable name.
    pub name: String,
    /// Whether it is the system default.
    pub default: bool,
}

/// Microphones and speakers on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// Capture devices.
    pub inputs: Vec<DeviceInfo>,
    /// Playback devices.
    pub outputs: Vec<DeviceInfo>,
}

/// Why a device could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No device of that name or id (or no default device).
    #[error("no audio device {0:?}")]
    NotFound(String),
    /// The device exists but cannot be opened (busy, unsupported format, gone).
    #[error("audio device {name:?} is unavailable: {reason}")]
    Unavailable {
        /// The device.
        name: String,
        /// Why.
        reason: String,
    },
}

fn info(device: &cpal::Device, default: Option<&String>) -> Option<DeviceInfo> {
    let id = device.id().ok()?.to_string();
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    Some(DeviceInfo {
        default: default == Some(&id),
        id,
        name,
    })
}

/// Lists the default host's devices (an empty list when the host has none).
pub fn list() -> Devices {
    let host = cpal::default_host();
    let default_in = host
        .default_input_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.to_string());
    let default_out = host
        .default_output_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.to_string());
    let inputs = host
        .input_devices()
        .map(|ds| ds.filter_map(|d| info(&d, default_in.as_ref())).collect())
        .unwrap_or_default();
    let outputs = host
        .output_devices()
        .map(|ds| ds.filter_map(|d| info(&d, default_out.as_ref())).collect())
        .unwrap_or_default();
    Devices { inputs, outputs }
}

/// Finds an input (or output) device by id or name (`None`: the default).
fn find(wanted: Option<&str>, input: bool) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let Some(wanted) = wanted else {
        let default = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return default.ok_or_else(|| DeviceError::NotFound("default".into()));
    };
    let unavailable = |e: cpal::Error| DeviceError::Unavailable {
        name: wanted.into(),
        reason: e.to_string(),
    };
    let devices: Vec<cpal::Device> = if input {
        host.input_devices().map_err(unavailable)?.collect()
    } else {
        host.output_devices().map_err(unavailable)?.collect()
    };
    devices
        .into_iter()
        .find(|d| info(d, None).is_some_and(|i| i.id == wanted || i.name == wanted))
        .ok_or_else(|| DeviceError::NotFound(wanted.into()))
}

fn unavailable(name: &str, reason: impl ToString) -> DeviceError {
    DeviceError::Unavailable {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// A cpal stream kept alive on a thread of its own (cpal streams are not `Send`); dropping
/// the handle stops it.
struct StreamThread {
    stop: SyncSender<()>,
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        // The thread may be gone already (device failure); either way it stops.
        let _ = self.stop.try_send(());
    }
}

/// An open stream, with the device's rate and channel count and its end of the ring.
type Opened<R> = Result<(cpal::Stream, (u32, usize, R)), DeviceError>;

/// Runs `open` on a new thread, which keeps the stream it builds playing until the returned
/// handle is dropped, and hands back what `open` returns beside the stream.
fn spawn_stream<T: Send + 'static>(
    thread: &str,
    label: &str,
    open: impl FnOnce() -> Result<(cpal::Stream, T), DeviceError> + Send + 'static,
) -> Result<(StreamThread, T), DeviceError> {
    let (ready_tx, ready_rx) = sync_channel::<Result<T, DeviceError>>(1);
    let (stop, stop_rx) = sync_channel::<()>(1);
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || match open() {
            Ok((stream, value)) => {
                if ready_tx.send(Ok(value)).is_ok() {
                    let _ = stop_rx.recv();
                }
                drop(stream);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| unavailable(label, e))?;
    let value = ready_rx
        .recv()
        .map_err(|_| unavailable(label, "device thread ended"))??;
    Ok((StreamThread { stop }, value))
}

/// Samples the ring holds: 500 ms at 192 kHz stereo, whatever the device.
const RING: usize = 192_000;

/// How long a stream that reported an error may go without calling back before it counts as
/// gone. ALSA's PulseAudio plugin reports a passing I/O error while a stream settles and the
/// same error when its device is removed; only the silence after tells them apart.
const SILENT_AFTER_ERROR: Duration = Duration::from_millis(500);

/// The clock, read only here (and by the capture threads): devices are this crate's edge to the real world; everything
/// else in it is given the time.
#[expect(
    clippy::disallowed_methods,
    reason = "device streams live in real time"
)]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// What the device thread and the call side share about one stream.
struct Shared {
    dropped: AtomicU64,
    /// Data callbacks so far: the stream is alive while this moves.
    callbacks: AtomicU64,
    /// Stream errors the stream went on after (xruns, passing I/O errors).
    glitches: AtomicU64,
    failed: AtomicBool,
    /// The first error that may end the stream, the callback count then, and when.
    suspect: Mutex<Option<(String, u64, Instant)>>,
    /// Why the stream failed.
    error: Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            dropped: AtomicU64::new(0),
            callbacks: AtomicU64::new(0),
            glitches: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            suspect: Mutex::new(None),
            error: Mutex::new(None),
        })
    }

    /// cpal's error callback; see [`Self::handle_error`].
    fn on_error(self: &Arc<Self>) -> impl FnMut(cpal::Error) + Send + 'static {
        let shared = self.clone();
        move |e: cpal::Error| shared.handle_error(&e, now())
    }

    /// A glitch the stream recovers from by itself (an underrun or overrun, a refused
    /// real-time priority, a rerouted default device) is counted; a device that is gone fails
    /// the stream at once; any other error makes the stream suspect until [`Self::failed`]
    /// sees whether it goes on.
    fn handle_error(&self, e: &cpal::Error, now: Instant) {
        use cpal::ErrorKind;
        match e.kind() {
            ErrorKind::Xrun | ErrorKind::RealtimeDenied | ErrorKind::DeviceChanged => {
                self.glitches.fetch_add(1, Ordering::Relaxed);
            }
            ErrorKind::DeviceNotAvailable | ErrorKind::HostUnavailable => self.fail(e.to_string()),
            _ => {
                if let Ok(mut suspect) = self.suspect.lock() {
                    let callbacks = self.callbacks.load(Ordering::Relaxed);
                    suspect.get_or_insert_with(|| (e.to_string(), callbacks, now));
                }
            }
        }
    }

    fn fail(&self, reason: String) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(reason);
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Called by the data callback.
    fn alive(&self) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the stream has failed, deciding a suspect one: it recovered if it called back
    /// twice since its error, and is gone if it stayed silent for [`SILENT_AFTER_ERROR`].
    fn failed(&self, now: Instant) -> bool {
        if self.failed.load(Ordering::Relaxed) {
            return true;
        }
        let Ok(mut suspect) = self.suspect.lock() else {
            return false;
        };
        let Some((reason, callbacks, at)) = suspect.as_ref() else {
            return false;
        };
        if self.callbacks.load(Ordering::Relaxed) >= callbacks + 2 {
            tracing::debug!(%reason, "audio stream went on after an error");
            self.glitches.fetch_add(1, Ordering::Relaxed);
            *suspect = None;
            false
        } else if now.duration_since(*at) >= SILENT_AFTER_ERROR {
            let reason = reason.clone();
            *suspect = None;
            self.fail(reason);
            true
        } else {
            false
        }
    }

    fn reason(&self) -> String {
        self.error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default()
    }
}

/// Audio captured from a microphone, as an [`AudioSource`].
pub struct Microphone {
    name: String,
    consumer: ringbuf::HeapCons<f32>,
    resampler: Resampler,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    shared: Arc<Shared>,
    _stream: StreamThread,
    reported: bool,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Microphone {
    /// Opens a microphone by id or name (`None`: the default) and starts capturing.
    pub fn open(wanted: Option<&str>) -> Result<Self, DeviceError> {
        let label = wanted.unwrap_or("default").to_owned();
        let shared = Shared::new();
        let (thread_shared, thread_label, wanted) =
            (shared.clone(), label.clone(), wanted.map(str::to_owned));
        let (stream, (rate, channels, consumer)) = spawn_stream("plenum-mic", &label, move || {
            open_capture(wanted.as_deref(), &thread_label, thread_shared)
        })?;
        let resampler = Resampler::new(rate, channels).map_err(|e| unavailable(&label, e))?;
        tracing::info!(device = %label, rate, channels, "microphone open");
        Ok(Self {
            name: label,
            consumer,
            resampler,
            pending: Vec::new(),
            scratch: vec![0.0; RING],
            shared,
            _stream: stream,
            reported: false,
        })
    }

    /// Samples the callback could not queue (the reader fell behind).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// Opens a capture stream whose callback only copies into a preallocated ring.
fn open_capture(
    wanted: Option<&str>,
    label: &str,
    shared: Arc<Shared>,
) -> Opened<ringbuf::HeapCons<f32>> {
    let device = find(wanted, true)?;
    let config = device
        .default_input_config()
        .map_err(|e| unavailable(label, e))?;
    let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
    let (mut producer, consumer) = HeapRb::<f32>::new(RING).split();
    let on_error = shared.on_error();
    let stream = device
        .build_input_stream::<f32, _, _>(
            config.config(),
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                shared.alive();
                let pushed = producer.push_slice(data);
                if pushed < data.len() {
                    shared
                        .dropped
                        .fetch_add((data.len() - pushed) as u64, Ordering::Relaxed);
                }
            },
            on_error,
            None,
        )
        .map_err(|e| unavailable(label, e))?;
    stream.play().map_err(|e| unavailable(label, e))?;
    Ok((stream, (rate, channels, consumer)))
}

impl AudioSource for Microphone {
    fn read(&mut self, out: &mut [f32]) {
        let n = self.consumer.pop_slice(&mut self.scratch);
        if n > 0 {
            match self.resampler.push(&self.scratch[..n]) {
                Ok(samples) => self.pending.extend(samples),
                Err(e) => tracing::warn!(error = %e, "microphone samples not converted"),
            }
        }
        let take = out.len().min(self.pending.len());
        out[..take].copy_from_slice(&self.pending[..take]);
        out[take..].fill(0.0);
        self.pending.drain(..take);
        // Never let latency build up: keep at most two frames in reserve.
        let keep = 2 * out.len();
        if self.pending.len() > keep {
            let excess = self.pending.len() - keep;
            self.pending.drain(..excess);
        }
    }

    fn take_error(&mut self) -> Option<String> {
        if self.reported || !self.shared.failed(now()) {
            return None;
        }
        self.reported = true;
        let reason = self.shared.reason();
        Some(format!("microphone {:?} failed: {reason}", self.name))
    }

    fn is_device(&self) -> bool {
        true
    }
}

/// Plays the mix on a speaker, as an [`AudioSink`](crate::AudioSink). Frames are converted
/// to the device's rate and channel count and queued in a lock-free ring; the device's
/// callback plays what is there and silence when it runs dry.
pub struct Speaker {
    name: String,
    producer: ringbuf::HeapProd<f32>,
    resampler: Resampler,
    channels: usize,
    interleaved: Vec<f32>,
    shared: Arc<Shared>,
    _stream: StreamThread,
    max_queued: usize,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Speaker {
    /// Opens a speaker by id or name (`None`: the default) and starts playing.
    pub fn open(wanted: Option<&str>) -> Result<Self, DeviceError> {
        let label = wanted.unwrap_or("default").to_owned();
        let shared = Shared::new();
        let (thread_shared, thread_label, wanted) =
            (shared.clone(), label.clone(), wanted.map(str::to_owned));
        let (stream, (rate, channels, producer)) =
            spawn_stream("plenum-speaker", &label, move || {
                open_playback(wanted.as_deref(), &thread_label, &thread_shared)
            })?;
        let resampler =
            Resampler::between(crate::SAMPLE_RATE, rate, 1).map_err(|e| unavailable(&label, e))?;
        tracing::info!(device = %label, rate, channels, "speaker open");
        // Hold at most 100 ms: more is latency nobody wants.
        let max_queued = rate as usize / 10 * channels;
        Ok(Self {
            name: label,
            producer,
            resampler,
            channels,
            interleaved: Vec::new(),
            shared,
            _stream: stream,
            max_queued,
        })
    }
}

/// Opens a playback stream whose callback plays what the ring holds, silence past it.
fn open_playback(
    wanted: Option<&str>,
    label: &str,
    shared: &Arc<Shared>,
) -> Opened<ringbuf::HeapProd<f32>> {
    let device = find(wanted, false)?;
    let config = device
        .default_output_config()
        .map_err(|e| unavailable(label, e))?;
    let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
    let (producer, mut consumer) = HeapRb::<f32>::new(RING).split();
    let callback_shared = shared.clone();
    let stream = device
        .build_output_stream::<f32, _, _>(
            config.config(),
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                callback_shared.alive();
                let n = consumer.pop_slice(data);
                data[n..].fill(0.0);
            },
            shared.on_error(),
            None,
        )
        .map_err(|e| unavailable(label, e))?;
    stream.play().map_err(|e| unavailable(label, e))?;
    Ok((stream, (rate, channels, producer)))
}

impl crate::AudioSink for Speaker {
    fn write(&mut self, frame: &[f32]) {
        if self.shared.failed(now()) {
            return;
        }
        let mono = match self.resampler.push(frame) {
            Ok(m) => m,
            Err(e) => return tracing::warn!(error = %e, "speaker samples not converted"),
        };
        self.interleaved.clear();
        for s in mono {
            self.interleaved
                .extend(std::iter::repeat_n(s, self.channels));
        }
        // Never queue more than the bound: drop the excess (counted) rather than lag.
        let room = self.max_queued.saturating_sub(self.producer.occupied_len());
        let n = self
            .producer
            .push_slice(&self.interleaved[..self.interleaved.len().min(room)]);
        let lost = self.interleaved.len() - n;
        if lost > 0 {
            self.shared
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glitches_are_counted_and_a_lost_device_fails_the_stream() {
        let now = now();
        let shared = Shared::new();
        for kind in [
            cpal::ErrorKind::Xrun,
            cpal::ErrorKind::RealtimeDenied,
            cpal::ErrorKind::DeviceChanged,
        ] {
            shared.handle_error(&cpal::Error::new(kind), now);
        }
        assert!(!shared.failed(now + Duration::from_secs(1)));
        assert_eq!(shared.glitches.load(Ordering::Relaxed), 3);

        let gone = cpal::Error::with_message(cpal::ErrorKind::DeviceNotAvailable, "unplugged");
        shared.handle_error(&gone, now);
        shared.handle_error(&cpal::Error::new(cpal::ErrorKind::BackendError), now);
        assert!(shared.failed(now));
        assert_eq!(shared.reason(), "unplugged");
    }

    #[test]
    fn an_io_error_fails_the_stream_only_if_it_then_stays_silent() {
        let now = now();
        let io = || cpal::Error::with_message(cpal::ErrorKind::BackendError, "I/O error (5)");

        // The stream calls back after the error: it settled, nothing failed.
        let settling = Shared::new();
        settling.handle_error(&io(), now);
        assert!(!settling.failed(now));
        settling.alive();
        settling.alive();
        assert!(!settling.failed(now + Duration::from_secs(2)));
        assert_eq!(settling.glitches.load(Ordering::Relaxed), 1);

        // The stream never calls back: after half a second it is gone, with its reason.
        let unplugged = Shared::new();
        unplugged.alive();
        unplugged.handle_error(&io(), now);
        assert!(!unplugged.failed(now + Duration::from_millis(100)));
        assert!(unplugged.failed(now + SILENT_AFTER_ERROR));
        assert_eq!(unplugged.reason(), "I/O error (5)");
    }
}
