//! Each link's fit to its path: what it may send, told by transport-wide feedback, and the
//! interceptors that hold it to that.
//!
//! Every RTP packet carries a transport-wide sequence number; the receiver reports when each
//! arrived (TWCC); the sender's [`estimator::PathEstimator`] reads the bottleneck's queue and
//! its losses from the reports and turns them into an estimate per link. Around it, written
//! here, sans IO and told the time:
//! - [`pacer::LinkPacer`] releases what the link sends at a rate above the estimate, audio
//!   first and at once, retransmissions next within a share of the estimate (a storm of
//!   requests cannot multiply the load), video last;
//! - [`nack::NackAsker`] asks again for a missing packet at most [`nack::MAX_ASKS`] times, one
//!   round trip apart, and never once it is too old to be played;
//! - [`meter::LinkMeter`] counts what leaves and arrives and measures the round trip from
//!   sender and receiver reports.
//!
//! What they learn is shared with the media threads through one [`LinkStats`] per link (plain
//! atomics: the chain runs on webrtc-rs's task, the encoders on threads of their own): the
//! video task reads each link's estimate and queue before every picture.
//!
//! The link's data channel shares the path: while the link carries media (each of its
//! packets brings feedback), its SCTP association is paced inside the estimate
//! ([`data_rate`]: a share of it, or what the media leave if more), the video plans on what
//! the data leaves ([`LinkStats::media_estimate`]), and the estimator counts what the data
//! sent beside what the feedback acknowledges. Without media, nothing tells of a queue and
//! nothing waits in one: the association's own windows govern it.

pub(crate) mod estimator;
pub(crate) mod meter;
pub(crate) mod nack;
pub(crate) mod pacer;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rtc::sctp::SendPace;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    CongestionControlBuilder, Interceptor, NackResponderBuilder, Registry, Slot, StreamInfo,
    TaggedPacket, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

/// The estimate a link starts from, before the first feedback (bits per second).
pub(crate) const INITIAL_ESTIMATE: u64 = 600_000;
/// The least a link is ever told it may send: Opus and a small picture at a low rate.
pub(crate) const MIN_ESTIMATE: u64 = 80_000;
/// The most a link is ever told it may send (video alone never needs it: it bounds what a
/// data channel beside it may take).
pub(crate) const MAX_ESTIMATE: u64 = 50_000_000;
/// The share of the estimate a data channel may take while the link carries media, at
/// least: a file sent during a call goes on, and the video keeps the rest.
pub(crate) const DATA_SHARE: f64 = 0.3;

/// How often a forwarder tells its upstream neighbour the narrowest path below it.
pub(crate) const CAP_EVERY: Duration = Duration::from_millis(500);
/// The most streams a link keeps a cap for (a link carries a few of ours).
const MAX_CAPS: usize = 16;
/// A cap not told again for this long no longer holds (the neighbour stopped passing the
/// stream on, or left).
pub(crate) const CAP_HOLDS: Duration = Duration::from_secs(2);

