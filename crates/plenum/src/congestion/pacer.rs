//! The link's pacer: what the link sends leaves at a rate a little above the estimate, so a
//! keyframe does not burst into the bottleneck's queue, and in this order:
//! 1. **audio**, at once: a few kilobits a second that must never wait behind a picture (it
//!    is charged to the budget all the same);
//! 2. **retransmissions**, within their own share of the estimate: a request over the share
//!    is refused, not queued (a late retransmission is worse than none: the receiver has
//!    given the packet up, and the bytes push everything else back);
//! 3. **video**, as the budget allows. The time the queue would take to drain is published
//!    in [`LinkStats`] so the encoder can skip pictures rather than feed a queue that grows;
//! 4. **probes**, when the video task asks for them ([`LinkStats::set_probe`]: a link waiting
//!    to climb to a bigger picture): while nothing else waits, the link is filled up to the
//!    probe's rate with copies of what it just sent, on the repair stream (as browsers pad).
//!    If the path cannot carry that rate, a queue shows and the estimate falls before the
//!    bigger picture's keyframe is ever sent into it. The copies are asked of the NACK
//!    responder (app-ward of us) with a NACK of our own, so they are numbered on the repair
//!    stream like any retransmission; the receiver drops them as duplicates.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::shared::TransportContext;
use rtc::shared::marshal::MarshalSize;

use super::{LinkStats, wire_bits};

/// The pacing rate, as a multiple of the estimate: room to drain a keyframe quickly while
/// the encoder, which follows the estimate itself, keeps the average inside it.
pub(crate) const PACING_FACTOR: f64 = 1.5;
/// The share of the estimate retransmissions may take (with video's share, they stay within
/// the estimate).
pub(crate) const RTX_SHARE: f64 = 0.1;
/// On a path that loses packets by itself, retransmissions may spend this long of their
/// share at once: random loss comes in clusters (at 5 %, a second in thirty loses over
/// 10 %), and a cluster's repairs refused for want of a few packets' budget froze the
/// picture until a keyframe came (505 ms). Elsewhere loss is a queue's overflow, and its
/// repairs only deepen the queue: they spend [`BURST_BITS`] at once.
const RTX_WINDOW: f64 = 2.0;
/// Video packets held at most (about a second of 720p at 2 Mbit/s); more are refused.
pub(crate) const QUEUE_LIMIT: usize = 400;
/// Retransmissions held at most.
const RTX_QUEUE_LIMIT: usize = 64;
/// The budget a burst may spend at once, in bits: a few packets, no more.
const BURST_BITS: f64 = 5.0 * 1_250.0 * 8.0;
/// The least time between two releases the pacer asks to be woken for.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Video packets remembered after they leave, to be sent again as probes.
const RECENT: usize = 64;
/// Probe copies asked for and not yet gone, at most this long of the probe's rate (and at
/// least one): a probe fills the link evenly, never in a burst.
const PROBE_AHEAD: Duration = Duration::from_millis(20);

/// What retransmissions sent at `rate` may spend at once (see [`RTX_WINDOW`]).
fn rtx_burst(rate: f64, lossy: bool) -> f64 {
    if lossy {
        (rate * RTX_WINDOW).max(BURST_BITS)
    } else {
        BURST_BITS
    }
}

