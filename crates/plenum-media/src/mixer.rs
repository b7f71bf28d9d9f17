//! Mixing the frames of several remote streams into one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