/// How often a receiver reports what arrived (transport-wide feedback). A queue shows to the
/// sender no sooner than its report: at 100 ms, a probe into a path too narrow for it had
/// built a queue of 80-120 ms before its sender could see it.
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Where the meter sits: wire-ward of every generator (it sees sender reports and
/// retransmissions leave) and of the pacer (it sees the release). The estimate is the
/// pacer's to publish: it reads it on the way in and holds the link to it.
const METER_SLOT: usize = 1_500;

/// What a link's chain has learnt, shared with the media threads.
#[derive(Debug)]
pub(crate) struct LinkStats {
    estimate_bps: AtomicU64,
    rtt_us: AtomicU64,
    queue_us: AtomicU64,
    /// Fraction lost (x 256) in the newest report the peer sent about our streams.
    loss_256: AtomicU64,
    sent_bytes: AtomicU64,
    sent_rtx_bytes: AtomicU64,
    /// Probe copies sent (counted among `sent_rtx_bytes` too: they go on the repair stream).
    sent_probe_bytes: AtomicU64,
    /// The rate the link is filled up to while it probes (0: it does not).
    probe_bps: AtomicU64,
    /// Whether the path loses packets by itself, with no queue standing (the estimator's
    /// word): there, repairs come in clusters and may spend more at once.
    lossy: AtomicBool,
    received_bytes: AtomicU64,
    /// Retransmissions asked for and not sent: over the budget, or no longer useful.
    rtx_refused: AtomicU64,
    /// Video packets refused because the pacer's queue was full.
    dropped: AtomicU64,
    nacks_sent: AtomicU64,
    nacks_given_up: AtomicU64,
    repaired: AtomicU64,
    /// What left and arrived over the last whole second, in bits per second.
    send_bps: AtomicU64,
    receive_bps: AtomicU64,
    /// The picture size each lane (camera, screen) goes out at: width << 32 | height.
    sending: [AtomicU64; 2],
    /// The data channel's pace, shared with its SCTP association.
    data: Arc<SendPace>,
    /// What the data channel sent over the last whole second, in bits per second.
    data_bps: AtomicU64,
    /// The most the peer said it takes of each of our streams it names (REMB; 0: a REMB
    /// that names none, for every stream), and when: a forwarder's narrowest path below it.
    caps: Mutex<std::collections::HashMap<u32, (u64, Instant)>>,
}

impl Default for LinkStats {
    fn default() -> Self {
        Self {
            estimate_bps: AtomicU64::new(INITIAL_ESTIMATE),
            rtt_us: AtomicU64::new(0),
            queue_us: AtomicU64::new(0),
            loss_256: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            sent_rtx_bytes: AtomicU64::new(0),
            sent_probe_bytes: AtomicU64::new(0),
            probe_bps: AtomicU64::new(0),
            lossy: AtomicBool::new(false),
            received_bytes: AtomicU64::new(0),
            rtx_refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            nacks_sent: AtomicU64::new(0),
            nacks_given_up: AtomicU64::new(0),
            repaired: AtomicU64::new(0),
            send_bps: AtomicU64::new(0),
            receive_bps: AtomicU64::new(0),
            sending: [AtomicU64::new(0), AtomicU64::new(0)],
            data: Arc::default(),
            data_bps: AtomicU64::new(0),
            caps: Mutex::default(),
        }
    }
}

/// A copy of a link's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinkFigures {
    pub(crate) estimate_bps: u64,
    pub(crate) rtt: Option<Duration>,
    pub(crate) queue: Duration,
    /// Per mille, as the peer last reported it.
    pub(crate) loss_permille: u32,
    pub(crate) sent_bytes: u64,
    /// Sent again on request (probes not included).
    pub(crate) sent_rtx_bytes: u64,
    /// Sent as probes.
    pub(crate) sent_probe_bytes: u64,
    pub(crate) received_bytes: u64,
    pub(crate) rtx_refused: u64,
    pub(crate) dropped: u64,
    pub(crate) nacks_sent: u64,
    pub(crate) nacks_given_up: u64,
    /// Gaps filled by a retransmission on the repair stream.
    pub(crate) repaired: u64,
    pub(crate) send_bps: u64,
    pub(crate) receive_bps: u64,
    /// What the data channel sent over the last second, and the rate it is paced at (0:
    /// not paced), in bits per second.
    pub(crate) data_bps: u64,
    pub(crate) data_pace_bps: u64,
    /// The picture size (width, height) the camera and the screen go out at, if they do.
    pub(crate) sending: [Option<(u32, u32)>; 2],
}

impl LinkStats {
    /// What the link may send now, in bits per second.
    pub(crate) fn estimate(&self) -> u64 {
        self.estimate_bps.load(Ordering::Relaxed)
    }

    /// What the link's media may plan on now: the estimate less what its data channel
    /// takes (the rate it is paced at while data waits, else what it sent over the last
    /// second), and never less than all but [`DATA_SHARE`] of it. (The data may take more
    /// only where the media leaves it unused: were the media to plan on less for it, the
    /// data would be given more, and the media would shrink on and on.)
    pub(crate) fn media_estimate(&self) -> u64 {
        let estimate = self.estimate();
        let waiting = if self.data.held_bytes() > 0 {
            self.data.rate_bps()
        } else {
            0
        };
        let data = waiting
            .max(self.data_bps.load(Ordering::Relaxed))
            .min((estimate as f64 * DATA_SHARE) as u64);
        estimate.saturating_sub(data).max(MIN_ESTIMATE)
    }

