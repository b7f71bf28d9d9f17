//! An adaptive jitter buffer for 20 ms audio packets (sans-IO).
//!
//! Packets arrive with their RTP sequence number and timestamp; the playout clock asks for
//! one frame every 20 ms. The buffer holds packets until their turn, puts reordered packets
//! back in order, drops duplicates and packets that arrive after their turn, and reports a
//! gap as [`Playout::Fec`] (the next packet is here: decode the lost one from its in-band
//! FEC) or [`Playout::Conceal`] (decoder packet-loss concealment).
//!
//! How much it holds follows the network, in the spirit of libwebrtc's NetEQ: it estimates
//! arrival jitter (RFC 3550's interarrival jitter, on the transit time of each packet) and
//! the spread of transit times over the last [`DELAY_WINDOW`] (each packet's transit above
//! the quickest one's: a bottleneck queue that fills and drains moves every packet by tens
//! of milliseconds, slowly, which interarrival jitter does not see), and aims to hold
//! `max(min_delay, frame + 3 x jitter, frame + the spread 95 % of packets arrived within)`
//! up to `max_delay`. When more is held
//! than that target plus a margin, the oldest frame is dropped (latency catches up); when the
//! buffer runs dry, playout conceals; after a long silence (the sender stopped, or muted) it
//! waits for the target delay again before resuming.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Audio per packet.
    pub frame: Duration,
    /// The least delay held.
    pub min_delay: Duration,
    /// The most delay held.
    pub max_delay: Duration,
    /// RTP clock rate (48,000 for Opus).
    pub clock_rate: u32,
    /// Frames of silence (nothing to play) after which playout stops and re-buffers.
    pub idle_frames: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            frame: Duration::from_millis(20),
            min_delay: Duration::from_millis(30),
            max_delay: Duration::from_millis(200),
            clock_rate: 48_000,
            idle_frames: 10,
        }
    }
}

/// What to play for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Bytes),
    /// The frame's packet is lost but the next one is here: decode this (the next packet)
    /// with FEC on to recover the lost frame.
    Fec(Bytes),
    /// The frame's packet is lost: conceal it.
    Conceal,
    /// Nothing to play (not started, or stopped after silence): play silence.
    Silence,
}

/// Counters, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted.
    pub received: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Packets that arrived after their turn.
    pub late: u64,
    /// Frames recovered from the next packet's FEC.
    pub fec: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Frames dropped to bring the delay down.
    pub dropped: u64,
    /// Packets refused because the buffer was full.
    pub overflow: u64,
}

/// The transit times the spread is measured over, back from the newest packet.
pub const DELAY_WINDOW: Duration = Duration::from_secs(10);
/// The spread is measured once the window holds packets that arrived this far apart.
const MIN_SPAN: Duration = Duration::from_secs(1);
/// The share of packets the held delay should cover.
const COVERED: f64 = 0.95;

#[derive(Debug)]
struct Held {
    payload: Bytes,
}

