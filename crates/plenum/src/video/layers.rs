//! Which picture each link gets, from its estimate: the rules, apart from the encoders.
//!
//! A camera is sent in up to four layers (full size, three quarters, half, quarter; none
//! narrower than [`MIN_LAYER_WIDTH`]: 1280x720, 960x540, 640x360, 320x180), a shared
//! screen in one (text must stay legible: it loses frame rate,
//! never resolution). Each link is on the highest layer its budget allows, with a margin
//! between going up and coming down so an estimate that wobbles does not make it flap. A
//! layer is encoded only while a link is on it, at the rate of the poorest link on it.

use std::time::{Duration, Instant};

use plenum_media::VideoFrame;
use plenum_vpx::Content;

/// Layers at most.
pub(crate) const MAX_LAYERS: usize = 4;
/// No layer narrower than this (after the first).
pub(crate) const MIN_LAYER_WIDTH: u32 = 160;
/// A link moves up to a layer when its budget reaches this share of the layer's full rate
/// (low enough that the layer below, at its most, shows the path can carry it: the estimate
/// never runs far ahead of what is sent).
const UP: f64 = 0.34;
/// A link moves down from a layer when its budget falls under this share of its full rate.
const DOWN: f64 = 0.25;
/// A layer may be encoded at up to this much more than its full rate, when its links afford
/// it (the extra is what lets the estimate reach the layer above).
const STRETCH: f64 = 1.25;
/// Below this share of a layer's full rate, the layer loses frame rate instead.
const FRAME_RATE_FROM: f64 = 0.5;
/// Frame rate is divided by at most this (30 fps becomes 6).
const MAX_DIVISOR: u32 = 5;
/// What audio needs on a link, kept out of the video budget (Opus at 32 kbit/s and its
/// packet overhead), in kbit/s.
const AUDIO_KBPS: u64 = 48;
/// The share of the estimate video may plan on: the rest is headroom for retransmissions,
/// packet overhead and the estimate's own error.
const VIDEO_SHARE: f64 = 0.85;
/// The least a layer is encoded at, in kbit/s.
pub(crate) const FLOOR_KBPS: u32 = 40;

/// The sizes a source of `width` x `height` is sent at, largest first.
pub(crate) fn sizes(width: u32, height: u32, content: Content) -> Vec<(u32, u32)> {
    let mut sizes = vec![(width, height)];
    if content == Content::Screen {
        return sizes;
    }
    // Three quarters: the step between full size and half, where a path carries more
    // than half's pixels and less than the whole's.
    let three = VideoFrame::three_quarters_size(width, height);
    if three.0 >= MIN_LAYER_WIDTH && three.0 < width {
        sizes.push(three);
    }
    let (mut w, mut h) = (width, height);
    while sizes.len() < MAX_LAYERS && (w / 2) >= MIN_LAYER_WIDTH {
        (w, h) = VideoFrame::half_size(w, h);
        sizes.push((w, h));
    }
    sizes
}

/// How layer `i` of `sizes` is made: from the layer it is half of, or else (three
/// quarters) from the full picture. `None` for the full picture itself.
pub(crate) fn made_from(sizes: &[(u32, u32)], i: usize) -> Option<Scale> {
    let &size = sizes.get(i).filter(|_| i > 0)?;
    Some(
        (0..i)
            .rev()
            .find(|&j| VideoFrame::half_size(sizes[j].0, sizes[j].1) == size)
            .map_or(Scale::ThreeQuarters, Scale::HalfOf),
    )
}

/// Which layers' pictures must be made: those `wanted`, and those they are made from.
pub(crate) fn needed(sizes: &[(u32, u32)], wanted: &[bool]) -> Vec<bool> {
    let mut needed: Vec<bool> = (0..sizes.len())
        .map(|i| wanted.get(i).copied().unwrap_or(false))
        .collect();
    for i in (1..sizes.len()).rev() {
        if needed[i] {
            match made_from(sizes, i) {
                Some(Scale::HalfOf(j)) => needed[j] = true,
                Some(Scale::ThreeQuarters) | None => needed[0] = true,
            }
        }
    }
    needed
}

/// See [`made_from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// Half of that layer's picture.
    HalfOf(usize),
    /// Three quarters of the full picture.
    ThreeQuarters,
}

