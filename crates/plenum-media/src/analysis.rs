//! Measuring audio: level, dominant frequency, gaps of silence. Used by the level meter,
//! the tests and the benchmarks.

use realfft::RealFftPlanner;

/// Root-mean-square level in dBFS (a full-scale sine is -3 dBFS; silence is -inf).
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mean = samples
        .iter()
        .map(|s| f64::from(*s) * f64::from(*s))
        .sum::<f64>()
        / samples.len() as f64;
    (10.0 * mean.log10()) as f32
}

/// The strongest frequency in `samples`, in Hz, to a fraction of a hertz (a Hann window,
/// then a parabola through the peak bin and its neighbours).
pub fn dominant_frequency(samples: &[f32], rate: u32) -> f64 {
    let n = samples.len();
    if n < 4 {
        return 0.0;
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            f64::from(*s) * (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
        })
        .collect();
    let mut spectrum = fft.make_output_vec();
    if fft.process(&mut input, &mut spectrum).is_err() {
        return 0.0;
    }
    let mags: Vec<f64> = spectrum.iter().map(|c| c.norm().max(1e-12).ln()).collect();
    let Some((peak, _)) = mags
        .iter()
        .enumerate()
        .skip(1)
        .max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return 0.0;
    };
    let offset = if peak + 1 < mags.len() {
        let (a, b, c) = (mags[peak - 1], mags[peak], mags[peak + 1]);
        let denom = a - 2.0 * b + c;
        if denom.abs() > 1e-12 {
            0.5 * (a - c) / denom
        } else {
            0.0
        }
    } else {
        0.0
    };
    (peak as f64 + offset) * f64::from(rate) / n as f64
}

/// How strong `frequency` is in `samples` relative to their total energy, in dB (Goertzel).
pub fn tone_level_db(samples: &[f32], rate: u32, frequency: f64) -> f64 {
    let w = std::f64::consts::TAU * frequency / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2) * 2.0;
    let total = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64;
    10.0 * (power.max(1e-20) / total.max(1e-20)).log10()
}

/// The longest run of samples whose 5 ms windows all stay below `threshold_dbfs`, in ms.
pub fn longest_silence_ms(samples: &[f32], rate: u32, threshold_dbfs: f32) -> f64 {
    let window = (rate as usize / 200).max(1);
    let (mut run, mut longest) = (0usize, 0usize);
    for w in samples.chunks(window) {
        if rms_dbfs(w) < threshold_dbfs {
            run += w.len();
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest as f64 * 1000.0 / f64::from(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{AudioSource, Sine};

    #[test]
    fn measures_a_tone() {
        let mut tone = vec![0.0; 48_000];
        Sine::new(440.0, 1.0).read(&mut tone);
        assert!((dominant_frequency(&tone, 48_000) - 440.0).abs() < 0.2);
        assert!((rms_dbfs(&tone) + 3.01).abs() < 0.05);
        assert!(tone_level_db(&tone, 48_000, 440.0) > -1.0);
        assert!(tone_level_db(&tone, 48_000, 660.0) < -30.0);
        let mut gappy = tone.clone();
        gappy[10_000..13_360].fill(0.0);
        assert!((longest_silence_ms(&gappy, 48_000, -40.0) - 70.0).abs() <= 5.0);
        assert!(longest_silence_ms(&tone, 48_000, -40.0) < 1.0);
        assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
    }
}
