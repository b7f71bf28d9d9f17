//! What a link's path carries, estimated from transport-wide feedback.
//!
//! The bottleneck of a path is a queue. While we send less than it drains, each packet's
//! one-way delay (its arrival on the receiver's clock less its departure on ours) is the
//! path's least; once we send more, the queue grows and so does the delay, by exactly the
//! time a packet waits. The offset between the two clocks cancels out of the difference
//! between a delay and the least delay seen, so [`PathEstimator`] reads the queue directly:
//! - the **standing queue** is the least queueing delay of a feedback batch (jitter in the
//!   receiver's stamping adds to some packets, never to all of them);
//! - above [`HIGH_QUEUE`] ([`PROBE_QUEUE`] while the link probes) the estimate falls to
//!   [`BACKOFF`] times what arrived (the rate the bottleneck was seen to drain: over the
//!   packets that met the standing queue, once there are enough of them), and does
//!   not fall again until the cut has had a round trip to show, and then only if the queue
//!   is not draining;
//! - under [`LOW_QUEUE`] it grows: fast until the first sign of congestion (the path is
//!   probed rather than crept up to), then gently near the rate that last congested it, and
//!   faster again once well above it or long after;
//! - loss over [`LOSS_HIGH`] in the last second cuts it in proportion (a path that drops
//!   without queueing); random loss under it is left to retransmission, and over
//!   [`LOSS_LOW`] it holds the estimate under the rate that last congested the path for
//!   [`LOSSY_HOLD`] (longer each time the path proves the same): there every repair crosses
//!   the bottleneck, and the creep back to its edge a clean path can afford makes them late
//!   (a late repair is a frozen picture);
//! - it is never more than half again what the receiver acknowledged over the last second
//!   (plus a little), so a sender that sends less than it may is not told of room nobody has
//!   tried.
//!
//! Sans IO: told the time with each report.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, PacketReport};

use super::LinkStats;

/// A standing queue over this is congestion: the estimate falls.
pub(crate) const HIGH_QUEUE: Duration = Duration::from_millis(40);
/// A standing queue under this is a path with room: the estimate grows.
pub(crate) const LOW_QUEUE: Duration = Duration::from_millis(15);
/// While the link probes (fills the path up to the estimate, before a bigger picture), a
/// standing queue over this already fails the probe: the probe is what tells whether the
/// path has room, and every millisecond of queue it builds delays the repairs of the losses
/// around it (a repair that comes late is a frozen picture).
pub(crate) const PROBE_QUEUE: Duration = Duration::from_millis(20);
/// A fall takes the estimate to this share of what arrived.
pub(crate) const BACKOFF: f64 = 0.85;
/// A standing queue over this falls harder: the path is far narrower than we sent.
const SEVERE_QUEUE: Duration = Duration::from_millis(120);
const SEVERE_BACKOFF: f64 = 0.7;
/// Loss in the last second over this share cuts the estimate.
pub(crate) const LOSS_HIGH: f64 = 0.1;
/// Loss in the last second over this share, of what was sent while no queue stood, makes
/// the path lossy for [`LOSSY_MEMORY`].
const LOSS_LOW: f64 = 0.02;
const LOSSY_MEMORY: Duration = Duration::from_secs(5);
/// On a lossy path, the estimate stays under [`NEAR_BELOW`] times the rate that last
/// congested the path for this long after it did; then it may creep on, to find a path
/// that widened. Each time that finds the same edge, the hold doubles, up to
/// [`MAX_RETESTS`] times (160 s). A retest costs a moment's queue, with this path's repairs
/// in it (measured at 1 Mbit/s and 5 % loss: a 60-120 ms queue each time, and in 11
/// retests one picture frozen 279 ms and sound thinned for 25-65 ms in 5).
const LOSSY_HOLD: Duration = Duration::from_secs(40);
const MAX_RETESTS: u32 = 2;
/// Growth per second, as a share of the estimate: before any congestion, near the rate that
/// last congested the path, and away from it.
const GROW_PROBE: f64 = 0.8;
const GROW_NEAR: f64 = 0.05;
const GROW_FAR: f64 = 0.25;
/// "Near" the rate that last congested the path: from this factor of it to [`NEAR`] times
/// it. Above that without congestion, the path has widened.
const NEAR_BELOW: f64 = 0.9;
const NEAR: f64 = 1.15;
/// A queue that stands this long after a fall makes another, drained or not.
const AGAIN: Duration = Duration::from_secs(2);
/// How far above the acknowledged rate the estimate may go, and this much more (bits per
/// second) so a quiet link can still grow. Twice: an encoder on easy content sends well
/// under its budget, and at 1.5 times what it sent the estimate could stop short of the
/// layer above for good (measured: a 360p layer sending 333 kbit/s held the estimate at
/// 510 kbit/s, where 720p needs 736). A queue, not this cap, is what stops the estimate
/// above the path.
const ACK_HEADROOM: f64 = 2.0;
const ACK_SLACK: f64 = 10_000.0;
/// The window the acknowledged rate and the loss are measured over.
const WINDOW: Duration = Duration::from_secs(1);
/// The least delay is the least over this long (in one-second buckets): a route that
/// changes is learnt within it.
const BASE_WINDOW: usize = 30;
/// After a fall, the sender takes this long to follow it (the pacer at once, the encoder
/// within a few pictures): what left before says nothing about the cut.
const SETTLE: Duration = Duration::from_millis(200);
/// After a fall has shown, a queue not this much shorter [`SETTLE`] later is not draining
/// (a queue at the bottleneck's limit cannot grow: it drops).
const DRAINED: Duration = Duration::from_millis(5);
/// The drain rate is measured over the feedback of this long.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);
/// Reports this far apart say nothing about growth in between (an idle link).
const MAX_STEP: Duration = Duration::from_millis(200);
/// Loss is measured over at least this many packets.
const LOSS_MIN_PACKETS: u32 = 20;

