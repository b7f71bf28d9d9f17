//! Synthetic sources and the WAV file source: 48 kHz mono samples, pulled a frame at a time.

use std::path::Path;

use crate::SAMPLE_RATE;
use crate::resample::Resampler;

/// Something that produces audio, pulled in frames.
pub trait AudioSource: Send {
    /// Fills `out` with the next samples (48 kHz mono, -1..=1).
    fn read(&mut self, out: &mut [f32]);

    /// A failure of the source since the last call (a device unplugged, say), reported once;
    /// the caller stops using the source.
    fn take_error(&mut self) -> Option<String> {
        None
    }

    /// Whether this is a capture device (a microphone hears the room, and its speaker's
    /// echo; synthetic sources do not).
    fn is_device(&self) -> bool {
        false
    }
}

/// A sine tone.
#[derive(Debug, Clone)]
pub struct Sine {
    step: f64,
    phase: f64,
    amplitude: f32,
}

impl Sine {
    /// A tone of `frequency` Hz at `amplitude` (0..=1).
    pub fn new(frequency: f64, amplitude: f32) -> Self {
        Self {
            step: frequency / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude,
        }
    }
}

impl AudioSource for Sine {
    fn read(&mut self, out: &mut [f32]) {
        for s in out {
            *s = self.amplitude * (self.phase * std::f64::consts::TAU).sin() as f32;
            self.phase = (self.phase + self.step).fract();
        }
    }
}

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Not readable or not a WAV file.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: hound::Error,
    },
    /// Empty, or a format that cannot be converted.
    #[error("{path}: {reason}")]
    Unusable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A WAV file, converted to 48 kHz mono at open, played in a loop.
#[derive(Debug, Clone)]
pub struct WavSource {
    samples: Vec<f32>,
    at: usize,
}

impl WavSource {
    /// Opens and converts a WAV file (8/16/24/32-bit integer or 32-bit float, any rate and
    /// channel count).
    pub fn open(path: &Path) -> Result<Self, WavError> {
        let name = path.display().to_string();
        let read_err = |source| WavError::Read {
            path: name.clone(),
            source,
        };
        let mut reader = hound::WavReader::open(path).map_err(read_err)?;
        let spec = reader.spec();
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(read_err)?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(read_err)?
            }
        };
        let channels = usize::from(spec.channels.max(1));
        let mono: Vec<f32> = interleaved
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(WavError::Unusable {
                path: name,
                reason: "no samples".into(),
            });
        }
        let samples = if spec.sample_rate == SAMPLE_RATE {
            mono
        } else {
            let mut rs = Resampler::new(spec.sample_rate, 1).map_err(|e| WavError::Unusable {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            let mut out = rs.push(&mono).map_err(|e| WavError::Unusable {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            out.extend(rs.flush().map_err(|e| WavError::Unusable {
                path: name,
                reason: e.to_string(),
            })?);
            out
        };
        Ok(Self { samples, at: 0 })
    }

    /// The file's length in samples at 48 kHz.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the file holds no samples (never true once opened).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

impl AudioSource for WavSource {
    fn read(&mut self, out: &mut [f32]) {
        for s in out {
            *s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
        }
    }
}