pub(crate) struct LinkPacer {
    stats: Arc<LinkStats>,
    audio: HashSet<u32>,
    budget: Pacer,
    rtx_budget: Pacer,
    rtx: VecDeque<TaggedPacket>,
    video: VecDeque<TaggedPacket>,
    /// Copies asked for as probes, come back from the responder, waiting to leave.
    probes: VecDeque<TaggedPacket>,
    /// Each video stream's repair SSRC.
    repairs: HashMap<u32, u32>,
    /// Video packets that left, newest last: (SSRC, sequence number, bits).
    recent: VecDeque<(u32, u16, f64)>,
    /// Probe copies asked for, (repair SSRC, the original's sequence number), and when.
    asked: HashMap<(u32, u16), Instant>,
    /// What the link may still put out to reach the probe's rate (while probing).
    fill: Option<Pacer>,
    /// Bits of `rtx` and `video` (probes wait for nothing and hold nothing up).
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
            probes: VecDeque::new(),
            repairs: HashMap::new(),
            recent: VecDeque::new(),
            asked: HashMap::new(),
            fill: None,
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
        self.fit_rtx_burst();
        self.publish_queue();
    }

    /// Brings retransmissions' budget up to `now`, within the burst the path calls for.
    fn refill_rtx(&mut self, now: Instant) {
        self.fit_rtx_burst();
        self.rtx_budget.refill(now);
    }

    /// Gives retransmissions the burst the path calls for now, keeping what they saved up
    /// within it.
    fn fit_rtx_burst(&mut self) {
        let burst = rtx_burst(self.rtx_budget.target_bitrate(), self.stats.lossy());
        if burst != self.rtx_budget.burst_bits() {
            self.rtx_budget = self.rtx_budget.clone().with_burst_bits(burst);
        }
    }

    /// The queue whose head leaves next: retransmissions, then video, then probes.
    fn next_queue(&mut self) -> Option<&mut VecDeque<TaggedPacket>> {
        [&mut self.rtx, &mut self.video, &mut self.probes]
            .into_iter()
            .find(|q| !q.is_empty())
    }

    /// The head of [`Self::next_queue`], taken if the budget lets it leave now.
    fn pop_releasable(&mut self) -> Option<(TaggedPacket, f64)> {
        let bits = Self::bits(self.next_queue()?.front()?);
        if !self.budget.can_release(bits) {
            return None;
        }
        let packet = self.next_queue()?.pop_front()?;
        self.budget.consume(bits);
        Some((packet, bits))
    }

    /// Releases what the budget allows, retransmissions first; then asks for probes.
    fn release(&mut self, now: Instant) {
        self.released = Some(now);
        self.budget.refill(now);
        // Saved up while nothing was lost, for the next cluster of losses.
        self.refill_rtx(now);
        while let Some((mut packet, bits)) = self.pop_releasable() {
            let probe = self.asked_for(&packet);
            if !probe {
                self.queued_bits -= bits;
            }
            if let Packet::Rtp(rtp) = &packet.message.packet {
                if probe {
                    LinkStats::add(&self.stats.sent_probe_bytes, rtp.marshal_size() as u64);
                } else if !packet.message.has(&Attribute::Retransmission) {
                    self.recent
                        .push_back((rtp.header.ssrc, rtp.header.sequence_number, bits));
                    if self.recent.len() > RECENT {
                        self.recent.pop_front();
                    }
                }
            }
            if let Some(fill) = self.fill.as_mut().filter(|_| !probe) {
                fill.consume(bits);
            }
            // It leaves now: what records departures below must see this instant.
            packet.now = now;
            self.out.push_back(packet);
        }
        if self.rtx.is_empty() && self.video.is_empty() {
            self.queued_bits = 0.0;
        }
        self.publish_queue();
        self.ask_for_probes(now);
    }

    /// The probe copy `packet` would be: (repair SSRC, the original's sequence number).
    fn copy_of(packet: &TaggedPacket) -> Option<(u32, u16)> {
        let Packet::Rtp(rtp) = &packet.message.packet else {
            return None;
        };
        let [hi, lo, ..] = rtp.payload[..] else {
            return None;
        };
        packet
            .message
            .has(&Attribute::Retransmission)
            .then_some((rtp.header.ssrc, u16::from_be_bytes([hi, lo])))
    }

    /// Whether `packet` is a probe copy we asked for.
    fn is_probe(&self, packet: &TaggedPacket) -> bool {
        Self::copy_of(packet).is_some_and(|key| self.asked.contains_key(&key))
    }

    /// Whether `packet` is a probe copy (its asking is then forgotten).
    fn asked_for(&mut self, packet: &TaggedPacket) -> bool {
        Self::copy_of(packet).is_some_and(|key| self.asked.remove(&key).is_some())
    }

    /// While probing, with nothing else waiting, asks the responder for copies of what left
    /// last, as much as the probe's rate has room for (paid for now, when asked).
    fn ask_for_probes(&mut self, now: Instant) {
        let target = self.stats.probe() as f64;
        if target <= 0.0 {
            self.fill = None;
            self.asked.clear();
            return;
        }
        // A copy that never came back (no longer in the responder's buffer) is forgotten.
        self.asked
            .retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(1));
        let fill = self
            .fill
            .get_or_insert_with(|| Pacer::new(target).with_burst_bits(BURST_BITS));
        fill.set_target_bitrate(target);
        fill.refill(now);
        if !(self.rtx.is_empty() && self.video.is_empty() && self.probes.is_empty()) {
            return;
        }
        let mut nacks: HashMap<u32, Vec<NackPair>> = HashMap::new();
        let ahead = Self::probe_ahead(target);
        for _ in 0..self.recent.len() {
            if self.asked.len() >= ahead {
                break;
            }
            let Some(&(ssrc, seq, bits)) = self.recent.front() else {
                break;
            };
            if !fill.can_afford(bits) {
                break;
            }
            // Round the recent packets, so each is copied once before any twice.
            self.recent.rotate_left(1);
            let Some(&repair) = self.repairs.get(&ssrc) else {
                continue;
            };
            if self.asked.insert((repair, seq), now).is_some() {
                continue;
            }
            fill.consume(bits);
            nacks.entry(ssrc).or_default().push(NackPair {
                packet_id: seq,
                lost_packets: 0,
            });
        }
        for (media_ssrc, nacks) in nacks {
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc,
                nacks,
            };
            self.read.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
            });
        }
    }

    fn publish_queue(&self) {
        let rate = self.budget.target_bitrate().max(1.0);
        let us = (self.queued_bits.max(0.0) / rate * 1e6) as u64;
        self.stats
            .queue_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    fn head_bits(&self) -> Option<f64> {
        self.rtx
            .front()
            .or(self.video.front())
            .or(self.probes.front())
            .map(Self::bits)
    }

    /// How many probe copies may be asked for ahead at `rate` (full-size packets).
    fn probe_ahead(rate: f64) -> usize {
        let packets = rate * PROBE_AHEAD.as_secs_f64() / wire_bits(1_200);
        (packets as usize).max(1)
    }

    /// When the probe's rate next has room for a copy, while probing with nothing queued.
    fn probe_due(&self) -> Option<Instant> {
        let fill = self.fill.as_ref()?;
        let &(_, _, bits) = self.recent.front()?;
        (self.asked.len() < Self::probe_ahead(fill.target_bitrate())).then_some(())?;
        fill.affordable_at(bits)
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
            if let Some(fill) = self.fill.as_mut() {
                fill.consume(bits);
            }
            self.out.push_back(msg);
        } else if self.is_probe(&msg) {
            self.probes.push_back(msg);
        } else if msg.message.has(&Attribute::Retransmission) {
            self.refill_rtx(now);
            if self.rtx_budget.can_afford(bits) && self.rtx.len() < RTX_QUEUE_LIMIT {
                self.rtx_budget.consume(bits);
                self.queued_bits += bits;
                self.rtx.push_back(msg);
            } else {
                tracing::debug!(
                    queued = self.rtx.len(),
                    budget_bps = self.rtx_budget.target_bitrate() as u64,
                    "retransmission refused"
                );
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
        let head = self
            .head_bits()
            .and_then(|bits| self.budget.releasable_at(bits));
        let at = match head {
            Some(head) => head,
            None => self.probe_due()?,
        };
        Some(self.released.map_or(at, |last| at.max(last + GRANULARITY)))
    }
}

impl Interceptor for LinkPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio.insert(info.ssrc);
        } else if let Some(repair) = info.ssrc_rtx {
            self.repairs.insert(info.ssrc, repair);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio.remove(&info.ssrc);
        self.repairs.remove(&info.ssrc);
        self.recent.retain(|&(ssrc, _, _)| ssrc != info.ssrc);
    }

    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