/// What a link whose estimate is `estimate_bps` may spend on one lane's video, in kbit/s
/// (`share`: the lane's part when a screen is shared beside the camera).
pub(crate) fn budget_kbps(estimate_bps: u64, share: f64) -> u32 {
    let video = (estimate_bps as f64 * VIDEO_SHARE / 1000.0 - AUDIO_KBPS as f64).max(0.0);
    (video * share) as u32
}

/// The estimate (bits per second) at which a link's budget for one lane is `kbps`: the
/// inverse of [`budget_kbps`].
pub(crate) fn estimate_for(kbps: f64, share: f64) -> u64 {
    ((kbps / share + AUDIO_KBPS as f64) * 1000.0 / VIDEO_SHARE) as u64
}

/// The rate a link probes at before it climbs to a layer worth `full` kbit/s: a little over
/// the estimate the climb needs, and no more. A probe at a far higher estimate (one grown
/// past the path while the link sent less) only builds a deeper queue before it fails.
pub(crate) fn probe_bps(full: u32, share: f64) -> u64 {
    (estimate_for(UP * f64::from(full), share) as f64 * PROBE_MARGIN) as u64
}

/// How far over a climb's need a probe fills the path.
const PROBE_MARGIN: f64 = 1.1;

/// The layer a link on `current` should be on, with `budget` kbit/s and layers worth
/// `rates` (largest first).
pub(crate) fn choose(current: usize, budget: u32, rates: &[u32]) -> usize {
    let last = rates.len().saturating_sub(1);
    let current = current.min(last);
    let budget = f64::from(budget);
    // Up to the highest layer the budget clearly affords.
    if let Some(up) = (0..current).find(|&l| budget >= UP * f64::from(rates[l])) {
        return up;
    }
    // Down only once the budget clearly no longer holds this one.
    let mut layer = current;
    while layer < last && budget < DOWN * f64::from(rates[layer]) {
        layer += 1;
    }
    layer
}

/// After a link falls to a smaller layer it climbs again only once the wait since the fall
/// is over and its budget has held the layer above for [`CLIMB_HOLD`]: an estimate that
/// crept past what the path carries (it grows until delay shows) would otherwise climb at
/// once, burst the bigger layer's keyframe into the path, and fall again, freezing the
/// picture and holding up the sound each time.
pub(crate) const CLIMB_HOLD: Duration = Duration::from_secs(2);
/// The first wait after a fall; doubled for each fall that follows a climb within
/// [`FAILED_CLIMB`], up to [`MOST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(4);
const MOST_WAIT: Duration = Duration::from_secs(32);
/// On a path that loses no packets, failed probes alone lengthen the wait up to this: a
/// probe that fails there costs a moment's queue, not a keyframe burst, and a path that
/// widens must be found again within seconds. On a path that loses packets the repairs of
/// its losses wait in that queue and come late (a frozen moment), so there the wait goes
/// on doubling to [`MOST_WAIT`].
const MOST_PROBE_WAIT: Duration = Duration::from_secs(8);
/// A link that lost more than this share of its packets over the last second is lossy.
pub(crate) const LOSSY: f64 = 0.01;
const FAILED_CLIMB: Duration = Duration::from_secs(30);

/// A link's climbing rule (see [`CLIMB_HOLD`]). A link that never fell climbs at once.
#[derive(Debug, Default)]
pub(crate) struct Climb {
    /// No climb before this (set by a fall).
    until: Option<Instant>,
    wait: Duration,
    /// Since when the budget has afforded a climb, after a fall.
    affords_since: Option<Instant>,
    climbed_at: Option<Instant>,
    /// Whether the path loses packets (see [`MOST_PROBE_WAIT`]).
    lossy: bool,
}

impl Climb {
    /// Says whether the link's path loses packets now (see [`MOST_PROBE_WAIT`]).
    pub(crate) fn set_lossy(&mut self, lossy: bool) {
        self.lossy = lossy;
    }

