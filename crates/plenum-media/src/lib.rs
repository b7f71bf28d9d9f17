//! Plenum's media: sources (synthetic, microphones, cameras, screens), Opus, the jitter buffer, mixing,
//! levels and sinks. Audio is 48 kHz mono in 20 ms frames of 960 samples throughout.
//!
//! The jitter buffer, the speaking detector and the mixer are sans-IO: they are given
//! packets, frames and the time, and decide; threads and devices live around them.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod analysis;
pub mod camera;
pub mod capture;
pub mod codec;
pub mod device;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod processing;
pub mod resample;
pub mod screen;
pub mod sink;
pub mod source;
pub mod video;

pub use camera::{Camera, CameraInfo, CameraRequest};
pub use capture::CaptureError;
pub use codec::{CodecError, OpusConfig, OpusDecoder, OpusEncoder};
pub use device::{DeviceError, DeviceInfo, Devices, Microphone, Speaker};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
pub use level::{SpeakingConfig, SpeakingDetector};
pub use plenum_vpx::Content;
pub use processing::{ProcessingConfig, VoiceProcessor};
pub use resample::{Framer, ResampleError, Resampler};
pub use screen::{Screen, ScreenInfo, ScreenRequest};
pub use sink::{AudioSink, WavRecorder};
pub use source::{AudioSource, Sine, WavError, WavSource};
pub use video::{Stamp, TestPattern, VideoFrame, VideoSink, VideoSource, psnr, read_stamp};

/// Audio sample rate everywhere inside Plenum.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;
