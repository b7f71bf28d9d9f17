//! Opus for voice: 48 kHz mono, 20 ms frames, in-band FEC, optional DTX.

use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bits per second (6,000..=510,000).
    pub bitrate: i32,
    /// In-band forward error correction (a low-bitrate copy of each frame in the next one).
    pub fec: bool,
    /// Discontinuous transmission: send almost nothing during silence.
    pub dtx: bool,
    /// The packet loss the encoder should expect, in percent (tunes FEC).
    pub expected_loss: i32,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate: 32_000,
            fec: true,
            dtx: false,
            expected_loss: 10,
        }
    }
}

/// Why the codec failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A frame that is not 20 ms of 48 kHz mono.
    #[error("a frame must be {FRAME_SAMPLES} samples, not {0}")]
    FrameSize(usize),
}

/// Encodes 20 ms frames.
pub struct OpusEncoder {
    inner: opus::Encoder,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// The largest packet produced.
    pub const MAX_PACKET: usize = 1275;

    /// A voice encoder.
    pub fn new(config: OpusConfig) -> Result<Self, CodecError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate))?;
        inner.set_inband_fec(config.fec)?;
        inner.set_packet_loss_perc(config.expected_loss)?;
        inner.set_dtx(config.dtx)?;
        inner.set_signal(opus::Signal::Voice)?;
        Ok(Self {
            inner,
            out: vec![0; Self::MAX_PACKET],
        })
    }

    /// Changes the bitrate (clamped to what Opus takes) and the loss the in-band FEC is
    /// sized for, in percent (0..=100), between frames.
    pub fn set_rate(&mut self, bitrate: i32, expected_loss: i32) -> Result<(), CodecError> {
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bitrate.clamp(6_000, 510_000)))?;
        self.inner
            .set_packet_loss_perc(expected_loss.clamp(0, 100))?;
        Ok(())
    }

    /// Encodes one frame (960 samples, -1..=1).
    pub fn encode(&mut self, frame: &[f32]) -> Result<&[u8], CodecError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameSize(frame.len()));
        }
        let n = self.inner.encode_float(frame, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// Decodes packets into 20 ms frames, recovering or concealing lost ones.
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A 48 kHz mono decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes a packet into `out` (960 samples). A corrupt packet is an error; the caller
    /// conceals instead.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        self.run(packet, out, false)
    }

    /// Recovers the frame before `next` from `next`'s in-band FEC (concealment when it has
    /// none).
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        self.run(next, out, true)
    }

    /// Conceals a lost frame (packet-loss concealment).
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        self.run(&[], out, false)
    }

    fn run(&mut self, packet: &[u8], out: &mut [f32], fec: bool) -> Result<(), CodecError> {
        if out.len() != FRAME_SAMPLES {
            return Err(CodecError::FrameSize(out.len()));
        }
        let n = self.inner.decode_float(packet, out, fec)?;
        // A packet of another duration (2.5..=60 ms) fills only part: pad with silence.
        out[n.min(FRAME_SAMPLES)..].fill(0.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{dominant_frequency, longest_silence_ms, rms_dbfs};
    use crate::source::{AudioSource, Sine};

    #[test]
    fn a_tone_survives_encoding_with_its_frequency_and_level() {
        let mut src = Sine::new(440.0, 0.5);
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let (mut sent, mut heard) = (Vec::new(), Vec::new());
        let mut frame = vec![0.0; FRAME_SAMPLES];
        let mut out = vec![0.0; FRAME_SAMPLES];
        for _ in 0..100 {
            src.read(&mut frame);
            sent.extend_from_slice(&frame);
            let packet = enc.encode(&frame).unwrap().to_vec();
            assert!(
                packet.len() < 200,
                "{} bytes for 20 ms at 32 kbit/s",
                packet.len()
            );
            dec.decode(&packet, &mut out).unwrap();
            heard.extend_from_slice(&out);
        }
        let f = dominant_frequency(&heard[SAMPLE_RATE as usize / 2..], SAMPLE_RATE);
        assert!((f - 440.0).abs() < 2.0, "{f}");
        let (a, b) = (rms_dbfs(&sent[24_000..]), rms_dbfs(&heard[24_000..]));
        assert!((a - b).abs() < 3.0, "{a} dB sent, {b} dB heard");
    }

    #[test]
    fn fec_and_concealment_fill_lost_frames() {
        let mut src = Sine::new(300.0, 0.5);
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = vec![0.0; FRAME_SAMPLES];
        let packets: Vec<Vec<u8>> = (0..50)
            .map(|_| {
                src.read(&mut frame);
                enc.encode(&frame).unwrap().to_vec()
            })
            .collect();
        let mut out = vec![0.0; FRAME_SAMPLES];
        let mut heard = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            match i % 10 {
                4 => dec.decode_fec(&packets[i + 1], &mut out).unwrap(),
                7 => dec.conceal(&mut out).unwrap(),
                _ => dec.decode(p, &mut out).unwrap(),
            }
            heard.extend_from_slice(&out);
        }
        // One frame in five lost: no audible hole, and the tone is still the tone.
        let settled = &heard[FRAME_SAMPLES * 5..];
        assert!(longest_silence_ms(settled, SAMPLE_RATE, -40.0) < 10.0);
        assert!((dominant_frequency(settled, SAMPLE_RATE) - 300.0).abs() < 2.0);
        assert!(dec.decode(&[0xff; 3], &mut out).is_err() || rms_dbfs(&out).is_finite());
        assert!(matches!(
            enc.encode(&[0.0; 10]),
            Err(CodecError::FrameSize(10))
        ));
    }
}