    /// The layer a link on `from` goes to, `choose` having said `to`, at `now`.
    pub(crate) fn gate(&mut self, from: usize, to: usize, now: Instant) -> usize {
        if to > from {
            // A fall soon after a climb: the path did not carry it; wait longer next time.
            let failed = self
                .climbed_at
                .is_some_and(|t| now.saturating_duration_since(t) < FAILED_CLIMB);
            self.wait = if failed {
                (self.wait * 2).clamp(FIRST_WAIT, MOST_WAIT)
            } else {
                FIRST_WAIT
            };
            self.until = Some(now + self.wait);
            self.affords_since = None;
            // A fall that goes on down a layer more is the same failure, not another.
            self.climbed_at = None;
            return to;
        }
        if to == from {
            // A probe that showed the path cannot carry the climb: as a climb that failed
            // (each probe into a path that cannot take it raises the delay for a moment).
            if self.probing(now) {
                let most = if self.lossy {
                    MOST_WAIT
                } else {
                    MOST_PROBE_WAIT
                };
                let doubled = (self.wait * 2).clamp(FIRST_WAIT, most);
                self.wait = self.wait.max(doubled);
                self.until = Some(now + self.wait);
            }
            self.affords_since = None;
            return to;
        }
        let Some(until) = self.until else {
            self.climbed_at = Some(now);
            return to;
        };
        let since = *self.affords_since.get_or_insert(now);
        if now < until || now.saturating_duration_since(since) < CLIMB_HOLD {
            return from;
        }
        self.affords_since = None;
        self.climbed_at = Some(now);
        to
    }

    /// Whether a held climb is in its last [`CLIMB_HOLD`]: the link then fills its path up
    /// to the estimate (a probe), so an estimate that crept past the path falls before the
    /// bigger layer's keyframe is sent into it.
    pub(crate) fn probing(&self, now: Instant) -> bool {
        self.probe_share(now).is_some()
    }

    /// While probing, the share of the probe's rate the link fills to now: it rises from
    /// [`PROBE_FROM`] over the first [`PROBE_RAMP`] of the probe, then holds at the whole.
    /// A path narrower than the probe then starts to queue at a rate only a little over
    /// its own, and the queue that fails the probe is shown before it grows deep (at once,
    /// 16 % over a 1 Mbit/s path left a 60-120 ms queue behind a failed probe).
    pub(crate) fn probe_share(&self, now: Instant) -> Option<f64> {
        let (until, since) = self.until.zip(self.affords_since)?;
        let start = since.max(until.checked_sub(CLIMB_HOLD)?);
        (now + CLIMB_HOLD >= until).then_some(())?;
        let ramp = now.saturating_duration_since(start).as_secs_f64() / PROBE_RAMP.as_secs_f64();
        Some(PROBE_FROM + (1.0 - PROBE_FROM) * ramp.min(1.0))
    }
}

/// A probe fills from this share of its rate, rising to the whole over [`PROBE_RAMP`].
const PROBE_FROM: f64 = 0.75;
const PROBE_RAMP: Duration = Duration::from_millis(1500);