/// The last fall of the estimate.
#[derive(Debug, Clone, Copy)]
struct Fall {
    at: Instant,
    /// The rate it fell from (what the bottleneck drained then).
    rate: f64,
    /// The queue of the first feedback that showed the fall, and when it came.
    shown: Option<(Instant, Duration)>,
}

/// Where a queue last showed the path's edge (see [`LOSSY_HOLD`]).
#[derive(Debug, Clone, Copy)]
struct Edge {
    at: Instant,
    /// What the bottleneck drained then.
    rate: f64,
    /// How many holds in a row ended at the same edge.
    retests: u32,
}

impl Edge {
    /// How long a lossy path's estimate stays under this edge.
    fn hold(&self) -> Duration {
        LOSSY_HOLD * (1 << self.retests)
    }
}

/// What one feedback reported.
#[derive(Debug, Clone, Copy)]
struct Batch {
    at: Instant,
    bytes: u64,
    reported: u32,
    lost: u32,
    /// The newest arrival in it, on the receiver's clock.
    newest_arrival: Option<Duration>,
    /// Whether a queue stood (over [`LOW_QUEUE`]) when it was sent: its losses may be the
    /// queue's overflow rather than the path's own.
    queued: bool,
}

/// The estimator of one link. See the module's text.
pub(crate) struct PathEstimator {
    min: f64,
    max: f64,
    target: f64,
    /// The zero of one-way delays on our side: the first departure seen.
    epoch: Option<Instant>,
    /// (bucket start, least one-way delay in it, in microseconds).
    base: VecDeque<(Instant, i64)>,
    queue: Duration,
    /// The newest departure any feedback has reported.
    newest_departure: Option<Instant>,
    last_fall: Option<Fall>,
    last_update: Option<Instant>,
    /// What each feedback of the last [`WINDOW`] reported.
    window: VecDeque<Batch>,
    first_report: Option<Instant>,
    /// Until when the path counts as lossy (see [`LOSS_LOW`]).
    lossy_until: Option<Instant>,
    /// The path's edge, as the last queue showed it.
    edge: Option<Edge>,
    /// The link's figures, read for whether it probes.
    stats: Option<Arc<LinkStats>>,
}

