//! Audio level and a speaking / not-speaking decision with hysteresis, per 20 ms frame.

use crate::analysis::rms_dbfs;

/// Thresholds of a [`SpeakingDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakingConfig {
    /// Level at or above which a frame counts as voice, in dBFS.
    pub on_dbfs: f32,
    /// Level below which a frame counts as quiet, in dBFS (below `on_dbfs`: the gap is the
    /// hysteresis).
    pub off_dbfs: f32,
    /// Voiced frames in a row before "speaking" (3 = 60 ms).
    pub on_frames: u32,
    /// Quiet frames in a row before "not speaking" (25 = 500 ms).
    pub off_frames: u32,
}

impl Default for SpeakingConfig {
    fn default() -> Self {
        Self {
            on_dbfs: -45.0,
            off_dbfs: -55.0,
            on_frames: 3,
            off_frames: 25,
        }
    }
}

/// Decides whether a stream is speaking, frame by frame, without flickering.
#[derive(Debug, Clone)]
pub struct SpeakingDetector {
    config: SpeakingConfig,
    speaking: bool,
    run: u32,
    level: f32,
}

impl SpeakingDetector {
    /// A detector that starts silent.
    pub fn new(config: SpeakingConfig) -> Self {
        Self {
            config,
            speaking: false,
            run: 0,
            level: f32::NEG_INFINITY,
        }
    }

    /// The last frame's level, dBFS.
    pub fn level(&self) -> f32 {
        self.level
    }

    /// Whether the stream is speaking now.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// One frame; returns the new state when it changed.
    pub fn handle_frame(&mut self, frame: &[f32]) -> Option<bool> {
        self.handle_level(rms_dbfs(frame))
    }

    /// One frame's level (dBFS); returns the new state when it changed.
    pub fn handle_level(&mut self, level: f32) -> Option<bool> {
        self.level = level;
        let towards = if self.speaking {
            level < self.config.off_dbfs
        } else {
            level >= self.config.on_dbfs
        };
        self.run = if towards { self.run + 1 } else { 0 };
        let needed = if self.speaking {
            self.config.off_frames
        } else {
            self.config.on_frames
        };
        if self.run >= needed {
            self.speaking = !self.speaking;
            self.run = 0;
            return Some(self.speaking);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_on_after_voice_and_off_after_a_pause_without_flicker() {
        let mut d = SpeakingDetector::new(SpeakingConfig::default());
        let changes: Vec<(usize, bool)> = [
            vec![-70.0; 10],
            vec![-20.0; 2], // too short to count
            vec![-70.0; 2],
            vec![-20.0; 3],  // speaking from here
            vec![-50.0; 40], // between thresholds: still speaking
            vec![-20.0; 5],
            vec![-70.0; 24], // a pause shorter than 500 ms
            vec![-20.0; 1],
            vec![-70.0; 25], // a real pause
        ]
        .concat()
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| d.handle_level(l).map(|c| (i, c)))
        .collect();
        assert_eq!(changes, [(16, true), (111, false)]);
    }
}
