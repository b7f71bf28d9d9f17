//! The link's meter: bytes out (first sends and retransmissions apart) and in, the loss on
//! the path, and the round trip. Loss is read from transport-wide feedback once the peer
//! sends it (each packet's fate, first sends and retransmissions alike, over the last
//! second); reception reports count a retransmitted packet as received, so they only stand in
//! until then. The round trip: a reception report names our
//! sender report it answers (its NTP middle 32 bits) and how long the peer held it, so the
//! round trip is the time since we sent that report less the peer's hold.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};
use rtc::shared::marshal::MarshalSize;

use super::LinkStats;

/// Sender reports remembered for matching (one a second per stream: several seconds' worth).
const REMEMBERED: usize = 32;
/// Rates are what went by over this long.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Bytes over a window of time, published as a rate when the window closes.
#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    bytes: u64,
}

impl Window {
    /// Counts `bytes` at `now`; the rate of the window that closed, if one did.
    fn add(&mut self, now: Instant, bytes: u64) -> Option<u64> {
        self.start.get_or_insert(now);
        let closed = self.close_due(now);
        self.bytes += bytes;
        closed
    }

    /// Closes the window if it is due, with or without traffic (a link that went quiet
    /// reads 0, not its last busy second): its rate.
    fn close_due(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.start?);
        (elapsed >= RATE_WINDOW).then(|| {
            let rate = self.bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
            self.start = Some(now);
            self.bytes = 0;
            rate
        })
    }

    /// When the window is due to close, once it has started.
    fn due(&self) -> Option<Instant> {
        self.start.map(|start| start + RATE_WINDOW)
    }
}

