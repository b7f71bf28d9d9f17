//! Any rate and channel count to 48 kHz mono (rubato), and 20 ms framing.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Why resampling failed.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// The rates cannot be converted.
    #[error("cannot resample from {0} Hz: {1}")]
    Construction(u32, String),
    /// Processing failed.
    #[error("resampling failed: {0}")]
    Process(String),
    /// Zero channels.
    #[error("a source with no channels")]
    NoChannels,
}

/// Converts interleaved samples at any rate and channel count to 48 kHz mono.
pub struct Resampler {
    channels: usize,
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// Input chunk (frames at the input rate) per conversion step: about 10 ms.
    fn chunk(rate: u32) -> usize {
        (rate as usize / 100).max(1)
    }

    /// A converter from `rate` Hz and `channels` channels (interleaved).
    pub fn new(rate: u32, channels: usize) -> Result<Self, ResampleError> {
        Self::between(rate, SAMPLE_RATE, channels)
    }

    /// A converter from `rate` Hz and `channels` channels to mono at `out_rate` Hz (for
    /// playback at a device's rate).
    pub fn between(rate: u32, out_rate: u32, channels: usize) -> Result<Self, ResampleError> {
        if channels == 0 {
            return Err(ResampleError::NoChannels);
        }
        let inner = if rate == out_rate {
            None
        } else {
            let fft = Fft::new(
                rate as usize,
                out_rate as usize,
                Self::chunk(rate),
                1,
                FixedSync::Input,
            )
            .map_err(|e| ResampleError::Construction(rate, e.to_string()))?;
            Some(fft)
        };
        Ok(Self {
            channels,
            inner,
            pending: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Converts what arrived; returns the 48 kHz mono samples ready so far.
    pub fn push(&mut self, interleaved: &[f32]) -> Result<Vec<f32>, ResampleError> {
        let ch = self.channels;
        let mono = interleaved
            .chunks(ch)
            .map(|c| c.iter().sum::<f32>() / ch as f32);
        let Some(inner) = self.inner.as_mut() else {
            return Ok(mono.collect());
        };
        self.pending.extend(mono);
        let mut out = Vec::new();
        loop {
            let need = inner.input_frames_next();
            if self.pending.len() < need {
                return Ok(out);
            }
            Self::step(
                inner,
                &self.pending[..need],
                None,
                &mut self.scratch,
                &mut out,
            )?;
            self.pending.drain(..need);
        }
    }

    /// Converts what is left (padded with silence), for the end of a clip.
    pub fn flush(&mut self) -> Result<Vec<f32>, ResampleError> {
        let mut out = Vec::new();
        if let Some(inner) = self.inner.as_mut()
            && !self.pending.is_empty()
        {
            let n = self.pending.len();
            let mut chunk = std::mem::take(&mut self.pending);
            chunk.resize(inner.input_frames_next(), 0.0);
            Self::step(inner, &chunk, Some(n), &mut self.scratch, &mut out)?;
        }
        Ok(out)
    }

    fn step(
        inner: &mut Fft<f32>,
        input: &[f32],
        partial: Option<usize>,
        scratch: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<(), ResampleError> {
        let err = |e: &dyn std::fmt::Display| ResampleError::Process(e.to_string());
        scratch.resize(inner.output_frames_max(), 0.0);
        let frames_in = input.len();
        let frames_out = scratch.len();
        let adapter_in = InterleavedSlice::new(input, 1, frames_in).map_err(|e| err(&e))?;
        let mut adapter_out = InterleavedSlice::new_mut(scratch.as_mut_slice(), 1, frames_out)
            .map_err(|e| err(&e))?;
        let indexing = partial.map(|n| rubato::Indexing {
            partial_len: Some(n),
            ..rubato::Indexing::new()
        });
        let (_, written) = inner
            .process_into_buffer(&adapter_in, &mut adapter_out, indexing.as_ref())
            .map_err(|e| err(&e))?;
        out.extend_from_slice(&scratch[..written]);
        Ok(())
    }
}

/// Cuts a stream of 48 kHz mono samples into 20 ms frames.
#[derive(Debug, Default)]
pub struct Framer {
    pending: Vec<f32>,
}

impl Framer {
    /// Adds samples; calls `frame` for every whole 20 ms frame now available.
    pub fn push(&mut self, samples: &[f32], mut frame: impl FnMut(&[f32])) {
        self.pending.extend_from_slice(samples);
        let whole = self.pending.len() / FRAME_SAMPLES * FRAME_SAMPLES;
        for f in self.pending[..whole].chunks_exact(FRAME_SAMPLES) {
            frame(f);
        }
        self.pending.drain(..whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{dominant_frequency, rms_dbfs};

    fn stereo_tone(rate: u32, freq: f64, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let v = (0.5 * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin())
                    as f32;
                [v, v]
            })
            .collect()
    }

    #[test]
    fn converts_44100_stereo_to_48000_mono_keeping_pitch_and_level() {
        let input = stereo_tone(44_100, 1000.0, 2.0);
        let mut rs = Resampler::new(44_100, 2).unwrap();
        let mut out = Vec::new();
        // Arbitrary callback sizes, as a device gives them.
        for chunk in input.chunks(2 * 441 + 6) {
            out.extend(rs.push(chunk).unwrap());
        }
        out.extend(rs.flush().unwrap());
        let expected = 96_000;
        assert!(
            (out.len() as i64 - expected).abs() < 1_500,
            "{} samples",
            out.len()
        );
        let f = dominant_frequency(&out[4_800..], SAMPLE_RATE);
        assert!((f - 1000.0).abs() < 2.0, "{f}");
        assert!((rms_dbfs(&out[4_800..90_000]) - rms_dbfs(&input[9_600..170_000])).abs() < 1.0);
    }

    #[test]
    fn passes_48000_through_and_frames_in_20_ms() {
        let mut rs = Resampler::new(48_000, 1).unwrap();
        let out = rs.push(&[0.25; 1000]).unwrap();
        assert_eq!(out.len(), 1000);
        let mut framer = Framer::default();
        let mut frames = 0;
        framer.push(&out, |f| {
            assert_eq!(f.len(), FRAME_SAMPLES);
            frames += 1;
        });
        framer.push(&[0.0; 920], |_| frames += 1);
        assert_eq!(frames, 2);
        assert!(Resampler::new(44_100, 0).is_err());
    }
}
