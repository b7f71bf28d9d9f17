//! Voice processing for microphones: echo cancellation (AEC3) and noise suppression, from
//! sonora, a Rust port of WebRTC's audio processing module.
//!
//! The canceller must hear what the speaker plays (the *render* signal) to take it out of
//! what the microphone picks up (the *capture* signal); it finds the delay between the two
//! itself. Both go through in 10 ms blocks, as the module expects.

use sonora::config::{EchoCanceller, HighPassFilter, NoiseSuppression};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::SAMPLE_RATE;

/// Samples in the module's 10 ms block.
const BLOCK: usize = SAMPLE_RATE as usize / 100;

/// Which processing runs on a microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingConfig {
    /// Remove what the speaker plays from what the microphone hears.
    pub echo_cancellation: bool,
    /// Suppress steady background noise (fans, hum, hiss).
    pub noise_suppression: bool,
}

impl Default for ProcessingConfig {
    /// Both on, as for any microphone in a call.
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
        }
    }
}

impl ProcessingConfig {
    /// Nothing to do.
    pub const OFF: Self = Self {
        echo_cancellation: false,
        noise_suppression: false,
    };

    /// Whether any processing is on.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression
    }
}

/// One microphone's processing: feed it every frame played ([`Self::render`]) and every frame
/// captured ([`Self::capture`], processed in place). 48 kHz mono, any multiple of 10 ms.
pub struct VoiceProcessor {
    apm: AudioProcessing,
    config: ProcessingConfig,
    out: Vec<f32>,
}