impl PathEstimator {
    pub(crate) fn new(initial: f64, min: f64, max: f64) -> Self {
        Self {
            min,
            max,
            target: initial.clamp(min, max),
            epoch: None,
            base: VecDeque::new(),
            queue: Duration::ZERO,
            newest_departure: None,
            last_fall: None,
            last_update: None,
            window: VecDeque::new(),
            first_report: None,
            lossy_until: None,
            edge: None,
            stats: None,
        }
    }

    /// Reads from `stats` whether the link probes (see [`PROBE_QUEUE`]) and what its data
    /// channel sent.
    pub(crate) fn watching(mut self, stats: Arc<LinkStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Whether the link fills its path up to the estimate now, to test it.
    fn probing(&self) -> bool {
        self.stats.as_ref().is_some_and(|s| s.probe() > 0)
    }

    fn one_way_delay_us(&mut self, report: &PacketReport) -> Option<i64> {
        let arrival = report.arrival?;
        let epoch = *self.epoch.get_or_insert(report.departure);
        let departure_us = if report.departure >= epoch {
            report.departure.duration_since(epoch).as_micros() as i64
        } else {
            -(epoch.duration_since(report.departure).as_micros() as i64)
        };
        Some(arrival.as_micros() as i64 - departure_us)
    }

    fn note_base(&mut self, now: Instant, delay_us: i64) {
        match self.base.back_mut() {
            Some((start, least))
                if now.saturating_duration_since(*start) < Duration::from_secs(1) =>
            {
                *least = (*least).min(delay_us);
            }
            _ => {
                self.base.push_back((now, delay_us));
                if self.base.len() > BASE_WINDOW {
                    self.base.pop_front();
                }
            }
        }
    }

    fn base_us(&self) -> Option<i64> {
        self.base.iter().map(|(_, least)| *least).min()
    }

    /// What arrived over the window (bits per second) and the share lost; `None` until a
    /// whole window has been seen.
    fn window_figures(&self, now: Instant) -> (Option<f64>, f64) {
        let (bytes, reported, lost) =
            self.window.iter().fold((0u64, 0u32, 0u32), |(b, r, l), x| {
                (b + x.bytes, r + x.reported, l + x.lost)
            });
        let loss = if reported >= LOSS_MIN_PACKETS {
            f64::from(lost) / f64::from(reported)
        } else {
            0.0
        };
        let whole = self
            .first_report
            .is_some_and(|first| now.saturating_duration_since(first) >= WINDOW);
        let acked = whole.then(|| bytes as f64 * 8.0 / WINDOW.as_secs_f64());
        (acked, loss)
    }

    /// The share lost over the window of what was sent while no queue stood: loss the path
    /// makes by itself, not a full queue's overflow (a narrow path that drops what its queue
    /// cannot hold is not lossy once we fit it).
    fn random_loss(&self) -> f64 {
        let (reported, lost) = self
            .window
            .iter()
            .filter(|b| !b.queued)
            .fold((0u32, 0u32), |(r, l), b| (r + b.reported, l + b.lost));
        if reported >= LOSS_MIN_PACKETS {
            f64::from(lost) / f64::from(reported)
        } else {
            0.0
        }
    }

    /// The rate the bottleneck drained at over the newest [`DRAIN_WINDOW`], by the
    /// receiver's clock: while a queue stands, exactly the path's rate.
    fn drain_rate(&self, now: Instant) -> Option<f64> {
        let recent: Vec<&Batch> = self
            .window
            .iter()
            .filter(|b| now.saturating_duration_since(b.at) < DRAIN_WINDOW)
            .filter(|b| b.newest_arrival.is_some())
            .collect();
        // Packets that met a standing queue arrived at the rate the bottleneck drains;
        // those before it, at the rate we sent. Where the queue has stood long enough to
        // tell, only they count: a path that narrows sevenfold at once is then followed in
        // one fall, not in four (each of which moved the camera a layer down, with a
        // keyframe into the full queue).
        let standing = recent.iter().rev().take_while(|b| b.queued).count();
        let from = recent.len().saturating_sub(standing + 1);
        if let Some(rate) = Self::arrival_rate(&recent[from..]) {
            return Some(rate);
        }
        Self::arrival_rate(&recent)
    }

    /// The rate `batches` arrived at: their bytes after the first over the time from its
    /// newest arrival to the last's, if that is long enough to tell.
    fn arrival_rate(recent: &[&Batch]) -> Option<f64> {
        let (first, last) = (recent.first()?, recent.last()?);
        let span = last.newest_arrival?.checked_sub(first.newest_arrival?)?;
        let bytes: u64 = recent.iter().skip(1).map(|b| b.bytes).sum();
        (span >= Duration::from_millis(50)).then(|| bytes as f64 * 8.0 / span.as_secs_f64())
    }

    /// Whether the estimate may fall (again): the last fall has shown (packets sent
    /// [`SETTLE`] after it have been reported) and the queue has not drained since, or it
    /// was long ago.
    fn may_fall(&mut self, now: Instant) -> bool {
        let newest = self.newest_departure;
        let queue = self.queue;
        let Some(fall) = self.last_fall.as_mut() else {
            return true;
        };
        if now.saturating_duration_since(fall.at) >= AGAIN {
            return true;
        }
        let settled = newest.is_some_and(|departed| departed >= fall.at + SETTLE);
        match fall.shown {
            None if settled => {
                fall.shown = Some((now, queue));
                false
            }
            None => false,
            Some((at, then)) => {
                now.saturating_duration_since(at) >= SETTLE && queue + DRAINED > then
            }
        }
    }

    /// Falls to `factor` times `drained` (or stays, if lower), remembering `drained` as the
    /// rate that congested the path.
    fn fall(&mut self, now: Instant, drained: f64, factor: f64) {
        tracing::debug!(
            from = self.target as u64,
            drained = drained as u64,
            factor,
            queue_ms = self.queue.as_millis() as u64,
            "estimate falls"
        );
        self.target = self.target.min(drained * factor);
        self.last_fall = Some(Fall {
            at: now,
            rate: drained,
            shown: None,
        });
    }

    /// A queue showed the path's edge at `drained`. A lossy path that shows the same edge
    /// once a hold is over has not widened: the next hold is twice as long.
    fn edge_at(&mut self, now: Instant, drained: f64) {
        let retests = match self.edge {
            Some(edge)
                if self.lossy(now) && (edge.rate / NEAR..edge.rate * NEAR).contains(&drained) =>
            {
                if now.saturating_duration_since(edge.at) >= edge.hold() {
                    (edge.retests + 1).min(MAX_RETESTS)
                } else {
                    edge.retests
                }
            }
            _ => 0,
        };
        self.edge = Some(Edge {
            at: now,
            rate: drained,
            retests,
        });
    }

    fn lossy(&self, now: Instant) -> bool {
        self.lossy_until.is_some_and(|until| now < until)
    }

    /// The most the estimate may grow to now: on a lossy path, under the rate that last
    /// congested it (see [`LOSSY_HOLD`]).
    fn ceiling(&self, now: Instant) -> f64 {
        let lossy = self.lossy(now);
        match self.edge {
            Some(edge) if lossy && now.saturating_duration_since(edge.at) < edge.hold() => {
                edge.rate * NEAR_BELOW
            }
            _ => self.max,
        }
    }

    /// Growth per second: fast before any congestion, gentle near the rate that last
    /// congested the path, faster below it and once well above it (the path has widened).
    fn growth(&self) -> f64 {
        match self.last_fall {
            None => GROW_PROBE,
            Some(fall) if (fall.rate * NEAR_BELOW..fall.rate * NEAR).contains(&self.target) => {
                GROW_NEAR
            }
            Some(_) => GROW_FAR,
        }
    }
}

impl BandwidthEstimator for PathEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        // A packet waits at least for its own serialisation at the bottleneck: that is no
        // queue (on a narrow path, a whole packet's worth of it is always there). The least
        // delay is kept as measured; only the queue is read net of it.
        let rate = self
            .window_figures(now)
            .0
            .unwrap_or(self.target)
            .max(self.min);
        let mut newest_arrival: Option<Duration> = None;
        let mut batch_least: Option<i64> = None;
        let mut newest_departure: Option<Instant> = None;
        let (mut bytes, mut lost) = (0u64, 0u32);
        for report in reports {
            newest_departure = newest_departure.max(Some(report.departure));
            if !report.arrived {
                lost += 1;
                continue;
            }
            bytes += report.size as u64;
            newest_arrival = newest_arrival.max(report.arrival);
            if let Some(delay) = self.one_way_delay_us(report) {
                self.note_base(now, delay);
                let serialisation = (report.size as f64 * 8.0 / rate * 1e6) as i64;
                let queued = delay - serialisation;
                batch_least = Some(batch_least.map_or(queued, |least| least.min(queued)));
            }
        }
        if let (Some(least), Some(base)) = (batch_least, self.base_us()) {
            self.queue = Duration::from_micros((least - base).max(0) as u64);
        }
        self.newest_departure = self.newest_departure.max(newest_departure);
        self.first_report.get_or_insert(now);
        self.window.push_back(Batch {
            at: now,
            bytes,
            reported: reports.len() as u32,
            lost,
            newest_arrival,
            queued: self.queue > LOW_QUEUE,
        });
        while self
            .window
            .front()
            .is_some_and(|b| now.saturating_duration_since(b.at) >= WINDOW)
        {
            self.window.pop_front();
        }
        let step = self
            .last_update
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
            .min(MAX_STEP);
        self.last_update = Some(now);

