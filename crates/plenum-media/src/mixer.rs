//! Mixing the frames of several remote streams into one, and keeping the mix in range.
//!
//! Voices add up: four people speaking at full scale sum to a peak of about 4. Clipping
//! that, even softly, is heard as distortion (and as intermodulation between the voices:
//! tones nobody sent). A [`Limiter`] lowers the whole mix's gain instead, at once when a
//! frame would go over its ceiling and back slowly once it would not, so each voice keeps
//! its shape and the voices their balance. ([`soft_clip`] is what the mix had before.)

/// Adds `frame` into `mix` (same length; extra samples are ignored).
pub fn add_into(mix: &mut [f32], frame: &[f32]) {
    for (m, s) in mix.iter_mut().zip(frame) {
        *m += *s;
    }
}

/// Keeps a mix within -1..=1 without hard clipping: linear up to 0.8, then a smooth knee.
pub fn soft_clip(mix: &mut [f32]) {
    for s in mix {
        let a = s.abs();
        if a > 0.8 {
            let over = a - 0.8;
            *s = s.signum() * (0.8 + 0.2 * (over / 0.2).tanh());
        }
    }
}

/// A mix's gain control: each frame's peak is held under [`Limiter::CEILING`] by lowering
/// the gain for the whole frame at once, and the gain comes back towards 1 over about
/// [`Limiter::RELEASE_MS`] once the mix is quieter, gliding across each frame (never past
/// what that frame's peak allows, so no sample goes over the ceiling).
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
    /// The share of the way back to full gain a frame may go.
    release: f32,
}

impl Limiter {
    /// The peak a limited mix stays under.
    pub const CEILING: f32 = 0.8;
    /// How long the gain takes to come most of the way back (one time constant).
    pub const RELEASE_MS: f32 = 300.0;

    /// A limiter for frames of `frame_ms` milliseconds.
    pub fn new(frame_ms: f32) -> Self {
        Self {
            gain: 1.0,
            release: 1.0 - (-frame_ms.max(0.0) / Self::RELEASE_MS).exp(),
        }
    }

    /// The gain applied at the end of the last frame.
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Limits `mix` in place.
    pub fn process(&mut self, mix: &mut [f32]) {
        // A frame that is not finite is no signal: silence rather than a stuck gain.
        if mix.iter().any(|s| !s.is_finite()) {
            mix.fill(0.0);
            return;
        }
        let peak = mix.iter().fold(0.0f32, |p, s| p.max(s.abs()));
        let fits = if peak > Self::CEILING {
            Self::CEILING / peak
        } else {
            1.0
        };
        let back = self.gain + (1.0 - self.gain) * self.release;
        let target = fits.min(back);
        let n = mix.len().max(1) as f32;
        let from = self.gain;
        for (i, s) in mix.iter_mut().enumerate() {
            // Down at once to what this frame needs; up, gliding across it.
            let g = if target < from {
                target
            } else {
                from + (target - from) * (i + 1) as f32 / n
            };
            *s *= g;
        }
        self.gain = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f32 = 48_000.0;
    const FRAME: usize = 960;

    fn tone(hz: f32, amplitude: f32, frame: usize) -> Vec<f32> {
        (0..FRAME)
            .map(|i| {
                let t = (frame * FRAME + i) as f32 / RATE;
                amplitude * (std::f32::consts::TAU * hz * t).sin()
            })
            .collect()
    }

    /// The level of `hz` in `samples`, relative to all of them, in dB.
    fn level_db(samples: &[f32], hz: f32) -> f64 {
        crate::analysis::tone_level_db(samples, RATE as u32, f64::from(hz))
    }

    #[test]
    fn mixes_and_limits() {
        let mut mix = vec![0.0; 4];
        add_into(&mut mix, &[0.1, 0.5, -0.5, 0.9]);
        add_into(&mut mix, &[0.1, 0.5, -0.6, 0.9]);
        soft_clip(&mut mix);
        assert!((mix[0] - 0.2).abs() < 1e-6);
        assert!(mix.iter().all(|s| s.abs() <= 1.0));
        assert!(mix[1] > 0.8 && mix[3] > mix[1]);
        assert!(mix[2] < -0.8);
    }

    /// Four voices at full scale: the mix stays in range, each voice keeps its level against
    /// the others, and nothing is heard that nobody sent (intermodulation, as clipping makes).
    #[test]
    fn four_full_scale_voices_are_turned_down_not_clipped() {
        let voices = [300.0, 500.0, 700.0, 1100.0];
        let mut limiter = Limiter::new(20.0);
        let (mut out, mut hard) = (Vec::new(), Vec::new());
        for frame in 0..50 {
            let mut mix = vec![0.0; FRAME];
            for hz in voices {
                add_into(&mut mix, &tone(hz, 1.0, frame));
            }
            let mut by_clip = mix.clone();
            limiter.process(&mut mix);
            soft_clip(&mut by_clip);
            out.extend(mix);
            hard.extend(by_clip);
        }
        assert!(out.iter().all(|s| s.abs() <= Limiter::CEILING + 1e-6));
        // The last half second, once the gain has settled.
        let settled = &out[out.len() / 2..];
        let levels: Vec<f64> = voices.iter().map(|&hz| level_db(settled, hz)).collect();
        let (lo, hi) = levels
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
        assert!(hi - lo < 0.5, "voices out of balance: {levels:?} dB");
        // 100 Hz is 2 x 700 - 1100 (and 2 x 300 - 500): a product of clipping, sent by nobody.
        let product = level_db(settled, 100.0) - lo;
        let clip_product = level_db(&hard[hard.len() / 2..], 100.0) - lo;
        assert!(product < -40.0, "intermodulation at {product} dB");
        assert!(
            clip_product > product + 20.0,
            "clipping makes {clip_product} dB"
        );
    }

    #[test]
    fn a_quiet_mix_passes_untouched_and_the_gain_comes_back_after_a_loud_one() {
        let mut limiter = Limiter::new(20.0);
        let quiet = tone(440.0, 0.5, 0);
        let mut mix = quiet.clone();
        limiter.process(&mut mix);
        assert_eq!(mix, quiet);
        let mut loud = tone(440.0, 3.2, 1);
        limiter.process(&mut loud);
        assert!((limiter.gain() - 0.25).abs() < 1e-3, "{}", limiter.gain());
        // Quiet again: the gain climbs back over the release, without a jump.
        let mut gains = Vec::new();
        for frame in 2..80 {
            let mut mix = tone(440.0, 0.5, frame);
            limiter.process(&mut mix);
            gains.push(limiter.gain());
        }
        assert!(gains.windows(2).all(|w| w[1] >= w[0]), "{gains:?}");
        assert!(gains[0] < 0.4, "{gains:?}");
        assert!(gains[gains.len() - 1] > 0.95, "{gains:?}");
    }

    #[test]
    fn a_mix_that_is_not_a_number_becomes_silence() {
        let mut limiter = Limiter::new(20.0);
        let mut mix = vec![0.1, f32::NAN, 0.2];
        limiter.process(&mut mix);
        assert_eq!(mix, vec![0.0; 3]);
        assert_eq!(limiter.gain(), 1.0);
    }
}
