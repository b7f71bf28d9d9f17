//! The link's pacer: what the link sends leaves at a rate a little above the estimate, so a
//! keyframe does not burst into the bottleneck's queue, and in this order:
//! 1. **audio**, at once: a few kilobits a second that must never wait behind a picture (it
//!    is charged to the budget all the same);
//! 2. **retransmissions**, within their own share of the estimate: a request over the share
//!    is refused, not queued (a late retransmission is worse than none: the receiver has
//!    given the packet up, and the bytes push everything else back);
//! 3. **video**, as the budget allows. The time the queue would take to drain is published
//!    in [`LinkStats`] so the encoder can skip pictures rather than feed a queue that grows.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::shared::marshal::MarshalSize;

use super::{LinkStats, wire_bits};

/// The pacing rate, as a multiple of the estimate: room to drain a keyframe quickly while
/// the encoder, which follows the estimate itself, keeps the average inside it.
pub(crate) const PACING_FACTOR: f64 = 1.5;
/// The share of the estimate retransmissions may take (with video's share, they stay within
/// the estimate).
pub(crate) const RTX_SHARE: f64 = 0.1;
/// Video packets held at most (about a second of 720p at 2 Mbit/s); more are refused.
pub(crate) const QUEUE_LIMIT: usize = 400;
/// Retransmissions held at most.
const RTX_QUEUE_LIMIT: usize = 64;
/// The budget a burst may spend at once, in bits: a few packets, no more.
const BURST_BITS: f64 = 5.0 * 1_250.0 * 8.0;
/// The least time between two releases the pacer asks to be woken for.
const GRANULARITY: Duration = Duration::from_millis(1);

pub(crate) struct LinkPacer {
    stats: Arc<LinkStats>,
    audio: HashSet<u32>,
    budget: Pacer,
    rtx_budget: Pacer,
    rtx: VecDeque<TaggedPacket>,
    video: VecDeque<TaggedPacket>,
    /// Bits of `rtx` and `video`.
    queued_bits: f64,
    /// When the queues were last looked at.
    released: Option<Instant>,
    out: VecDeque<TaggedPacket>,
    read: VecDeque<TaggedPacket>,
}

impl LinkPacer {
    pub(crate) fn new(stats: Arc<LinkStats>) -> Self {
        let estimate = stats.estimate() as f64;
        Self {
            stats,
            audio: HashSet::new(),
            budget: Pacer::new(estimate * PACING_FACTOR).with_burst_bits(BURST_BITS),
            rtx_budget: Pacer::new(estimate * RTX_SHARE).with_burst_bits(BURST_BITS),
            rtx: VecDeque::new(),
            video: VecDeque::new(),
            queued_bits: 0.0,
            released: None,
            out: VecDeque::new(),
            read: VecDeque::new(),
        }
    }

    fn bits(packet: &TaggedPacket) -> f64 {
        match &packet.message.packet {
            Packet::Rtp(rtp) => wire_bits(rtp.marshal_size()),
            _ => 0.0,
        }
    }

    fn set_estimate(&mut self, bits_per_second: f64) {
        self.stats.set_estimate(bits_per_second);
        let estimate = self.stats.estimate() as f64;
        self.budget.set_target_bitrate(estimate * PACING_FACTOR);
        self.rtx_budget.set_target_bitrate(estimate * RTX_SHARE);
        self.publish_queue();
    }

    /// Releases what the budget allows, retransmissions first.
    fn release(&mut self, now: Instant) {
        self.released = Some(now);
        self.budget.refill(now);
        loop {
            let queue = if self.rtx.is_empty() {
                &mut self.video
            } else {
                &mut self.rtx
            };
            let Some(head) = queue.front() else { break };
            let bits = Self::bits(head);
            if !self.budget.can_release(bits) {
                break;
            }
            let Some(mut packet) = queue.pop_front() else {
                break;
            };
            self.budget.consume(bits);
            self.queued_bits -= bits;
            // It leaves now: what records departures below must see this instant.
            packet.now = now;
            self.out.push_back(packet);
        }
        if self.rtx.is_empty() && self.video.is_empty() {
            self.queued_bits = 0.0;
        }
        self.publish_queue();
    }

    fn publish_queue(&self) {
        let rate = self.budget.target_bitrate().max(1.0);
        let us = (self.queued_bits.max(0.0) / rate * 1e6) as u64;
        self.stats
            .queue_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    fn head_bits(&self) -> Option<f64> {
        self.rtx.front().or(self.video.front()).map(Self::bits)
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for LinkPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        // The estimator is wire-ward of us: its new estimate rides in on the feedback.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged {
                bits_per_second: 0.0,
            })
        {
            let bps = *bits_per_second;
            self.set_estimate(bps);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let now = msg.now;
        let Packet::Rtp(rtp) = &msg.message.packet else {
            // Feedback is only worth anything fresh.
            self.out.push_back(msg);
            return Ok(());
        };
        let bits = Self::bits(&msg);
        if self.audio.contains(&rtp.header.ssrc) {
            self.budget.refill(now);
            self.budget.consume(bits);
            self.out.push_back(msg);
        } else if msg.message.has(&Attribute::Retransmission) {
            self.rtx_budget.refill(now);
            if self.rtx_budget.can_afford(bits) && self.rtx.len() < RTX_QUEUE_LIMIT {
                self.rtx_budget.consume(bits);
                self.queued_bits += bits;
                self.rtx.push_back(msg);
            } else {
                LinkStats::add(&self.stats.rtx_refused, 1);
            }
        } else if self.video.len() < QUEUE_LIMIT {
            self.queued_bits += bits;
            self.video.push_back(msg);
        } else {
            // Refused rather than evicting an older packet: a hole in the middle of a
            // picture costs the receiver more than one at the end.
            LinkStats::add(&self.stats.dropped, 1);
        }
        self.release(now);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.out.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.release(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        // After `release` the head cannot go yet; rounding may put the instant it can at
        // the one just handled, so it is never asked for sooner than a moment later.
        let at = self.budget.releasable_at(self.head_bits()?)?;
        Some(self.released.map_or(at, |last| at.max(last + GRANULARITY)))
    }
}

impl Interceptor for LinkPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio.insert(info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