        // The data channel shares the path unseen by the feedback: what it sent counts as
        // acknowledged and drained beside what the feedback reports.
        let data = self.stats.as_ref().map_or(0.0, |s| s.data_bps() as f64);
        let (acked, loss) = self.window_figures(now);
        let acked = acked.map(|acked| acked + data);
        if self.random_loss() > LOSS_LOW {
            self.lossy_until = Some(now + LOSSY_MEMORY);
        }
        if let Some(stats) = &self.stats {
            stats.set_lossy(self.lossy(now));
        }
        let drained = self
            .drain_rate(now)
            .map(|drained| drained + data)
            .or(acked)
            .unwrap_or(self.target);
        // A queue that stands while the estimate is above what the path drains is a path
        // that narrowed: follow it at once, whatever the last fall.
        let above_path = self.target > drained;
        // A probe tests the estimate as it stood: it fails at a shorter queue, and the
        // estimate does not grow under it (the fill would follow it up).
        let probing = self.probing();
        let high_queue = if probing { PROBE_QUEUE } else { HIGH_QUEUE };
        if self.queue > high_queue && (above_path || self.may_fall(now)) {
            let factor = if self.queue > SEVERE_QUEUE {
                SEVERE_BACKOFF
            } else {
                BACKOFF
            };
            self.fall(now, drained, factor);
            self.edge_at(now, drained);
        } else if loss > LOSS_HIGH && self.may_fall(now) {
            self.fall(now, self.target, 1.0 - 0.5 * loss);
        } else if self.queue < LOW_QUEUE && loss <= LOSS_HIGH && !probing {
            let growth = self.growth();
            let before = self.target;
            self.target *= 1.0 + growth * step.as_secs_f64();
            if let Some(acked) = acked {
                self.target = self.target.min(acked * ACK_HEADROOM + ACK_SLACK);
            }
            self.target = self.target.min(self.ceiling(now).max(before));
        }
        self.target = self.target.clamp(self.min, self.max);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }
}