/// What a layer worth `full` kbit/s is encoded at when its poorest link has `budget`, and
/// how many pictures it sends of each `divisor` (frame rate, when the rate alone is not
/// enough: on the last layer, or on a screen).
pub(crate) fn rate_and_divisor(budget: u32, full: u32, may_drop_frames: bool) -> (u32, u32) {
    let top = (f64::from(full) * STRETCH) as u32;
    let rate = budget.clamp(FLOOR_KBPS, top.max(FLOOR_KBPS));
    if !may_drop_frames {
        return (rate, 1);
    }
    let wanted = FRAME_RATE_FROM * f64::from(full);
    let divisor = if f64::from(rate) >= wanted {
        1
    } else {
        (wanted / f64::from(rate)).ceil() as u32
    };
    (rate, divisor.clamp(1, MAX_DIVISOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_has_up_to_four_layers_a_screen_one() {
        let hd = sizes(1280, 720, Content::Camera);
        assert_eq!(hd, vec![(1280, 720), (960, 540), (640, 360), (320, 180)]);
        assert_eq!(
            sizes(640, 360, Content::Camera),
            vec![(640, 360), (480, 270), (320, 180), (160, 90)]
        );
        assert_eq!(
            sizes(320, 240, Content::Camera),
            vec![(320, 240), (240, 180), (160, 120)]
        );
        assert_eq!(sizes(200, 150, Content::Camera), vec![(200, 150)]);
        assert_eq!(sizes(1920, 1080, Content::Screen), vec![(1920, 1080)]);
        // The quarter needs the half it is made from, not the three quarters.
        assert_eq!(
            needed(&hd, &[false, false, false, true]),
            vec![true, false, true, true]
        );
        assert_eq!(
            needed(&hd, &[false, true, false, false]),
            vec![true, true, false, false]
        );
        // Each made from a picture it divides evenly.
        let made: Vec<_> = (0..hd.len()).map(|i| made_from(&hd, i)).collect();
        assert_eq!(
            made,
            vec![
                None,
                Some(Scale::ThreeQuarters),
                Some(Scale::HalfOf(0)),
                Some(Scale::HalfOf(2))
            ]
        );
    }

    #[test]
    fn a_probe_fills_to_what_the_climb_needs() {
        let rates = [2765, 691, 172];
        for share in [1.0, 0.3] {
            let probe = probe_bps(rates[0], share);
            // At the probe's rate the link climbs; a little under the need, it does not.
            assert_eq!(choose(1, budget_kbps(probe, share), &rates), 0);
            let under = (probe as f64 / PROBE_MARGIN * 0.97) as u64;
            assert_eq!(choose(1, budget_kbps(under, share), &rates), 1);
        }
    }

    #[test]
    fn a_link_climbs_and_falls_with_a_margin_between() {
        let rates = [2765, 691, 172];
        // From the bottom, 400 kbit/s affords the middle layer, not the top.
        assert_eq!(choose(2, 400, &rates), 1);
        assert_eq!(choose(2, 1000, &rates), 0);
        // On the middle layer, a dip to 200 stays (over 25 % of 691); 150 goes down.
        assert_eq!(choose(1, 200, &rates), 1);
        assert_eq!(choose(1, 150, &rates), 2);
        // On top, a fall to 500 goes down one layer; to 30, to the bottom.
        assert_eq!(choose(0, 500, &rates), 1);
        assert_eq!(choose(0, 30, &rates), 2);
        // The bottom layer is the floor.
        assert_eq!(choose(2, 0, &rates), 2);
        // A lone layer is always the one.
        assert_eq!(choose(0, 10, &[1000]), 0);
    }

    #[test]
    fn after_a_fall_a_link_climbs_only_after_a_wait_and_a_budget_that_holds() {
        let t0 = crate::clock::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        // Never fell: climbs at once.
        assert_eq!(climb.gate(2, 1, at(0.0)), 1);
        // Falls at 1 s (a failed climb): no climb before the wait (to 5 s), nor on a budget
        // that affords it for less than the hold.
        assert_eq!(climb.gate(1, 2, at(1.0)), 2);
        assert_eq!(climb.gate(2, 1, at(2.0)), 2, "within the wait");
        assert_eq!(climb.gate(2, 2, at(2.5)), 2, "it dipped");
        assert_eq!(climb.gate(2, 1, at(3.5)), 2);
        assert_eq!(
            climb.gate(2, 1, at(5.2)),
            2,
            "the wait is over, the hold is not"
        );
        assert_eq!(climb.gate(2, 1, at(5.6)), 1, "held for the hold");
        // It fails again soon after: the wait doubles (4 s, then 8 s, then 16 s).
        assert_eq!(climb.gate(1, 2, at(6.0)), 2);
        assert_eq!(climb.gate(2, 1, at(7.0)), 2);
        assert_eq!(climb.gate(2, 1, at(13.9)), 2, "8 s after the fall");
        assert_eq!(climb.gate(2, 1, at(14.1)), 1);
        // A fall long after a climb starts from the first wait again.
        assert_eq!(climb.gate(1, 2, at(100.0)), 2);
        assert_eq!(climb.gate(2, 1, at(102.0)), 2);
        assert_eq!(climb.gate(2, 1, at(104.1)), 1);
    }

    #[test]
    fn a_held_climb_probes_its_path_for_the_last_hold_before_it() {
        let t0 = crate::clock::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        // A link that never fell climbs without a probe.
        assert_eq!(climb.gate(2, 1, at(0.0)), 1);
        assert!(!climb.probing(at(0.0)));
        // It falls at 1 s: the wait runs to 5 s.
        assert_eq!(climb.gate(1, 2, at(1.0)), 2);
        assert!(!climb.probing(at(1.0)), "no climb is wanted");
        assert_eq!(climb.gate(2, 1, at(2.0)), 2);
        assert!(!climb.probing(at(2.0)), "the wait has long to go");
        assert_eq!(climb.gate(2, 1, at(3.1)), 2);
        assert!(climb.probing(at(3.1)), "the last 2 s before the climb");
        // The probe fills from three quarters of its rate, rising to the whole over 1.5 s
        // from its start (at 3 s), then holding there.
        let share = |s: f64| climb.probe_share(at(s)).unwrap();
        assert!((share(3.0) - 0.75).abs() < 1e-9, "{}", share(3.0));
        assert!((share(3.75) - 0.875).abs() < 1e-9, "{}", share(3.75));
        assert!((share(4.5) - 1.0).abs() < 1e-9 && share(4.9) == 1.0);
        // The probe showed the path could not carry it: the estimate fell, no climb, and
        // the wait doubles as for a failed climb (8 s, to 11.5 s).
        assert_eq!(climb.gate(2, 2, at(3.5)), 2);
        assert!(!climb.probing(at(3.5)));
        assert_eq!(climb.gate(2, 1, at(6.0)), 2);
        assert!(!climb.probing(at(6.0)), "the wait has long to go");
        assert_eq!(climb.gate(2, 1, at(9.6)), 2);
        assert!(climb.probing(at(9.6)));
        assert_eq!(climb.gate(2, 1, at(11.6)), 1);
        assert!(!climb.probing(at(11.6)), "climbed");
    }

    #[test]
    fn a_fall_down_two_layers_is_one_failure_and_failed_probes_wait_at_most_eight_seconds() {
        let t0 = crate::clock::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut climb = Climb::default();
        assert_eq!(climb.gate(2, 0, at(0.0)), 0);
        // The path narrows: down a layer, and a moment later down another. One failure:
        // the wait is the first one, from the second fall (to 5.2 s).
        assert_eq!(climb.gate(0, 1, at(1.0)), 1);
        assert_eq!(climb.gate(1, 2, at(1.2)), 2);
        assert_eq!(climb.gate(2, 1, at(3.3)), 2);
        assert!(climb.probing(at(3.3)), "the last 2 s of a 4 s wait");
        // Probe after probe fails: 8 s each time, never 16 or 32.
        let mut t = 3.5;
        for _ in 0..4 {
            assert_eq!(climb.gate(2, 2, at(t)), 2, "the probe failed");
            assert_eq!(climb.gate(2, 1, at(t + 5.9)), 2);
            assert!(!climb.probing(at(t + 5.9)), "6 s into an 8 s wait");
            assert_eq!(climb.gate(2, 1, at(t + 6.1)), 2);
            assert!(climb.probing(at(t + 6.1)), "the last 2 s of an 8 s wait");
            t += 6.2;
        }
        // The path widened: the probe holds, and the link climbs at the wait's end.
        assert_eq!(climb.gate(2, 1, at(t + 1.9)), 1);
        // On a path that loses packets, failed probes go on doubling the wait.
        let mut climb = Climb::default();
        climb.set_lossy(true);
        assert_eq!(climb.gate(2, 1, at(0.0)), 1);
        assert_eq!(climb.gate(1, 2, at(1.0)), 2);
        let mut t = 3.1;
        for wait in [8.0, 16.0, 32.0, 32.0] {
            assert_eq!(climb.gate(2, 1, at(t)), 2);
            assert!(climb.probing(at(t)));
            assert_eq!(climb.gate(2, 2, at(t + 0.1)), 2, "the probe failed");
            t += 0.1 + wait - 1.9;
            assert_eq!(climb.gate(2, 1, at(t - 0.2)), 2);
            assert!(!climb.probing(at(t - 0.2)), "{wait} s: not yet");
        }
    }

    #[test]
    fn frame_rate_goes_only_when_the_rate_alone_is_not_enough() {
        assert_eq!(rate_and_divisor(500, 691, true), (500, 1));
        assert_eq!(rate_and_divisor(900, 691, false), (863, 1));
        // A screen worth 1,000 given 100: 100 kbit/s, one picture in five.
        assert_eq!(rate_and_divisor(100, 1000, true), (100, 5));
        assert_eq!(rate_and_divisor(250, 1000, true), (250, 2));
        // Never under the floor, never an empty layer.
        assert_eq!(rate_and_divisor(0, 172, true).0, FLOOR_KBPS);
        assert_eq!(rate_and_divisor(0, 172, false), (FLOOR_KBPS, 1));
    }

    #[test]
    fn the_budget_leaves_room_for_audio_and_headroom() {
        assert_eq!(budget_kbps(600_000, 1.0), 462);
        assert_eq!(budget_kbps(600_000, 0.5), 231);
        assert_eq!(budget_kbps(30_000, 1.0), 0);
    }
}