/// See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    packets: BTreeMap<u64, Held>,
    /// The extended sequence number of the next frame to play, once playing.
    next: Option<u64>,
    /// The last frame played (kept across re-buffering: anything at or before it is late).
    played: Option<u64>,
    /// Ticks in a row with more held than the target plus a margin.
    over: u32,
    /// The highest extended sequence number seen (for unwrapping 16-bit numbers).
    highest: Option<u64>,
    /// When the first packet of the current talk spurt arrived (playout starts a target
    /// delay later).
    buffering_since: Option<Instant>,
    /// RFC 3550 jitter estimate, in seconds.
    jitter: f64,
    last_transit: Option<f64>,
    /// (arrival, transit) of the packets of the last [`DELAY_WINDOW`], in seconds.
    transits: VecDeque<(f64, f64)>,
    /// The transit above the window's quickest that [`COVERED`] of its packets arrived
    /// within, in seconds.
    spread: f64,
    epoch: Option<Instant>,
    idle: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Packets held, at most (the largest delay plus room for reordering).
    pub const CAPACITY: usize = 64;

    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        Self {
            config,
            packets: BTreeMap::new(),
            next: None,
            played: None,
            over: 0,
            highest: None,
            buffering_since: None,
            jitter: 0.0,
            last_transit: None,
            transits: VecDeque::new(),
            spread: 0.0,
            epoch: None,
            idle: 0,
            stats: JitterStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current arrival-jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter)
    }

    /// How far above the quickest packet of the last [`DELAY_WINDOW`] most packets arrived.
    pub fn spread(&self) -> Duration {
        Duration::from_secs_f64(self.spread)
    }

    /// The delay the buffer aims to hold now.
    pub fn target_delay(&self) -> Duration {
        let frame = self.config.frame.as_secs_f64();
        let wanted = (frame + 3.0 * self.jitter).max(frame + self.spread);
        Duration::from_secs_f64(wanted).clamp(self.config.min_delay, self.config.max_delay)
    }

    fn note_transit(&mut self, arrival: f64, transit: f64) {
        if self
            .transits
            .back()
            .is_some_and(|(_, last)| (transit - last).abs() >= 1.0)
        {
            // A jump of seconds is a new stream or a timestamp reset: start over.
            self.transits.clear();
        }
        self.transits.push_back((arrival, transit));
        let window = DELAY_WINDOW.as_secs_f64();
        while self
            .transits
            .front()
            .is_some_and(|(at, _)| arrival - at > window)
        {
            self.transits.pop_front();
        }
        let span = self
            .transits
            .front()
            .map_or(0.0, |(first, _)| arrival - first);
        if span < MIN_SPAN.as_secs_f64() {
            // Under a second of packets (a start, a burst) says little about the path.
            self.spread = 0.0;
            return;
        }
        let quickest = self
            .transits
            .iter()
            .map(|(_, t)| *t)
            .fold(f64::INFINITY, f64::min);
        let mut above: Vec<f64> = self.transits.iter().map(|(_, t)| t - quickest).collect();
        let index = ((above.len() as f64 * COVERED) as usize).min(above.len() - 1);
        let (_, nth, _) = above.select_nth_unstable_by(index, f64::total_cmp);
        self.spread = *nth;
    }

    fn target_frames(&self) -> u64 {
        let frame = self.config.frame.as_secs_f64();
        (self.target_delay().as_secs_f64() / frame).ceil().max(1.0) as u64
    }

    /// Frames held ahead of playout.
    pub fn depth(&self) -> usize {
        self.packets.len()
    }

    fn unwrap_seq(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start far from zero so that early reordering cannot go below it.
            let ext = (1u64 << 32) + u64::from(seq);
            self.highest = Some(ext);
            return ext;
        };
        let base = highest & !0xffff;
        let candidates =
            [base.wrapping_sub(0x1_0000), base, base + 0x1_0000].map(|b| b + u64::from(seq));
        let ext = candidates
            .into_iter()
            .min_by_key(|c| c.abs_diff(highest))
            .unwrap_or(highest);
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }

    /// A packet arrived at `now`.
    pub fn handle_packet(&mut self, seq: u16, timestamp: u32, payload: Bytes, now: Instant) {
        let ext = self.unwrap_seq(seq);
        if self.next.is_some_and(|next| ext < next) || self.played.is_some_and(|p| ext <= p) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if self.packets.len() >= Self::CAPACITY {
            self.stats.overflow += 1;
            return;
        }
        // Jitter: how much the transit time (arrival minus media time) varies.
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_secs_f64();
        let media = f64::from(timestamp) / f64::from(self.config.clock_rate);
        let transit = arrival - media;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // A jump of seconds is a new stream or a timestamp reset, not jitter.
            if d < 1.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        self.note_transit(arrival, transit);
        self.stats.received += 1;
        self.packets.insert(ext, Held { payload });
        if self.next.is_none() && self.buffering_since.is_none() {
            self.buffering_since = Some(now);
        }
    }

    /// The playout clock's tick: what to play for the next frame.
    pub fn poll_frame(&mut self, now: Instant) -> Playout {
        let Some(next) = self.next else {
            // Buffering: start once the first packet has waited the target delay.
            let Some(since) = self.buffering_since else {
                return Playout::Silence;
            };
            if now.saturating_duration_since(since) + self.config.frame < self.target_delay() {
                return Playout::Silence;
            }
            let Some((&first, _)) = self.packets.first_key_value() else {
                return Playout::Silence;
            };
            self.buffering_since = None;
            self.next = Some(first);
            self.idle = 0;
            return self.poll_frame(now);
        };
        // Too much held for 100 ms in a row (not a passing burst): skip the oldest frame, one
        // per tick, so playout catches up at twice the speed without a jump, until latency is
        // back near the target.
        let mut next = next;
        if self.packets.len() as u64 > self.target_frames() + 2 {
            self.over += 1;
        } else {
            self.over = 0;
        }
        if self.over >= 5
            && let Some((&oldest, _)) = self.packets.first_key_value()
        {
            self.packets.remove(&oldest);
            self.stats.dropped += 1;
            next = oldest + 1;
        }
        if let Some(held) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.played = Some(next);
            self.idle = 0;
            return Playout::Packet(held.payload);
        }
        if self.packets.is_empty() {
            self.idle += 1;
            if self.idle >= self.config.idle_frames {
                // The sender went quiet: stop, and buffer again when it comes back.
                self.next = None;
                self.buffering_since = None;
                return Playout::Silence;
            }
            // Nothing held: this frame's packet is late (the path's delay grew) or the
            // sender paused. Conceal and wait for it: when it comes it plays, a frame later
            // than planned (the delay held grows by what the path's did), rather than being
            // thrown away as late while every packet after it is late too.
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        // Later packets are here and this one is not: it is lost. Move on.
        self.next = Some(next + 1);
        self.played = Some(next);
        self.idle = 0;
        if let Some(following) = self.packets.get(&(next + 1)) {
            self.stats.fec += 1;
            return Playout::Fec(following.payload.clone());
        }
        self.stats.concealed += 1;
        Playout::Conceal
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a fixed origin for the virtual clock
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);

    fn pkt(n: u16) -> Bytes {
        Bytes::from(vec![n as u8, (n >> 8) as u8])
    }

    fn ts(n: u16) -> u32 {
        u32::from(n) * 960
    }

    /// Plays `frames` ticks from `start`, returning what each gave (packets by number).
    fn play(jb: &mut JitterBuffer, start: Instant, frames: u32) -> Vec<String> {
        (0..frames)
            .map(|i| match jb.poll_frame(start + F * i) {
                Playout::Packet(p) => format!("{}", u16::from(p[0]) | (u16::from(p[1]) << 8)),
                Playout::Fec(p) => format!("fec{}", u16::from(p[0]) | (u16::from(p[1]) << 8)),
                Playout::Conceal => "plc".into(),
                Playout::Silence => "-".into(),
            })
            .collect()
    }

    #[test]
    fn plays_in_order_what_arrives_out_of_order() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for n in [1u16, 3, 2, 4] {
            jb.handle_packet(n, ts(n), pkt(n), t0);
        }
        assert_eq!(play(&mut jb, t0 + F, 4), ["1", "2", "3", "4"]);
    }

    #[test]
    fn drops_duplicates_and_late_packets() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.handle_packet(10, ts(10), pkt(10), t0);
        jb.handle_packet(10, ts(10), pkt(10), t0);
        jb.handle_packet(11, ts(11), pkt(11), t0);
        assert_eq!(play(&mut jb, t0 + F, 2), ["10", "11"]);
        jb.handle_packet(10, ts(10), pkt(10), t0 + F * 2);
        let s = jb.stats();
        assert_eq!((s.received, s.duplicates, s.late), (2, 1, 1));
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_ones_fec_or_concealed() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for n in [1u16, 3, 6] {
            jb.handle_packet(n, ts(n), pkt(n), t0);
        }
        // 2 is lost but 3 is here: FEC from 3. 4 and 5 are lost with 5 missing too: conceal 4,
        // FEC for 5 from 6.
        assert_eq!(
            play(&mut jb, t0 + F, 6),
            ["1", "fec3", "3", "plc", "fec6", "6"]
        );
        assert_eq!((jb.stats().fec, jb.stats().concealed), (2, 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for n in [65534u16, 0, 65535, 1] {
            jb.handle_packet(n, ts(n), pkt(n), t0);
        }
        assert_eq!(play(&mut jb, t0 + F, 4), ["65534", "65535", "0", "1"]);
    }

    #[test]
    fn waits_the_target_delay_before_playing_and_rebuffers_after_silence() {
        let t0 = Instant::now();
        let config = JitterConfig {
            min_delay: Duration::from_millis(60),
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(config);
        jb.handle_packet(1, ts(1), pkt(1), t0);
        jb.handle_packet(2, ts(2), pkt(2), t0 + F);
        assert_eq!(play(&mut jb, t0, 4), ["-", "-", "1", "2"]);
        // Nothing more for a while: conceal briefly, then stop (silence) until packets return.
        let later = play(&mut jb, t0 + F * 4, 12);
        assert_eq!(later.iter().filter(|s| *s == "plc").count(), 9);
        assert_eq!(later.last().map(String::as_str), Some("-"));
        // The sender resumes (its timestamps kept running in real time).
        jb.handle_packet(40, ts(40), pkt(40), t0 + F * 40);
        assert_eq!(play(&mut jb, t0 + F * 40, 3), ["-", "-", "40"]);
        // A straggler from before the pause is late, not a new start.
        jb.handle_packet(3, ts(3), pkt(3), t0 + F * 43);
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn the_target_delay_follows_measured_jitter() {
        let t0 = Instant::now();
        let mut steady = JitterBuffer::new(JitterConfig::default());
        let mut jittery = JitterBuffer::new(JitterConfig::default());
        for n in 0..200u16 {
            let on_time = t0 + F * u32::from(n);
            steady.handle_packet(n, ts(n), pkt(n), on_time);
            // Every other packet 40 ms late.
            let wobble = if n % 2 == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(40)
            };
            jittery.handle_packet(n, ts(n), pkt(n), on_time + wobble);
        }
        // A steady stream stays at the floor.
        assert_eq!(steady.target_delay(), JitterConfig::default().min_delay);
        assert!(
            jittery.target_delay() >= Duration::from_millis(80),
            "{:?}",
            jittery.target_delay()
        );
        assert!(jittery.target_delay() <= JitterConfig::default().max_delay);
    }

    #[test]
    fn a_queue_that_fills_and_drains_is_held_through_without_concealment() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // Each packet waits in a bottleneck queue that grows to 80 ms over 2 s and drains in
        // 0.5 s, again and again (a sender probing the path and backing off), with a little
        // jitter on top. Interarrival jitter alone sees almost none of it.
        let queue = |n: u32| {
            let cycle = n % 125;
            let ms = if cycle < 100 {
                f64::from(cycle) * 0.8
            } else {
                80.0 - f64::from(cycle - 100) * 3.2
            };
            Duration::from_secs_f64(ms / 1000.0) + Duration::from_millis(u64::from(n % 3))
        };
        let mut arrivals: Vec<(Instant, u16)> = (0..1_000u32)
            .map(|n| (t0 + F * n + queue(n), n as u16))
            .collect();
        arrivals.sort();
        let mut concealed_late = 0;
        let mut next = 0;
        for tick in 0..1_010u32 {
            let now = t0 + F * tick + Duration::from_millis(5);
            while next < arrivals.len() && arrivals[next].0 <= now {
                let (at, n) = arrivals[next];
                jb.handle_packet(n, ts(n), pkt(n), at);
                next += 1;
            }
            let before = jb.stats().concealed;
            jb.poll_frame(now);
            if (500..990).contains(&tick) && jb.stats().concealed > before {
                concealed_late += 1;
            }
        }
        assert_eq!(concealed_late, 0, "{:?}", jb.stats());
        assert!(
            jb.spread() >= Duration::from_millis(60),
            "{:?}",
            jb.spread()
        );
        assert!(jb.target_delay() <= JitterConfig::default().max_delay);
    }

    #[test]
    fn a_sudden_longer_delay_is_waited_for_not_thrown_away() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // From packet 100 on, every packet takes 120 ms longer (a queue filled at once).
        let at = |n: u32| {
            t0 + F * n
                + if n >= 100 {
                    Duration::from_millis(120)
                } else {
                    Duration::ZERO
                }
        };
        let mut out = Vec::new();
        let mut next = 0u32;
        for tick in 0..300u32 {
            let now = t0 + F * tick + Duration::from_millis(5);
            while next < 300 && at(next) <= now {
                jb.handle_packet(next as u16, ts(next as u16), pkt(next as u16), at(next));
                next += 1;
            }
            out.push(jb.poll_frame(now));
        }
        let stats = jb.stats();
        // Every packet is played: the playout waited (concealing) for the late ones.
        assert_eq!(stats.late, 0, "{stats:?}");
        assert!(stats.concealed <= 7, "{stats:?}");
        assert!(!out[50..].contains(&Playout::Silence), "{stats:?}");
    }

    #[test]
    fn latency_comes_back_down_when_too_much_is_held() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // A burst of 20 packets at once (a stall that ended) on a steady stream.
        for n in 0..20u16 {
            jb.handle_packet(n, ts(n), pkt(n), t0);
        }
        let out = play(&mut jb, t0 + F, 20);
        // One frame skipped per tick until about the target is held; the rest played in order.
        assert!(jb.stats().dropped >= 5, "{:?} {out:?}", jb.stats());
        assert!(jb.depth() <= 4, "{} held: {out:?}", jb.depth());
    }

    proptest::proptest! {
        /// Whatever arrives in whatever order, every frame is played at most once, in order, and
        /// nothing panics.
        #[test]
        fn plays_each_frame_at_most_once_in_order(
            arrivals in proptest::collection::vec((0u16..200, 0u64..200), 0..300),
        ) {
            let t0 = Instant::now();
            let mut jb = JitterBuffer::new(JitterConfig::default());
            let mut arrivals = arrivals;
            arrivals.sort_by_key(|(_, at)| *at);
            let mut played = Vec::new();
            let mut i = 0;
            for tick in 0..400u64 {
                let now = t0 + Duration::from_millis(tick * 5);
                while i < arrivals.len() && arrivals[i].1 * 5 <= tick * 5 {
                    let (n, _) = arrivals[i];
                    jb.handle_packet(n, ts(n), pkt(n), now);
                    i += 1;
                }
                if tick % 4 == 0
                    && let Playout::Packet(p) = jb.poll_frame(now)
                {
                    played.push(u16::from(p[0]) | (u16::from(p[1]) << 8));
                }
            }
            let mut sorted = played.clone();
            sorted.sort_unstable();
            sorted.dedup();
            proptest::prop_assert_eq!(sorted, played);
        }
    }
}
