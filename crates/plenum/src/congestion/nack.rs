//! Asking for what did not arrive, without making a storm of it: a missing packet is asked
//! for after a short wait for reordering, then again at most [`MAX_ASKS`] times in all, the
//! first repeat a round trip later (a request sooner than the answer could come only doubles
//! the load) and each next one twice as long after the last, up to a quarter of [`MAX_AGE`];
//! it is given up once it is older than that (the frame it belongs to has been given up by
//! then). The growing gaps spread the asks over the time the frame can wait: on a short
//! round trip, three asks one round trip apart were all spent within 75 ms, while a queue
//! that had grown on the path still held the first answer, and the packet was given up with
//! most of its 400 ms still to run.
//!
//! A retransmission may come on the stream's repair SSRC (RTX, RFC 4588): its payload starts
//! with the sequence number it repairs, and that number counts as arrived on the original
//! stream, so it is not asked for again.
//!
//! The round trip that spaces the asks is the time a first ask took to be answered, when
//! one has been: a peer that only receives sends no sender reports, so the reports never
//! measure its round trip, and the 100 ms assumed instead left a lost retransmission
//! unasked-for until the frame waiting for it had frozen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::shared::TransportContext;

use super::LinkStats;

/// Times a packet is asked for at most.
pub(crate) const MAX_ASKS: u8 = 6;
/// A packet missing longer than this is given up (the reassembler waits as long for a hole).
pub(crate) const MAX_AGE: Duration = Duration::from_millis(400);
/// How long a gap may be reordering before it is asked for.
const REORDER_WAIT: Duration = Duration::from_millis(5);
/// The round trip assumed before one is measured.
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Requests are spaced by the round trip plus this.
const RTT_MARGIN: Duration = Duration::from_millis(10);
/// How often missing packets are looked at while there are any.
const TICK: Duration = Duration::from_millis(10);
/// A jump of more sequence numbers than this is a new start, not a loss.
const MAX_GAP: u64 = 1_000;
/// Missing packets tracked per stream at most (the oldest are given up first).
const MAX_MISSING: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Missing {
    since: Instant,
    asks: u8,
    last_ask: Option<Instant>,
}

#[derive(Debug, Default)]
struct Stream {
    /// The highest sequence number seen, extended past wraps.
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
}

impl Stream {
    fn arrived(&mut self, seq: u16, now: Instant) {
        let ext = crate::reassembly::extend_seq(self.highest, seq);
        match self.highest {
            None => self.highest = Some(ext),
            Some(highest) if ext > highest => {
                if ext - highest > MAX_GAP {
                    self.missing.clear();
                } else {
                    for lost in highest + 1..ext {
                        self.missing.insert(
                            lost,
                            Missing {
                                since: now,
                                asks: 0,
                                last_ask: None,
                            },
                        );
                    }
                    while self.missing.len() > MAX_MISSING {
                        self.missing.pop_first();
                    }
                }
                self.highest = Some(ext);
            }
            Some(_) => {
                self.missing.remove(&ext);
            }
        }
    }

    /// A retransmission of `seq` came on the repair stream: it is no longer missing. It never
    /// moves the highest sequence number on (a repair is of something already seen missing).
    /// Returns what was missing, if it was.
    fn repaired(&mut self, seq: u16) -> Option<Missing> {
        let ext = crate::reassembly::extend_seq(Some(self.highest?), seq);
        self.missing.remove(&ext)
    }
}

/// The original stream a repair stream belongs to.
#[derive(Debug, Clone, Copy)]
struct Repair {
    primary: u32,
    payload_type: u8,
}