    /// What our stream `ssrc` may plan on at `now`: [`Self::media_estimate`], and no more than
    /// the peer said it takes of that stream (a peer that passes on only some of what we
    /// send it names those).
    pub(crate) fn fitted_estimate_for(&self, ssrc: u32, now: Instant) -> u64 {
        Self::fit(self.media_estimate(), self.cap_for(ssrc, now))
    }

    fn fit(estimate: u64, cap: Option<u64>) -> u64 {
        cap.map_or(estimate, |cap| estimate.min(cap.max(MIN_ESTIMATE)))
    }

    /// The least the peer said it takes of any of our streams, while that holds
    /// ([`CAP_HOLDS`] after it said so).
    pub(crate) fn cap(&self, now: Instant) -> Option<u64> {
        self.least_cap(now, |_| true)
    }

    /// The most the peer said it takes of our stream `ssrc`, while that holds.
    pub(crate) fn cap_for(&self, ssrc: u32, now: Instant) -> Option<u64> {
        self.least_cap(now, |named| named == ssrc || named == 0)
    }

    /// The least of the caps that hold at `now` on the streams `named` takes.
    fn least_cap(&self, now: Instant, named: impl Fn(u32) -> bool) -> Option<u64> {
        let caps = self
            .caps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        caps.iter()
            .filter(|&(&ssrc, &(_, at))| {
                named(ssrc) && now.saturating_duration_since(at) < CAP_HOLDS
            })
            .map(|(_, &(bps, _))| bps)
            .min()
    }

    /// The peer said it takes at most `bps` of the streams `ssrcs` names (of every stream,
    /// if it names none): a REMB that arrived at `now`.
    pub(crate) fn set_cap(&self, bps: u64, ssrcs: &[u32], now: Instant) {
        let mut caps = self
            .caps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        caps.retain(|_, (_, at)| now.saturating_duration_since(*at) < CAP_HOLDS);
        let named = if ssrcs.is_empty() { &[0][..] } else { ssrcs };
        // A REMB names a handful of streams; more is not ours to keep.
        for &ssrc in named.iter().take(MAX_CAPS) {
            if caps.len() < MAX_CAPS || caps.contains_key(&ssrc) {
                caps.insert(ssrc, (bps, now));
            }
        }
    }

    /// The data channel's pace, for its SCTP association.
    pub(crate) fn data_pace(&self) -> Arc<SendPace> {
        Arc::clone(&self.data)
    }

    /// What the data channel sent over the last second, in bits per second.
    pub(crate) fn data_bps(&self) -> u64 {
        self.data_bps.load(Ordering::Relaxed)
    }

    /// Paces the data channel for the estimate and the media as they are now.
    fn pace_data(&self) {
        let media = self.send_bps.load(Ordering::Relaxed);
        self.data.set_rate_bps(data_rate(self.estimate(), media));
    }

    /// How long a video packet queued now waits in the pacer.
    pub(crate) fn queue(&self) -> Duration {
        Duration::from_micros(self.queue_us.load(Ordering::Relaxed))
    }

    /// The rate to fill the link up to while it probes, in bits per second (0: no probe).
    pub(crate) fn probe(&self) -> u64 {
        self.probe_bps.load(Ordering::Relaxed)
    }

    /// Asks the pacer to fill the link up to `bps` while nothing else waits (0 ends it).
    pub(crate) fn set_probe(&self, bps: u64) {
        self.probe_bps.store(bps, Ordering::Relaxed);
    }

    /// Whether the path loses packets by itself (see [`Self::set_lossy`]).
    pub(crate) fn lossy(&self) -> bool {
        self.lossy.load(Ordering::Relaxed)
    }

    /// Says whether the path loses packets with no queue standing.
    pub(crate) fn set_lossy(&self, lossy: bool) {
        self.lossy.store(lossy, Ordering::Relaxed);
    }

    /// The share of packets the path lost over the last second of feedback.
    pub(crate) fn loss(&self) -> f64 {
        self.loss_256.load(Ordering::Relaxed) as f64 / 256.0
    }