#[cfg(test)]
mod tests {
    //! The estimator against a modelled bottleneck: a queue drained at the path's rate that
    //! drops what would wait longer than its limit (as `tbf` does), random loss before it, a
    //! sender whose encoder follows the estimate with a lag, and feedback every 100 ms.

    use super::*;
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;

    const PACKET: usize = 1_200;
    const TICK: Duration = Duration::from_millis(5);
    const FEEDBACK: Duration = Duration::from_millis(100);

    struct Sent {
        departure: Instant,
        arrival: Option<Instant>,
    }

    /// What a run saw, one entry per feedback.
    struct Trace {
        /// (seconds into the run, estimate, bits the sender sent since the last entry,
        /// the path's queue then).
        points: Vec<(f64, f64, f64, Duration)>,
        /// (seconds into the run) of each packet the queue dropped.
        tail_drops: Vec<f64>,
    }

    impl Trace {
        fn after(&self, from: f64) -> impl Iterator<Item = &(f64, f64, f64, Duration)> {
            self.points.iter().filter(move |p| p.0 >= from)
        }

        fn mean_estimate(&self, from: f64, to: f64) -> f64 {
            let picked: Vec<f64> = self.after(from).filter(|p| p.0 < to).map(|p| p.1).collect();
            picked.iter().sum::<f64>() / picked.len() as f64
        }