pub(crate) struct NackAsker {
    stats: Arc<LinkStats>,
    streams: HashMap<u32, Stream>,
    /// Repair (RTX) SSRCs, each to its original stream.
    repairs: HashMap<u32, Repair>,
    /// How long a first ask took to be answered: the longest lately, decaying slowly.
    answer_time: Option<Duration>,
    next: Option<Instant>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl NackAsker {
    pub(crate) fn new(stats: Arc<LinkStats>) -> Self {
        Self {
            stats,
            streams: HashMap::new(),
            repairs: HashMap::new(),
            answer_time: None,
            next: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// Asks for what is due on every stream, gives up what is too old or asked enough.
    fn ask(&mut self, now: Instant) {
        let rtt = self.answer_time.or(self.stats.rtt()).unwrap_or(DEFAULT_RTT);
        let spacing = rtt + RTT_MARGIN;
        // The gap before the ask after `asks`: one spacing, doubling, capped (never below one).
        let longest = spacing.max(MAX_AGE / 4);
        let gap = |asks: u8| (spacing * (1u32 << asks.saturating_sub(1).min(8))).min(longest);
        let mut given_up = 0u64;
        for (&ssrc, stream) in &mut self.streams {
            let mut due = Vec::new();
            stream.missing.retain(|&seq, m| {
                let stale = now.saturating_duration_since(m.since) > MAX_AGE;
                if stale || m.asks >= MAX_ASKS {
                    tracing::trace!(seq, asks = m.asks, stale, "missing packet given up");
                    given_up += 1;
                    return false;
                }
                let ready = match m.last_ask {
                    None => now.saturating_duration_since(m.since) >= REORDER_WAIT,
                    Some(last) => now.saturating_duration_since(last) >= gap(m.asks),
                };
                if ready {
                    m.asks += 1;
                    m.last_ask = Some(now);
                    due.push(seq as u16);
                }
                true
            });
            if due.is_empty() {
                continue;
            }
            LinkStats::add(&self.stats.nacks_sent, due.len() as u64);
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(&due),
            };
            self.write.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
            });
        }
        LinkStats::add(&self.stats.nacks_given_up, given_up);
        let waiting = self.streams.values().any(|s| !s.missing.is_empty());
        self.next = waiting.then_some(now + TICK);
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for NackAsker {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(rtp) = &msg.message.packet {
            if let Some(stream) = self.streams.get_mut(&rtp.header.ssrc) {
                stream.arrived(rtp.header.sequence_number, msg.now);
                if self.next.is_none() && !stream.missing.is_empty() {
                    self.next = Some(msg.now + REORDER_WAIT);
                }
            } else if let Some(repair) = self.repairs.get(&rtp.header.ssrc)
                && rtp.header.payload_type == repair.payload_type
                && let [hi, lo, ..] = rtp.payload[..]
                && let Some(stream) = self.streams.get_mut(&repair.primary)
                && let Some(missing) = stream.repaired(u16::from_be_bytes([hi, lo]))
            {
                LinkStats::add(&self.stats.repaired, 1);
                // Asked once: the answer says how long an ask takes.
                if let (1, Some(asked)) = (missing.asks, missing.last_ask) {
                    let took = msg.now.saturating_duration_since(asked);
                    // Up at once (a queue grew: asks sooner than it drains are wasted),
                    // down slowly.
                    self.answer_time = Some(match self.answer_time {
                        Some(smoothed) if took < smoothed => (smoothed * 7 + took) / 8,
                        _ => took,
                    });
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if self.next.is_some_and(|next| now >= next) {
            self.ask(now);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.next
    }
}

impl Interceptor for NackAsker {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        // A repair stream is bound in its own right too, after its original: it is not asked
        // for (what it carries is).
        if self.repairs.contains_key(&info.ssrc) {
            return;
        }
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|f| f.typ == "nack" && f.parameter.is_empty());
        if nack {
            self.streams.insert(info.ssrc, Stream::default());
            if let (Some(ssrc), Some(payload_type)) = (info.ssrc_rtx, info.payload_type_rtx) {
                let primary = info.ssrc;
                self.repairs.insert(
                    ssrc,
                    Repair {
                        primary,
                        payload_type,
                    },
                );
            }
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if self.streams.remove(&info.ssrc).is_some()
            && let Some(ssrc) = info.ssrc_rtx
        {
            self.repairs.remove(&ssrc);
        }
    }

    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
}