impl std::fmt::Debug for VoiceProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceProcessor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl VoiceProcessor {
    pub fn new(config: ProcessingConfig) -> Self {
        let apm_config = Config {
            high_pass_filter: config.any().then(HighPassFilter::default),
            echo_canceller: config.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: config.noise_suppression.then(NoiseSuppression::default),
            ..Default::default()
        };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm = AudioProcessing::builder()
            .config(apm_config)
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            config,
            out: vec![0.0; BLOCK],
        }
    }

    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// What the speaker plays now. Unchanged; the canceller keeps it as its reference.
    pub fn render(&mut self, frame: &[f32]) {
        if !self.config.echo_cancellation {
            return;
        }
        for block in frame.chunks_exact(BLOCK) {
            if let Err(e) = self.apm.process_render_f32(&[block], &mut [&mut self.out]) {
                tracing::debug!(error = ?e, "render block refused");
            }
        }
    }

    /// What the microphone picked up now, processed in place.
    pub fn capture(&mut self, frame: &mut [f32]) {
        for block in frame.chunks_exact_mut(BLOCK) {
            match self.apm.process_capture_f32(&[block], &mut [&mut self.out]) {
                Ok(()) => block.copy_from_slice(&self.out),
                Err(e) => tracing::debug!(error = ?e, "capture block left unprocessed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{rms_dbfs, tone_level_db};
    use crate::{AudioSource, FRAME_SAMPLES, Sine};

    /// The level of one tone in `samples`, in dBFS.
    fn tone_dbfs(samples: &[f32], frequency: f64) -> f64 {
        f64::from(rms_dbfs(samples)) + tone_level_db(samples, SAMPLE_RATE, frequency)
    }

    /// White noise of peak `amplitude` (deterministic).
    fn noise(seconds: usize, amplitude: f32) -> Vec<f32> {
        let mut state = 0x2545_f491_u32;
        (0..seconds * SAMPLE_RATE as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                amplitude * (state as f32 / u32::MAX as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// A voice-like far end: noise under a syllable-rate envelope.
    fn far_end(seconds: usize) -> Vec<f32> {
        noise(seconds, 0.3)
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let t = i as f32 / SAMPLE_RATE as f32;
                s * (0.5 + 0.5 * (std::f32::consts::TAU * 3.0 * t).sin())
            })
            .collect()
    }

    /// Plays `far` into a room whose microphone hears it back after `delay` samples at half
    /// level, plus `near`; returns what the processor sends.
    fn room(processor: &mut VoiceProcessor, far: &[f32], near: &[f32], delay: usize) -> Vec<f32> {
        let mut sent = Vec::with_capacity(far.len());
        for (i, played) in far.chunks_exact(FRAME_SAMPLES).enumerate() {
            processor.render(played);
            let start = i * FRAME_SAMPLES;
            let mut heard: Vec<f32> = (start..start + FRAME_SAMPLES)
                .map(|n| {
                    let echo = n.checked_sub(delay).map_or(0.0, |m| 0.5 * far[m]);
                    echo + near[n]
                })
                .collect();
            processor.capture(&mut heard);
            sent.extend_from_slice(&heard);
        }
        sent
    }

    #[test]
    fn echo_of_the_far_end_is_removed_and_the_near_voice_kept() {
        let far = far_end(8);
        let mut near = vec![0.0; far.len()];
        // The near talker speaks (a tone) only in the last two seconds: double talk.
        let mut tone = vec![0.0; 2 * SAMPLE_RATE as usize];
        Sine::new(700.0, 0.2).read(&mut tone);
        let from = near.len() - tone.len();
        near[from..].copy_from_slice(&tone);
        let delay = 48 * 60; // 60 ms acoustic + device path
        let config = ProcessingConfig {
            echo_cancellation: true,
            noise_suppression: false,
        };

        let sent = room(&mut VoiceProcessor::new(config), &far, &near, delay);
        let echo_only = 4 * SAMPLE_RATE as usize..from;
        let echo_in = rms_dbfs(&far[echo_only.clone()]) - 6.0;
        let echo_out = rms_dbfs(&sent[echo_only]);
        eprintln!("echo {echo_in:.1} -> {echo_out:.1} dBFS");
        assert!(
            echo_in - echo_out > 20.0,
            "echo {echo_in:.1} dBFS in, {echo_out:.1} dBFS out"
        );
        let near_in = tone_dbfs(&near[from..], 700.0);
        let near_out = tone_dbfs(&sent[from + 4800..], 700.0);
        eprintln!("near voice {near_in:.1} -> {near_out:.1} dB");
        assert!(
            near_in - near_out < 6.0,
            "the near voice went from {near_in:.1} to {near_out:.1} dB"
        );

        // Without the canceller the echo goes through as it came.
        let plain = room(
            &mut VoiceProcessor::new(ProcessingConfig::OFF),
            &far,
            &near,
            delay,
        );
        let through = rms_dbfs(&plain[4 * SAMPLE_RATE as usize..from]);
        assert!((through - echo_in).abs() < 1.0, "{through} vs {echo_in}");
    }

    #[test]
    fn steady_noise_is_suppressed_and_the_voice_kept() {
        let seconds = 6;
        let mut voice = vec![0.0; seconds * SAMPLE_RATE as usize];
        Sine::new(440.0, 0.2).read(&mut voice);
        // The voice pauses in the middle of every second; the hiss never does.
        for (i, s) in voice.iter_mut().enumerate() {
            if (i % SAMPLE_RATE as usize) > SAMPLE_RATE as usize / 2 {
                *s = 0.0;
            }
        }
        let hiss = noise(seconds, 0.02);
        let mut mic: Vec<f32> = voice.iter().zip(&hiss).map(|(v, h)| v + h).collect();
        let config = ProcessingConfig {
            echo_cancellation: false,
            noise_suppression: true,
        };
        let mut processor = VoiceProcessor::new(config);
        for frame in mic.chunks_exact_mut(FRAME_SAMPLES) {
            processor.capture(frame);
        }
        // A pause late in the recording: only hiss was there.
        let second = SAMPLE_RATE as usize;
        let pause = 4 * second + second * 6 / 10..4 * second + second * 9 / 10;
        let hiss_in = rms_dbfs(&hiss[pause.clone()]);
        let hiss_out = rms_dbfs(&mic[pause]);
        eprintln!("hiss {hiss_in:.1} -> {hiss_out:.1} dBFS");
        assert!(
            hiss_in - hiss_out > 6.0,
            "hiss {hiss_in:.1} dBFS in, {hiss_out:.1} dBFS out"
        );
        let talk = 4 * second + second / 10..4 * second + second * 4 / 10;
        let voice_in = tone_dbfs(&voice[talk.clone()], 440.0);
        let voice_out = tone_dbfs(&mic[talk], 440.0);
        eprintln!("voice {voice_in:.1} -> {voice_out:.1} dB");
        assert!(
            (voice_in - voice_out).abs() < 3.0,
            "the voice went from {voice_in:.1} to {voice_out:.1} dB"
        );
    }
}