        /// The most sent over any 5-s window from `from` on, in bits per second.
        fn most_over_five_seconds(&self, from: f64) -> f64 {
            let points: Vec<_> = self.after(from).collect();
            points
                .windows(50)
                .map(|w| w.iter().map(|p| p.2).sum::<f64>() / 5.0)
                .fold(0.0, f64::max)
        }

        fn first_time(&self, from: f64, holds: impl Fn(f64) -> bool) -> Option<f64> {
            self.after(from).find(|p| holds(p.1)).map(|p| p.0)
        }
    }

    /// Runs `seconds` through a path whose rate (bits per second) is `rate(t)`, that drops
    /// `loss_percent` at random, with a sender that sends at most `most` bits per second.
    fn run(seconds: u64, rate: impl Fn(f64) -> f64, loss_percent: u64, most: f64) -> Trace {
        run_using(seconds, rate, loss_percent, most, 1.0)
    }

    /// [`run`] with an encoder that sends only `usage` of what it is allowed (easy content).
    fn run_using(
        seconds: u64,
        rate: impl Fn(f64) -> f64,
        loss_percent: u64,
        most: f64,
        usage: f64,
    ) -> Trace {
        let start = crate::clock::now();
        let receiver_clock = Duration::from_secs(1_000);
        let base_delay = Duration::from_millis(10);
        let limit = Duration::from_millis(200);
        let mut estimator = PathEstimator::new(600_000.0, 80_000.0, 8_000_000.0);
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut busy_until = start;
        let mut encoder = 600_000.0;
        let mut credit = 0.0;
        let mut in_flight: VecDeque<Sent> = VecDeque::new();
        let mut next_id = 0u64;
        let mut reported = 0u64;
        let mut sent_bits = 0.0;
        let mut trace = Trace {
            points: Vec::new(),
            tail_drops: Vec::new(),
        };
        let mut now = start;
        let end = start + Duration::from_secs(seconds);
        let mut next_feedback = start + FEEDBACK;
        while now < end {
            let t = now.duration_since(start).as_secs_f64();
            // The encoder follows the estimate within about 300 ms.
            let wanted = estimator.target_bitrate().min(most) * usage;
            encoder += (wanted - encoder) * (TICK.as_secs_f64() / 0.3);
            credit += encoder * TICK.as_secs_f64() / 8.0;
            while credit >= PACKET as f64 {
                credit -= PACKET as f64;
                sent_bits += (PACKET * 8) as f64;
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let lost_at_random = (rng >> 33) % 100 < loss_percent;
                let begins = busy_until.max(now);
                let arrival = if lost_at_random {
                    None
                } else if begins.duration_since(now) > limit {
                    trace.tail_drops.push(t);
                    None
                } else {
                    let serialised = Duration::from_secs_f64((PACKET * 8) as f64 / rate(t));
                    busy_until = begins + serialised;
                    Some(busy_until + base_delay)
                };
                in_flight.push_back(Sent {
                    departure: now,
                    arrival,
                });
                next_id += 1;
            }
            if now >= next_feedback {
                next_feedback += FEEDBACK;
                let mut reports = Vec::new();
                while let Some(front) = in_flight.front() {
                    let settled = match front.arrival {
                        Some(arrival) => arrival <= now,
                        None => front.departure + FEEDBACK <= now,
                    };
                    if !settled {
                        break;
                    }
                    let sent = in_flight.pop_front().unwrap();
                    reports.push(PacketReport {
                        ssrc: 1,
                        id: reported,
                        rtp_sequence_number: reported as u16,
                        is_twcc: true,
                        twcc_sequence_number: reported as u16,
                        size: PACKET,
                        arrived: sent.arrival.is_some(),
                        departure: sent.departure,
                        arrival: sent
                            .arrival
                            .map(|a| receiver_clock + a.duration_since(start)),
                        ecn: Ecn::default(),
                    });
                    reported += 1;
                }
                let returned = now + base_delay;
                estimator.on_reports(returned, &reports);
                let queue = busy_until.saturating_duration_since(now);
                trace
                    .points
                    .push((t, estimator.target_bitrate(), sent_bits, queue));
                sent_bits = 0.0;
            }
            now += TICK;
        }
        assert!(next_id > 0);
        trace
    }

