//! The WAV recorder sink: 48 kHz mono, 16-bit.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::SAMPLE_RATE;

/// Where mixed audio goes, a frame at a time (called on the audio clock: must not block).
pub trait AudioSink: Send {
    /// One frame of 48 kHz mono samples.
    fn write(&mut self, frame: &[f32]);
}

/// Records frames to a WAV file. [`finish`](Self::finish) (or dropping it) completes the file.
pub struct WavRecorder {
    writer: hound::WavWriter<BufWriter<File>>,
}

impl std::fmt::Debug for WavRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecorder").finish_non_exhaustive()
    }
}

impl WavRecorder {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, hound::Error> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Self {
            writer: hound::WavWriter::create(path, spec)?,
        })
    }

    /// Appends samples (-1..=1; beyond is clipped).
    pub fn write(&mut self, samples: &[f32]) -> Result<(), hound::Error> {
        for s in samples {
            self.writer
                .write_sample((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)?;
        }
        Ok(())
    }

    /// Completes the file.
    pub fn finish(self) -> Result<(), hound::Error> {
        self.writer.finalize()
    }
}

impl AudioSink for WavRecorder {
    fn write(&mut self, frame: &[f32]) {
        if let Err(e) = WavRecorder::write(self, frame) {
            tracing::warn!(error = %e, "recording failed; frame lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dominant_frequency;
    use crate::source::{AudioSource, Sine, WavSource};

    #[test]
    fn a_recording_reads_back_as_a_source() {
        let path = std::env::temp_dir().join(format!("plenum-wav-{}.wav", std::process::id()));
        let mut rec = WavRecorder::create(&path).unwrap();
        let mut tone = vec![0.0; 48_000];
        Sine::new(523.25, 0.5).read(&mut tone);
        rec.write(&tone).unwrap();
        rec.finish().unwrap();
        let mut src = WavSource::open(&path).unwrap();
        assert_eq!(src.len(), 48_000);
        let mut back = vec![0.0; 48_000];
        src.read(&mut back);
        assert!((dominant_frequency(&back, 48_000) - 523.25).abs() < 0.5);
        std::fs::remove_file(&path).unwrap();
        assert!(WavSource::open(&path).is_err());
        std::fs::write(&path, b"RIFF....WAVEjunk").unwrap();
        assert!(WavSource::open(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