pub(crate) struct LinkMeter {
    stats: Arc<LinkStats>,
    local: HashSet<u32>,
    /// Our sender reports: (NTP middle 32 bits, when it left).
    sent_reports: VecDeque<(u32, Instant)>,
    sent: Window,
    received: Window,
    /// The data channel's bytes, as its association counts them, and how many of them
    /// `data` has counted.
    data: Window,
    data_counted: u64,
    /// (when, packets reported, packets lost) of each transport-wide feedback of the last
    /// [`RATE_WINDOW`]; empty until the first.
    fates: VecDeque<(Instant, u64, u64)>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl LinkMeter {
    pub(crate) fn new(stats: Arc<LinkStats>) -> Self {
        Self {
            stats,
            local: HashSet::new(),
            sent_reports: VecDeque::new(),
            sent: Window::default(),
            received: Window::default(),
            data: Window::default(),
            data_counted: 0,
            fates: VecDeque::new(),
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// A transport-wide feedback: the share of packets lost over the last second.
    fn fates(&mut self, now: Instant, feedback: &TransportLayerCc) {
        let (reported, lost) = packet_fates(feedback);
        self.fates.push_back((now, reported, lost));
        while self
            .fates
            .front()
            .is_some_and(|(at, ..)| now.saturating_duration_since(*at) >= RATE_WINDOW)
        {
            self.fates.pop_front();
        }
        let (reported, lost) = self
            .fates
            .iter()
            .fold((0, 0), |(r, l), (_, reported, lost)| {
                (r + reported, l + lost)
            });
        if let Some(share) = (lost * 256).checked_div(reported) {
            self.stats.loss_256.store(share, Ordering::Relaxed);
        }
    }

    fn reception(&mut self, now: Instant, reports: &[ReceptionReport]) {
        for report in reports.iter().filter(|r| self.local.contains(&r.ssrc)) {
            if self.fates.is_empty() {
                self.stats
                    .loss_256
                    .store(u64::from(report.fraction_lost), Ordering::Relaxed);
            }
            if report.last_sender_report == 0 {
                continue;
            }
            let Some(&(_, sent)) = self
                .sent_reports
                .iter()
                .find(|(mid, _)| *mid == report.last_sender_report)
            else {
                continue;
            };
            // DLSR is in 1/65536 s.
            let held = Duration::from_micros(u64::from(report.delay) * 1_000_000 / 65_536);
            let Some(rtt) = now.saturating_duration_since(sent).checked_sub(held) else {
                continue;
            };
            let rtt = rtt.max(Duration::from_micros(100));
            // Smoothed by an eighth, as TCP does.
            let smoothed = match self.stats.rtt() {
                None => rtt,
                Some(old) => (old * 7 + rtt) / 8,
            };
            let us = u64::try_from(smoothed.as_micros()).unwrap_or(u64::MAX);
            self.stats.rtt_us.store(us.max(1), Ordering::Relaxed);
        }
    }
}

/// How many packets a transport-wide feedback reports, and how many of them as lost (the
/// last chunk's padding past the count is not a packet).
pub(crate) fn packet_fates(feedback: &TransportLayerCc) -> (u64, u64) {
    let count = u64::from(feedback.packet_status_count);
    let (mut seen, mut lost) = (0u64, 0u64);
    for chunk in &feedback.packet_chunks {
        let (n, missing) = match chunk {
            PacketStatusChunk::RunLengthChunk(run) => {
                let n = u64::from(run.run_length).min(count - seen);
                let missing = if run.packet_status_symbol == SymbolTypeTcc::PacketNotReceived {
                    n
                } else {
                    0
                };
                (n, missing)
            }
            PacketStatusChunk::StatusVectorChunk(vector) => {
                let n = (vector.symbol_list.len() as u64).min(count - seen);
                let missing = vector
                    .symbol_list
                    .iter()
                    .take(n as usize)
                    .filter(|s| **s == SymbolTypeTcc::PacketNotReceived)
                    .count() as u64;
                (n, missing)
            }
        };
        seen += n;
        lost += missing;
    }
    (seen, lost)
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for LinkMeter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtp(rtp) => {
                let bytes = rtp.marshal_size() as u64;
                LinkStats::add(&self.stats.received_bytes, bytes);
                if let Some(bps) = self.received.add(msg.now, bytes) {
                    self.stats.receive_bps.store(bps, Ordering::Relaxed);
                }
            }
            Packet::Rtcp(packets) => {
                for packet in packets {
                    let any = packet.as_any();
                    if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                        self.reception(msg.now, &rr.reports);
                    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                        self.reception(msg.now, &sr.reports);
                    } else if let Some(feedback) = any.downcast_ref::<TransportLayerCc>() {
                        self.fates(msg.now, feedback);
                    }
                }
            }
            _ => {}
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtp(rtp) => {
                let bytes = rtp.marshal_size() as u64;
                LinkStats::add(&self.stats.sent_bytes, bytes);
                if let Some(bps) = self.sent.add(msg.now, bytes) {
                    self.stats.send_bps.store(bps, Ordering::Relaxed);
                }
                self.measure_data(msg.now);
                if msg.message.has(&Attribute::Retransmission) {
                    LinkStats::add(&self.stats.sent_rtx_bytes, bytes);
                }
            }
            Packet::Rtcp(packets) => {
                for sr in packets
                    .iter()
                    .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                {
                    let mid = (sr.ntp_time >> 16) as u32;
                    self.sent_reports.push_back((mid, msg.now));
                    if self.sent_reports.len() > REMEMBERED {
                        self.sent_reports.pop_front();
                    }
                }
            }
            _ => {}
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if let Some(bps) = self.sent.close_due(now) {
            self.stats.send_bps.store(bps, Ordering::Relaxed);
        }
        self.measure_data(now);
        if let Some(bps) = self.received.close_due(now) {
            self.stats.receive_bps.store(bps, Ordering::Relaxed);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        [self.sent.due(), self.received.due(), self.data.due()]
            .into_iter()
            .flatten()
            .min()
    }
}

impl LinkMeter {
    /// Publishes what the data channel sent over the window that closed, if one did, and
    /// paces it anew for the media as they went over it.
    fn measure_data(&mut self, now: Instant) {
        let sent = self.stats.data.sent_bytes();
        let new = sent.saturating_sub(self.data_counted);
        self.data_counted = sent;
        if let Some(bps) = self.data.add(now, new) {
            self.stats.data_bps.store(bps, Ordering::Relaxed);
            self.stats.pace_data();
        }
    }
}

impl Interceptor for LinkMeter {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.local.insert(info.ssrc);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.local.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