    #[test]
    fn the_estimate_settles_near_a_narrow_path_and_keeps_its_queue_short() {
        let trace = run(40, |_| 600_000.0, 0, 2_500_000.0);
        let mean = trace.mean_estimate(10.0, 40.0);
        assert!(
            (420_000.0..=780_000.0).contains(&mean),
            "mean estimate {mean}"
        );
        let most = trace.most_over_five_seconds(10.0);
        assert!(most <= 1.2 * 600_000.0, "{most} bit/s over a 5-s window");
        let drops: Vec<_> = trace.tail_drops.iter().filter(|t| **t >= 10.0).collect();
        assert!(drops.is_empty(), "the queue overflowed at {drops:?}");
        let longest = trace.after(10.0).map(|p| p.3).max().unwrap();
        assert!(
            longest <= Duration::from_millis(150),
            "a queue of {longest:?}"
        );
    }

    #[test]
    fn a_step_down_is_followed_at_once_and_a_step_up_within_twenty_seconds() {
        let rate = |t: f64| {
            if (20.0..40.0).contains(&t) {
                300_000.0
            } else {
                2_000_000.0
            }
        };
        let trace = run(60, rate, 0, 2_500_000.0);
        assert!(trace.mean_estimate(10.0, 20.0) > 1_400_000.0);
        let down = trace.first_time(20.0, |e| e <= 390_000.0).unwrap();
        assert!(down < 22.0, "under 390 kbit/s only at {down} s");
        let drops: Vec<_> = trace.tail_drops.iter().filter(|t| **t >= 23.0).collect();
        assert!(
            drops.is_empty(),
            "the narrow path's queue overflowed at {drops:?}"
        );
        let up = trace.first_time(40.0, |e| e >= 1_600_000.0).unwrap();
        assert!(up < 60.0, "back over 1.6 Mbit/s only at {up} s");
    }

    #[test]
    fn random_loss_under_the_threshold_does_not_starve_the_link() {
        let trace = run(40, |_| 1_000_000.0, 5, 2_500_000.0);
        let mean = trace.mean_estimate(10.0, 40.0);
        assert!(
            (700_000.0..=1_300_000.0).contains(&mean),
            "mean estimate {mean}"
        );
    }

    #[test]
    fn on_a_lossy_path_the_estimate_stays_under_the_rate_that_last_queued() {
        // Under random loss every repair crosses the bottleneck's queue: the creep back to
        // the edge that a clean path can afford makes them late. Each test of the edge is
        // a moment of queue; 40 s, then 80 s, apart (on a clean path: every 5 s or so).
        let queued_episodes = |loss: u64| {
            let trace = run(120, |_| 1_000_000.0, loss, 2_500_000.0);
            let queued: Vec<f64> = trace
                .after(10.0)
                .filter(|p| p.3 > PROBE_QUEUE)
                .map(|p| p.0)
                .collect();
            let episodes = queued.windows(2).filter(|w| w[1] - w[0] > 1.0).count()
                + usize::from(!queued.is_empty());
            (episodes, trace.mean_estimate(10.0, 120.0), queued)
        };
        let (episodes, mean, queued) = queued_episodes(5);
        assert!(episodes <= 2, "{episodes} queues, at {queued:?} s");
        assert!(mean >= 700_000.0, "mean estimate {mean}");
        let (clean, _, _) = queued_episodes(0);
        assert!(clean > 10, "{clean} queues on a clean path");
    }

    #[test]
    fn heavy_loss_cuts_the_estimate() {
        let trace = run(20, |_| 20_000_000.0, 30, 2_500_000.0);
        let mean = trace.mean_estimate(10.0, 20.0);
        assert!(mean < 300_000.0, "mean estimate {mean} through 30 % loss");
    }

