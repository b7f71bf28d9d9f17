//! The link's meter: bytes out (first sends and retransmissions apart) and in, the loss the
//! peer reports, and the round trip: a reception report names our
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
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        let closed = (elapsed >= RATE_WINDOW).then(|| {
            let rate = self.bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
            self.start = Some(now);
            self.bytes = 0;
            rate
        });
        self.bytes += bytes;
        closed
    }
}

pub(crate) struct LinkMeter {
    stats: Arc<LinkStats>,
    local: HashSet<u32>,
    /// Our sender reports: (NTP middle 32 bits, when it left).
    sent_reports: VecDeque<(u32, Instant)>,
    sent: Window,
    received: Window,
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
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    fn reception(&mut self, now: Instant, reports: &[ReceptionReport]) {
        for report in reports.iter().filter(|r| self.local.contains(&r.ssrc)) {
            self.stats
                .loss_256
                .store(u64::from(report.fraction_lost), Ordering::Relaxed);
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