    /// The round trip, once a report has measured it.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub(crate) fn figures(&self) -> LinkFigures {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkFigures {
            estimate_bps: get(&self.estimate_bps),
            rtt: self.rtt(),
            queue: self.queue(),
            loss_permille: (get(&self.loss_256) * 1000 / 256) as u32,
            sent_bytes: get(&self.sent_bytes),
            sent_rtx_bytes: get(&self.sent_rtx_bytes).saturating_sub(get(&self.sent_probe_bytes)),
            sent_probe_bytes: get(&self.sent_probe_bytes),
            received_bytes: get(&self.received_bytes),
            rtx_refused: get(&self.rtx_refused),
            dropped: get(&self.dropped),
            nacks_sent: get(&self.nacks_sent),
            nacks_given_up: get(&self.nacks_given_up),
            repaired: get(&self.repaired),
            send_bps: get(&self.send_bps),
            receive_bps: get(&self.receive_bps),
            data_bps: get(&self.data_bps),
            data_pace_bps: self.data.rate_bps(),
            sending: [0, 1].map(|lane| match get(&self.sending[lane]) {
                0 => None,
                packed => Some(((packed >> 32) as u32, packed as u32)),
            }),
        }
    }

    /// Whether our own camera or screen goes out on this link.
    pub(crate) fn sends_video(&self) -> bool {
        self.sending
            .iter()
            .any(|lane| lane.load(Ordering::Relaxed) != 0)
    }

    /// Says at which size a lane (0: camera, 1: screen) goes out on this link.
    pub(crate) fn set_sending(&self, lane: usize, size: Option<(u32, u32)>) {
        let packed = size.map_or(0, |(w, h)| (u64::from(w) << 32) | u64::from(h));
        if let Some(slot) = self.sending.get(lane) {
            slot.store(packed, Ordering::Relaxed);
        }
    }

    fn set_estimate(&self, bits_per_second: f64) {
        let bps = (bits_per_second.max(0.0) as u64).clamp(MIN_ESTIMATE, MAX_ESTIMATE);
        self.estimate_bps.store(bps, Ordering::Relaxed);
        self.pace_data();
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// When a forwarder last told each upstream neighbour the narrowest path below it.
///
/// A peer that passes a stream on (down a tree, or across cells) tells the neighbour it
/// takes it from, as a REMB on that link, what the narrowest of the links it passes it to
/// may plan on ([`LinkStats::fitted_estimate_for`], which holds what their own peers told
/// in turn). The sender plans that link's media on no more, so what it sends fits every path
/// below, not only its own. Sans IO, told the time.
#[derive(Debug)]
pub(crate) struct CapReports<K> {
    last: std::collections::HashMap<K, Instant>,
}

impl<K> Default for CapReports<K> {
    fn default() -> Self {
        Self {
            last: std::collections::HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash> CapReports<K> {
    /// The cap due to `upstream` at `now`, if one is (at most one each [`CAP_EVERY`]): the
    /// least of what the links `below` may carry of the stream (bits per second; what each
    /// may plan on, [`LinkStats::fitted_estimate_for`], or the share of it the stream has).
    /// `None` while nothing is below: the cap told before then lapses ([`CAP_HOLDS`]).
    pub(crate) fn due(
        &mut self,
        upstream: &K,
        below: impl IntoIterator<Item = u64>,
        now: Instant,
    ) -> Option<u64> {
        let recent = self
            .last
            .get(upstream)
            .is_some_and(|&at| now.saturating_duration_since(at) < CAP_EVERY);
        if recent {
            return None;
        }
        let narrowest = below.into_iter().min()?;
        self.last.insert(upstream.clone(), now);
        Some(narrowest)
    }

    /// Forgets `peer` (its link went).
    pub(crate) fn forget(&mut self, peer: &K) {
        self.last.remove(peer);
    }
}

/// The interceptors of one link: reports (RFC 3550), transport-wide feedback both ways, the
/// estimator, our pacer, NACK asked for by our rules and answered from a send buffer, and the
/// meter. Registers what the SDP must say for them (the transport-wide header extension and
/// `transport-cc` feedback on audio and video; the simulcast extensions the defaults carry).
pub(crate) fn chain(
    media: &mut MediaEngine,
    stats: &Arc<LinkStats>,
) -> Result<Registry, rtc::shared::error::Error> {
    configure_simulcast_extension_headers(media)?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        media.register_feedback(
            RTCPFeedback {
                typ: "transport-cc".to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            None,
        )?;
    }
    let estimator = estimator::PathEstimator::new(
        INITIAL_ESTIMATE as f64,
        MIN_ESTIMATE as f64,
        MAX_ESTIMATE as f64,
    )
    .watching(Arc::clone(stats));
    let registry = configure_rtcp_reports(Registry::new())
        .with(
            Slot::CongestionControl,
            RepairsNumbered(CongestionControlBuilder::new(estimator).build()),
        )
        .with(
            Slot::from(METER_SLOT),
            meter::LinkMeter::new(Arc::clone(stats)),
        )
        .with(
            Slot::TwccSender,
            RepairsNumbered(TwccSenderBuilder::new().build()),
        )
        .with(Slot::Pacer, pacer::LinkPacer::new(Arc::clone(stats)))
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::NackGenerator, nack::NackAsker::new(Arc::clone(stats)))
        .with(
            Slot::TwccReceiver,
            TwccReceiverBuilder::new()
                .with_interval(FEEDBACK_INTERVAL)
                .build(),
        );
    Ok(registry)
}

/// The transport-wide numbering and the estimator's send history, extended to each stream's
/// repair SSRC (RTX): a retransmission (or a probe) is a transmission like any other, and the
/// estimator must see it arrive. The tagger numbers, and the send history records, only the
/// SSRCs bound to them; this binds the repair SSRC beside its stream. (Without it in the send
/// history, the repair stream's bytes queued at the bottleneck unseen: the estimator read
/// the path's rate as what the media alone got through, and cut below it again and again.)
struct RepairsNumbered<I>(I);

impl<I> RepairsNumbered<I> {
    /// `info` as its repair stream, if it has one.
    fn repair(info: &StreamInfo) -> Option<StreamInfo> {
        info.ssrc_rtx.map(|ssrc| StreamInfo {
            ssrc,
            ssrc_rtx: None,
            payload_type: info.payload_type_rtx.unwrap_or(info.payload_type),
            ..info.clone()
        })
    }
}

impl<I: Interceptor> rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RepairsNumbered<I> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_read(msg)
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.0.poll_read()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_write(msg)
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.0.poll_write()
    }
    fn handle_timeout(&mut self, now: std::time::Instant) -> Result<(), Self::Error> {
        self.0.handle_timeout(now)
    }
    fn poll_timeout(&mut self) -> Option<std::time::Instant> {
        self.0.poll_timeout()
    }
}

impl<I: Interceptor> Interceptor for RepairsNumbered<I> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.0.bind_local_stream(info);
        if let Some(repair) = Self::repair(info) {
            self.0.bind_local_stream(&repair);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_local_stream(info);
        if let Some(repair) = Self::repair(info) {
            self.0.unbind_local_stream(&repair);
        }
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.bind_remote_stream(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_remote_stream(info);
    }
}

/// The rate a link's data channel may go at (bits per second; 0: not paced), for an
/// estimate and the rate its media went at over the last second. Without media nothing
/// reports a queue, and the association's own congestion control is left to find the path
/// (nothing of ours waits in its queue). With media, even a voice alone (measured: a file
/// sent unpaced during a voice call over 400 kbit/s put 484 kbit/s on the wire and a 65 ms
/// hole in the voice), the data gets [`DATA_SHARE`] of the estimate, or what the media
/// leave if more; what it sends counts as acknowledged, so the estimate grows with it.
pub(crate) fn data_rate(estimate: u64, media_bps: u64) -> u64 {
    if media_bps == 0 {
        return 0;
    }
    let share = (estimate as f64 * DATA_SHARE) as u64;
    share.max(estimate.saturating_sub(media_bps))
}

/// The bits a packet takes on the wire, RTP and below (UDP, IP, SRTP's tag), as a shaper
/// counts them.
pub(crate) fn wire_bits(rtp_bytes: usize) -> f64 {
    /// IPv4 20 + UDP 8 + SRTP auth tag 10.
    const BELOW_RTP: usize = 38;
    ((rtp_bytes + BELOW_RTP) * 8) as f64
}