    #[test]
    fn a_sender_that_uses_two_thirds_of_its_estimate_still_lets_it_grow() {
        // Easy content: the encoder sends 65 % of what it may. The estimate must still
        // climb on an open path, or a link never reaches the layer above its own.
        let trace = run_using(20, |_| 20_000_000.0, 0, 8_000_000.0, 0.65);
        let reached = trace.first_time(0.0, |e| e >= 1_500_000.0);
        assert!(
            reached.is_some_and(|t| t < 15.0),
            "1.5 Mbit/s reached at {reached:?} s"
        );
    }

    /// Feeds `estimator` a packet of [`PACKET`] bytes every 10 ms from `from` to `to` (ms
    /// after `start`), each `queue` late, reported every 50 ms.
    fn feed(
        estimator: &mut PathEstimator,
        start: Instant,
        (from, to): (u64, u64),
        queue: Duration,
    ) {
        let mut reports = Vec::new();
        for ms in (from..to).step_by(10) {
            let departure = start + Duration::from_millis(ms);
            reports.push(PacketReport {
                ssrc: 1,
                id: ms,
                rtp_sequence_number: (ms / 10) as u16,
                is_twcc: true,
                twcc_sequence_number: (ms / 10) as u16,
                size: PACKET,
                arrived: true,
                departure,
                arrival: Some(Duration::from_millis(ms + 10) + queue),
                ecn: Ecn::default(),
            });
            if reports.len() == 5 {
                estimator.on_reports(departure + Duration::from_millis(20) + queue, &reports);
                reports.clear();
            }
        }
    }

    #[test]
    fn a_probe_fails_at_a_queue_the_link_otherwise_lets_stand() {
        for probing in [false, true] {
            let start = crate::clock::now();
            let stats = Arc::new(LinkStats::default());
            let mut estimator =
                PathEstimator::new(1_200_000.0, 80_000.0, 8_000_000.0).watching(Arc::clone(&stats));
            feed(&mut estimator, start, (0, 1_500), Duration::ZERO);
            let before = estimator.target_bitrate();
            stats.set_probe(if probing { before as u64 } else { 0 });
            feed(
                &mut estimator,
                start,
                (1_500, 2_000),
                // 35 ms late, 10 of them each packet's own time at 960 kbit/s: 25 ms queued.
                Duration::from_millis(35),
            );
            let after = estimator.target_bitrate();
            if probing {
                assert!(after < before * 0.9, "a probe at {before} left {after}");
            } else {
                assert!(after >= before, "{before} fell to {after} at a 25 ms queue");
            }
        }
    }

    #[test]
    fn the_estimate_holds_while_it_is_probed() {
        let start = crate::clock::now();
        let stats = Arc::new(LinkStats::default());
        let mut estimator =
            PathEstimator::new(600_000.0, 80_000.0, 8_000_000.0).watching(Arc::clone(&stats));
        feed(&mut estimator, start, (0, 1_500), Duration::ZERO);
        let before = estimator.target_bitrate();
        stats.set_probe(before as u64);
        feed(&mut estimator, start, (1_500, 3_000), Duration::ZERO);
        assert_eq!(estimator.target_bitrate(), before);
        // Once the probe is over, an empty path lets it grow again.
        stats.set_probe(0);
        feed(&mut estimator, start, (3_000, 4_000), Duration::ZERO);
        assert!(estimator.target_bitrate() > before);
    }

    #[test]
    fn an_open_path_is_probed_to_the_senders_top_within_five_seconds() {
        let trace = run(10, |_| 20_000_000.0, 0, 2_500_000.0);
        let top = trace.first_time(0.0, |e| e >= 2_500_000.0).unwrap();
        assert!(top < 5.0, "at 2.5 Mbit/s only at {top} s");
        // Held to what the sender sends: no room told of that nobody tried.
        let most = trace.after(5.0).map(|p| p.1).fold(0.0, f64::max);
        assert!(
            most <= 2_500_000.0 * ACK_HEADROOM + 100_000.0,
            "estimate {most}"
        );
    }
}
