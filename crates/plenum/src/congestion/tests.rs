//! The link's interceptors on a virtual clock: packets in, what leaves and when.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, RTCPFeedback, StreamInfo, TaggedPacket,
};
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;

use super::meter::LinkMeter;
use super::nack::{MAX_AGE, MAX_ASKS, NackAsker};
use super::pacer::{LinkPacer, PACING_FACTOR};
use super::{LinkStats, wire_bits};

const AUDIO: u32 = 111;
const VIDEO: u32 = 96;

fn stream(ssrc: u32, mime: &str) -> StreamInfo {
    StreamInfo {
        ssrc,
        mime_type: mime.to_owned(),
        rtcp_feedback: vec![RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        }],
        ..Default::default()
    }
}

fn rtp(ssrc: u32, seq: u16, payload: usize, now: Instant) -> TaggedPacket {
    let packet = rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            ssrc,
            sequence_number: seq,
            ..Default::default()
        },
        payload: vec![0u8; payload].into(),
    };
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(Packet::Rtp(packet)),
    }
}

fn rtcp(packet: impl rtc::rtcp::Packet + 'static, now: Instant) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(packet)])),
    }
}

fn estimate(bps: f64, now: Instant) -> TaggedPacket {
    let mut msg = rtcp(receiver_report(ReceptionReport::default()), now);
    msg.message.add(Attribute::TargetBitrateChanged {
        bits_per_second: bps,
    });
    msg
}

/// A receiver report holding `report` (an empty one carries an attribute).
fn receiver_report(report: ReceptionReport) -> rtc::rtcp::receiver_report::ReceiverReport {
    rtc::rtcp::receiver_report::ReceiverReport {
        ssrc: 9,
        reports: vec![report],
        ..Default::default()
    }
}

fn drain_writes<P: Protocol<TaggedPacket, TaggedPacket, (), Wout = TaggedPacket>>(
    p: &mut P,
) -> Vec<TaggedPacket> {
    std::iter::from_fn(|| p.poll_write()).collect()
}

/// Runs `p`'s timers from `from` to `to`, collecting (when, packet) of what it writes.
fn run_until<P>(p: &mut P, from: Instant, to: Instant) -> Vec<(Instant, TaggedPacket)>
where
    P: Protocol<TaggedPacket, TaggedPacket, (), Wout = TaggedPacket, Time = Instant>,
    P::Error: std::fmt::Debug,
{
    let mut out: Vec<_> = drain_writes(p).into_iter().map(|m| (from, m)).collect();
    let mut last: Option<Instant> = None;
    while let Some(at) = p.poll_timeout() {
        // A deadline passed while nobody called is handled now; one that does not move on
        // after it was handled would spin whoever drives the chain.
        let at = at.max(from);
        assert!(
            last.is_none_or(|last| at > last),
            "the deadline did not move on"
        );
        if at > to {
            break;
        }
        last = Some(at);
        p.handle_timeout(at).expect("timeout");
        out.extend(drain_writes(p).into_iter().map(|m| (at, m)));
    }
    out
}

fn ssrc_of(msg: &TaggedPacket) -> Option<u32> {
    match &msg.message.packet {
        Packet::Rtp(p) => Some(p.header.ssrc),
        _ => None,
    }
}

#[test]
fn the_pacer_holds_video_to_its_rate_and_lets_audio_through_at_once() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut pacer = LinkPacer::new(Arc::clone(&stats));
    pacer.bind_local_stream(&stream(AUDIO, "audio/opus"));
    pacer.bind_local_stream(&stream(VIDEO, "video/VP8"));
    pacer.handle_read(estimate(500_000.0, t0)).unwrap();
    assert_eq!(stats.estimate(), 500_000);

    // A keyframe of 60 packets of 1,200 bytes: 0.6 Mbit, more than a second at 500 kbit/s.
    for seq in 0..60 {
        pacer.handle_write(rtp(VIDEO, seq, 1_200, t0)).unwrap();
    }
    let first = drain_writes(&mut pacer).len();
    assert!(first < 10, "{first} packets burst out at once");
    assert!(
        stats.queue() > Duration::from_millis(500),
        "{:?}",
        stats.queue()
    );

    // Audio queued behind it leaves at once.
    pacer.handle_write(rtp(AUDIO, 0, 100, t0)).unwrap();
    let out = drain_writes(&mut pacer);
    assert_eq!(out.len(), 1);
    assert_eq!(ssrc_of(&out[0]), Some(AUDIO));

    let released = run_until(&mut pacer, t0, t0 + Duration::from_secs(5));
    assert_eq!(released.len() + first, 60, "everything leaves in the end");
    let last = released.last().expect("released").0;
    let bits = 60.0 * wire_bits(1_212);
    let rate = bits / last.duration_since(t0).as_secs_f64();
    assert!(
        (500_000.0..=500_000.0 * PACING_FACTOR * 1.1).contains(&rate),
        "paced at {rate:.0} bit/s"
    );
    assert_eq!(stats.queue(), Duration::ZERO);
}

#[test]
fn retransmissions_beyond_their_share_of_the_estimate_are_refused() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut pacer = LinkPacer::new(Arc::clone(&stats));
    pacer.bind_local_stream(&stream(VIDEO, "video/VP8"));
    pacer.handle_read(estimate(300_000.0, t0)).unwrap();
    // A storm: 200 retransmissions asked for at once.
    for seq in 0..200 {
        pacer.handle_write(resent(seq, seq, 1_200, t0)).unwrap();
    }
    let sent = run_until(&mut pacer, t0, t0 + Duration::from_secs(2)).len();
    let refused = stats.figures().rtx_refused;
    assert_eq!(sent as u64 + refused, 200);
    assert!(sent <= 8, "{sent} retransmissions of a storm sent");
}

#[test]
fn a_cluster_of_random_losses_is_repaired_whole_and_a_queues_overflow_is_not() {
    assert_eq!(repaired_of_a_cluster(true), 12);
    // Loss from a queue's overflow: its repairs would only deepen the queue.
    assert!(repaired_of_a_cluster(false) < 8);
}

/// How many of twelve packets lost over 400 ms at 800 kbit/s are sent again, on a path
/// that loses packets by itself (`lossy`) or not.
fn repaired_of_a_cluster(lossy: bool) -> usize {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    stats.set_lossy(lossy);
    let mut pacer = LinkPacer::new(Arc::clone(&stats));
    pacer.bind_local_stream(&stream(VIDEO, "video/VP8"));
    pacer.handle_read(estimate(800_000.0, t0)).unwrap();
    // The link has been sending a while: its budget has filled.
    pacer.handle_timeout(t0).unwrap();
    let start = t0 + Duration::from_secs(3);
    pacer.handle_timeout(start).unwrap();
    let mut sent = 0;
    for n in 0..12u16 {
        let at = start + Duration::from_millis(33) * u32::from(n);
        pacer.handle_write(resent(n, n, 1_200, at)).unwrap();
        sent += run_until(&mut pacer, at, at + Duration::from_millis(33)).len();
    }
    assert_eq!(stats.figures().rtx_refused, 12 - sent as u64);
    sent
}

/// A retransmission (of packet `original`) as the responder hands it to the pacer, `bytes`
/// long on the repair stream.
fn resent(seq: u16, original: u16, bytes: usize, now: Instant) -> TaggedPacket {
    let mut msg = repair(VIDEO_REPAIR, 97, seq, original, now);
    if let Packet::Rtp(p) = &mut msg.message.packet {
        let mut payload = original.to_be_bytes().to_vec();
        payload.resize(bytes, 0);
        p.payload = payload.into();
    }
    msg.message.add(Attribute::Retransmission);
    msg
}

const VIDEO_REPAIR: u32 = 97_001;

#[test]
fn retransmissions_go_before_new_video() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut pacer = LinkPacer::new(Arc::clone(&stats));
    pacer.bind_local_stream(&stream(VIDEO, "video/VP8"));
    pacer.handle_read(estimate(1_000_000.0, t0)).unwrap();
    for seq in 0..30 {
        pacer.handle_write(rtp(VIDEO, seq, 1_200, t0)).unwrap();
    }
    pacer.handle_write(resent(1000, 1000, 1_200, t0)).unwrap();
    let order: Vec<u16> = run_until(&mut pacer, t0, t0 + Duration::from_secs(1))
        .iter()
        .filter_map(|(_, m)| match &m.message.packet {
            Packet::Rtp(p) => Some(p.header.sequence_number),
            _ => None,
        })
        .collect();
    let at = order.iter().position(|s| *s == 1000).expect("sent");
    assert!(at < 8, "the retransmission left {at}th: {order:?}");
}

fn nacked(msgs: &[(Instant, TaggedPacket)]) -> Vec<(Instant, Vec<u16>)> {
    msgs.iter()
        .filter_map(|(at, m)| match &m.message.packet {
            Packet::Rtcp(ps) => ps[0]
                .as_any()
                .downcast_ref::<TransportLayerNack>()
                .map(|n| {
                    let seqs = n.nacks.iter().flat_map(|p| p.packet_list()).collect();
                    (*at, seqs)
                }),
            _ => None,
        })
        .collect()
}

#[test]
fn a_missing_packet_is_asked_for_a_few_times_a_round_trip_apart_then_given_up() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    stats
        .rtt_us
        .store(200_000, std::sync::atomic::Ordering::Relaxed);
    let mut asker = NackAsker::new(Arc::clone(&stats));
    asker.bind_remote_stream(&stream(VIDEO, "video/VP8"));
    for seq in [10u16, 11, 13] {
        asker.handle_read(rtp(VIDEO, seq, 100, t0)).unwrap();
    }
    let asks = nacked(&run_until(&mut asker, t0, t0 + Duration::from_secs(2)));
    assert!(!asks.is_empty(), "12 was never asked for");
    assert!(asks.iter().all(|(_, seqs)| seqs == &[12]), "{asks:?}");
    // 200 ms apart: the asks that fit in the age limit, at most MAX_ASKS.
    assert_eq!(asks.len(), usize::from(MAX_ASKS).min(2), "{asks:?}");
    for pair in asks.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_millis(200));
    }
    assert!(asks.iter().all(|(at, _)| *at - t0 <= MAX_AGE));
    assert_eq!(stats.figures().nacks_given_up, 1);
    assert_eq!(asker.poll_timeout(), None, "nothing left to look at");
}

#[test]
fn a_packet_that_arrives_late_is_not_asked_for_again() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut asker = NackAsker::new(Arc::clone(&stats));
    asker.bind_remote_stream(&stream(VIDEO, "video/VP8"));
    asker.handle_read(rtp(VIDEO, 65_534, 100, t0)).unwrap();
    // Across the wrap: 65535 and 0 missing.
    asker.handle_read(rtp(VIDEO, 1, 100, t0)).unwrap();
    let first = nacked(&run_until(&mut asker, t0, t0 + Duration::from_millis(20)));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, vec![65_535, 0]);
    // The retransmission of 65535 comes; only 0 is asked for again.
    let t1 = t0 + Duration::from_millis(50);
    asker.handle_read(rtp(VIDEO, 65_535, 100, t1)).unwrap();
    let again = nacked(&run_until(&mut asker, t1, t0 + Duration::from_millis(300)));
    assert!(!again.is_empty());
    assert!(again.iter().all(|(_, s)| s == &[0]), "{again:?}");
}

#[test]
fn a_jump_in_sequence_numbers_is_a_new_start_not_a_thousand_losses() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut asker = NackAsker::new(Arc::clone(&stats));
    asker.bind_remote_stream(&stream(VIDEO, "video/VP8"));
    asker.handle_read(rtp(VIDEO, 100, 100, t0)).unwrap();
    asker.handle_read(rtp(VIDEO, 30_000, 100, t0)).unwrap();
    let asks = nacked(&run_until(&mut asker, t0, t0 + Duration::from_secs(1)));
    assert!(asks.is_empty(), "{asks:?}");
}

#[test]
fn the_round_trip_is_measured_from_a_report_on_our_sender_report() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut meter = LinkMeter::new(Arc::clone(&stats));
    meter.bind_local_stream(&stream(VIDEO, "video/VP8"));
    let ntp: u64 = 0x1234_5678_9abc_def0;
    let sr = SenderReport {
        ssrc: VIDEO,
        ntp_time: ntp,
        ..Default::default()
    };
    meter.handle_write(rtcp(sr, t0)).unwrap();
    assert_eq!(stats.rtt(), None);
    // The peer held it 50 ms (3,277 / 65,536 s) and answered; it came back 130 ms later.
    let report = ReceptionReport {
        ssrc: VIDEO,
        fraction_lost: 64,
        last_sender_report: (ntp >> 16) as u32,
        delay: 3_277,
        ..Default::default()
    };
    let rr = receiver_report(report);
    meter
        .handle_read(rtcp(rr, t0 + Duration::from_millis(130)))
        .unwrap();
    let rtt = stats.rtt().expect("measured");
    assert!(
        rtt >= Duration::from_millis(79) && rtt <= Duration::from_millis(81),
        "{rtt:?}"
    );
    assert_eq!(stats.figures().loss_permille, 250);
    // A report on a sender report we never sent measures nothing.
    let stray = ReceptionReport {
        ssrc: VIDEO,
        last_sender_report: 42,
        ..Default::default()
    };
    meter
        .handle_read(rtcp(receiver_report(stray), t0 + Duration::from_secs(1)))
        .unwrap();
    assert_eq!(stats.rtt(), Some(rtt));
}

#[test]
fn loss_is_read_from_transport_wide_feedback_once_it_comes() {
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
        SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
    };
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut meter = LinkMeter::new(Arc::clone(&stats));
    meter.bind_local_stream(&stream(VIDEO, "video/VP8"));
    let run = |symbol, n| {
        PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: symbol,
            run_length: n,
        })
    };
    // 20 packets: 15 received, 3 lost, then a vector of 2 received and 5 padding symbols
    // past the count, which are no packets at all.
    let mut symbols = vec![SymbolTypeTcc::PacketReceivedSmallDelta; 2];
    symbols.extend([SymbolTypeTcc::PacketNotReceived; 5]);
    let feedback = TransportLayerCc {
        packet_status_count: 20,
        packet_chunks: vec![
            run(SymbolTypeTcc::PacketReceivedSmallDelta, 15),
            run(SymbolTypeTcc::PacketNotReceived, 3),
            PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: symbols,
            }),
        ],
        ..Default::default()
    };
    assert_eq!(super::meter::packet_fates(&feedback), (20, 3));
    meter.handle_read(rtcp(feedback, t0)).unwrap();
    // 3 of 20: 15 %, in 256ths.
    let loss = stats.figures().loss_permille;
    assert!((145..=150).contains(&loss), "{loss} per mille");
    // A reception report, which counts retransmitted packets as received, no longer says.
    let report = ReceptionReport {
        ssrc: VIDEO,
        fraction_lost: 0,
        ..Default::default()
    };
    meter
        .handle_read(rtcp(
            receiver_report(report),
            t0 + Duration::from_millis(10),
        ))
        .unwrap();
    assert_eq!(stats.figures().loss_permille, loss);
}

#[test]
fn a_link_that_goes_quiet_reads_no_rate_not_its_last_busy_second() {
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut meter = LinkMeter::new(Arc::clone(&stats));
    meter.bind_local_stream(&stream(VIDEO, "video/VP8"));
    // A busy second: 100 packets of 1,000 bytes.
    for i in 0..100u16 {
        meter
            .handle_write(rtp(
                VIDEO,
                i,
                988,
                t0 + Duration::from_millis(u64::from(i) * 10),
            ))
            .unwrap();
    }
    let due = meter.poll_timeout().expect("a window to close");
    assert_eq!(due, t0 + Duration::from_secs(1));
    meter.handle_timeout(due).unwrap();
    let busy = stats.figures().send_bps;
    assert!((700_000..=900_000).contains(&busy), "{busy} bit/s");
    // Then nothing is sent: the next second reads nothing.
    let next = meter.poll_timeout().expect("the next window");
    assert!(next > due, "no busy loop");
    meter.handle_timeout(next).unwrap();
    assert_eq!(stats.figures().send_bps, 0);
}

/// `rtp` on a repair stream: payload type `pt`, the repaired sequence number first.
fn repair(ssrc: u32, pt: u8, seq: u16, repairs: u16, now: Instant) -> TaggedPacket {
    let mut msg = rtp(ssrc, seq, 0, now);
    if let Packet::Rtp(p) = &mut msg.message.packet {
        p.header.payload_type = pt;
        let mut payload = repairs.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0u8; 100]);
        p.payload = payload.into();
    }
    msg
}

#[test]
fn a_retransmission_on_the_repair_stream_fills_its_gap() {
    const REPAIR: u32 = 97_000;
    let t0 = crate::clock::now();
    let stats = Arc::new(LinkStats::default());
    let mut asker = NackAsker::new(Arc::clone(&stats));
    asker.bind_remote_stream(&StreamInfo {
        ssrc_rtx: Some(REPAIR),
        payload_type_rtx: Some(97),
        ..stream(VIDEO, "video/VP8")
    });
    // The repair stream is bound in its own right as well, as webrtc-rs binds it.
    asker.bind_remote_stream(&StreamInfo {
        payload_type: 97,
        ..stream(REPAIR, "video/VP8")
    });
    for seq in [10u16, 13] {
        asker.handle_read(rtp(VIDEO, seq, 100, t0)).unwrap();
    }
    let first = nacked(&run_until(&mut asker, t0, t0 + Duration::from_millis(20)));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, vec![11, 12]);
    // 11 comes again on the repair stream; a packet of another payload type there (a probe)
    // and one too short to name what it repairs change nothing.
    let t1 = t0 + Duration::from_millis(50);
    asker.handle_read(repair(REPAIR, 97, 0, 11, t1)).unwrap();
    asker.handle_read(repair(REPAIR, 98, 1, 12, t1)).unwrap();
    asker.handle_read(rtp(REPAIR, 2, 1, t1)).unwrap();
    // A gap in the repair stream's own numbering is not asked for.
    asker.handle_read(repair(REPAIR, 97, 9, 10, t1)).unwrap();
    let again = nacked(&run_until(&mut asker, t1, t0 + Duration::from_millis(300)));
    assert!(!again.is_empty(), "12 is still missing");
    assert!(
        again.iter().all(|(_, s)| s == &[12]),
        "only 12, and only on the original stream: {again:?}"
    );
    assert_eq!(stats.figures().repaired, 1);
}

/// The video stream with a repair stream `repair`, carrying transport-wide numbers (id 3).
fn numbered_video_with_repair(repair: u32) -> StreamInfo {
    StreamInfo {
        ssrc_rtx: Some(repair),
        payload_type_rtx: Some(97),
        rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
            uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            id: 3,
        }],
        ..stream(VIDEO, "video/VP8")
    }
}

#[test]
fn retransmissions_on_the_repair_stream_are_numbered_transport_wide() {
    use rtc::interceptor::TwccSenderBuilder;
    const REPAIR: u32 = 97_000;
    let t0 = crate::clock::now();
    let mut tagger = super::RepairsNumbered(TwccSenderBuilder::new().build());
    tagger.bind_local_stream(&numbered_video_with_repair(REPAIR));
    tagger.handle_write(rtp(VIDEO, 1, 100, t0)).unwrap();
    tagger.handle_write(repair(REPAIR, 97, 0, 1, t0)).unwrap();
    tagger.handle_write(rtp(5, 1, 100, t0)).unwrap();
    let numbered: Vec<bool> = drain_writes(&mut tagger)
        .iter()
        .map(|m| match &m.message.packet {
            Packet::Rtp(p) => p.header.get_extension(3).is_some(),
            _ => false,
        })
        .collect();
    assert_eq!(
        numbered,
        [true, true, false],
        "an unbound stream is left alone"
    );
}

/// A pacer and the NACK responder app-ward of it, as the link's chain has them, driven on a
/// virtual clock from `from` to `to`: (when, packet) of what leaves.
fn run_with_responder(
    pacer: &mut LinkPacer,
    responder: &mut impl Interceptor,
    from: Instant,
    to: Instant,
) -> Vec<(Instant, TaggedPacket)> {
    let mut out = Vec::new();
    let mut now = from;
    loop {
        pacer.handle_timeout(now).expect("timeout");
        // What the pacer reads up the chain (its own NACKs) reaches the responder, whose
        // copies come back down through the pacer.
        while let Some(read) = pacer.poll_read() {
            responder.handle_read(read).expect("read");
        }
        while responder.poll_read().is_some() {}
        while let Some(copy) = responder.poll_write() {
            pacer.handle_write(copy).expect("write");
        }
        out.extend(drain_writes(pacer).into_iter().map(|m| (now, m)));
        match pacer.poll_timeout() {
            Some(at) if at <= to => now = at.max(now + Duration::from_micros(1)),
            _ => break,
        }
    }
    out
}

#[test]
fn a_probing_link_is_filled_to_the_probe_rate_with_copies_on_the_repair_stream() {
    use rtc::interceptor::NackResponderBuilder;
    const REPAIR: u32 = 97_000;
    let t0 = crate::clock::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let stats = Arc::new(LinkStats::default());
    let mut pacer = LinkPacer::new(Arc::clone(&stats));
    let mut responder = NackResponderBuilder::new().build();
    let video = StreamInfo {
        ssrc_rtx: Some(REPAIR),
        payload_type_rtx: Some(97),
        ..stream(VIDEO, "video/VP8")
    };
    pacer.bind_local_stream(&video);
    responder.bind_local_stream(&video);
    pacer.handle_read(estimate(1_000_000.0, t0)).unwrap();
    while pacer.poll_read().is_some() {}
    // A picture of 50 packets (0.5 Mbit) through the responder (which keeps them) and
    // the pacer; the link then probes at 1 Mbit/s.
    for seq in 0..50 {
        responder.handle_write(rtp(VIDEO, seq, 1_200, t0)).unwrap();
    }
    for msg in drain_writes(&mut responder) {
        pacer.handle_write(msg).unwrap();
    }
    stats.set_probe(1_000_000);
    let sent = run_with_responder(&mut pacer, &mut responder, t0, at(2_000));

    let is_copy = |m: &TaggedPacket| ssrc_of(m) == Some(REPAIR);
    // Probes wait behind the picture: none leaves before its last packet.
    let last_original = sent
        .iter()
        .rposition(|(_, m)| ssrc_of(m) == Some(VIDEO))
        .expect("the picture left");
    assert!(
        sent[..last_original].iter().all(|(_, m)| !is_copy(m)),
        "a probe went before the picture"
    );
    // Then the link is filled to the probe's rate, with copies of the picture's packets.
    let copies: Vec<&(Instant, TaggedPacket)> = sent.iter().filter(|(_, m)| is_copy(m)).collect();
    let bits: f64 = sent
        .iter()
        .filter(|(when, _)| *when >= at(1_000))
        .filter_map(|(_, m)| match &m.message.packet {
            Packet::Rtp(p) => Some(wire_bits(rtc::shared::marshal::MarshalSize::marshal_size(
                p,
            ))),
            _ => None,
        })
        .sum();
    assert!(
        (800_000.0..=1_100_000.0).contains(&bits),
        "{bits:.0} bit/s in the second second of a 1 Mbit/s probe"
    );
    for (_, copy) in &copies {
        let Packet::Rtp(p) = &copy.message.packet else {
            unreachable!()
        };
        let original = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        assert!(original < 50, "a copy of {original}");
    }
    let figures = stats.figures();
    assert!(figures.sent_probe_bytes > 0 && figures.sent_rtx_bytes == 0);
    assert_eq!(stats.queue(), Duration::ZERO, "probes hold nothing up");

    // The probe ends: nothing more leaves.
    stats.set_probe(0);
    let after = run_with_responder(&mut pacer, &mut responder, at(2_000), at(3_000));
    assert!(
        after.len() <= 2,
        "{} packets after the probe ended",
        after.len()
    );
}

#[test]
fn retransmissions_on_the_repair_stream_are_in_the_estimators_send_history() {
    use rtc::interceptor::CongestionControlBuilder;
    const REPAIR: u32 = 97_000;
    let t0 = crate::clock::now();
    let estimator = super::estimator::PathEstimator::new(600_000.0, 80_000.0, 8_000_000.0);
    let mut history = super::RepairsNumbered(CongestionControlBuilder::new(estimator).build());
    history.bind_local_stream(&numbered_video_with_repair(REPAIR));
    history.handle_write(rtp(VIDEO, 1, 100, t0)).unwrap();
    history.handle_write(repair(REPAIR, 97, 0, 1, t0)).unwrap();
    history.handle_write(rtp(5, 1, 100, t0)).unwrap();
    assert_eq!(drain_writes(&mut history).len(), 3);
    // The original and its repair await the peer's feedback; the unbound stream does not.
    assert_eq!(history.0.outstanding(), 2);
}

#[test]
fn asks_are_spaced_by_the_time_an_ask_takes_to_be_answered() {
    const REPAIR: u32 = 97_000;
    let t0 = crate::clock::now();
    let ms = |n: u64| Duration::from_millis(n);
    // No reports: a peer that only receives never measures its round trip from them.
    let stats = Arc::new(LinkStats::default());
    let mut asker = NackAsker::new(Arc::clone(&stats));
    asker.bind_remote_stream(&numbered_video_with_repair(REPAIR));
    for seq in [10u16, 12] {
        asker.handle_read(rtp(VIDEO, seq, 100, t0)).unwrap();
    }
    let first = nacked(&run_until(&mut asker, t0, t0 + ms(20)));
    assert_eq!(first.len(), 1);
    // Its answer comes 15 ms after the ask.
    let t1 = first[0].0 + ms(15);
    asker.handle_read(repair(REPAIR, 97, 0, 11, t1)).unwrap();
    // 14 goes missing; its repair is lost too: it is asked for again an answer's time
    // later (15 ms and the margin), not after the 100 ms assumed without one.
    for seq in [13u16, 15] {
        asker.handle_read(rtp(VIDEO, seq, 100, t1)).unwrap();
    }
    let asks = nacked(&run_until(&mut asker, t1, t1 + ms(600)));
    let times: Vec<Duration> = asks
        .iter()
        .filter(|(_, s)| s == &[14])
        .map(|(at, _)| *at - t1)
        .collect();
    assert!(times.len() > 3, "{asks:?}");
    assert!(times.len() <= usize::from(MAX_ASKS), "{asks:?}");
    assert!(times[1] - times[0] < ms(50), "{times:?}");
    // Then further apart each time (the answers may be stuck in a queue that grew), up to a
    // quarter of the age limit, and never past it.
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[1] >= ms(50), "{times:?}");
    assert!(gaps.iter().all(|&g| g <= MAX_AGE / 4 + ms(10)), "{times:?}");
    assert!(
        *times.last().expect("asked") <= MAX_AGE + ms(20),
        "{times:?}"
    );
}

#[test]
fn a_data_channel_is_paced_while_media_flow_at_its_share_or_what_the_media_leave() {
    use super::{DATA_SHARE, data_rate};
    // No media on the link: the association's own windows govern it.
    assert_eq!(data_rate(1_000_000, 0), 0);
    // Video filling the estimate: the data's share.
    let share = (1_000_000.0 * DATA_SHARE) as u64;
    assert_eq!(data_rate(1_000_000, 1_000_000), share);
    // Media that need less than the estimate leave the rest to the data: a voice alone
    // leaves it nearly all.
    assert_eq!(data_rate(10_000_000, 1_700_000), 8_300_000);
    assert_eq!(data_rate(400_000, 48_000), 352_000);

    let stats = LinkStats::default();
    stats.set_estimate(1_000_000.0);
    assert_eq!(stats.figures().data_pace_bps, 0);
    stats.send_bps.store(1_000_000, Ordering::Relaxed);
    stats.set_estimate(1_000_000.0);
    assert_eq!(stats.figures().data_pace_bps, share);
    // The media stop: the next measure leaves the data unpaced.
    stats.send_bps.store(0, Ordering::Relaxed);
    stats.set_estimate(1_000_000.0);
    assert_eq!(stats.figures().data_pace_bps, 0);
}

#[test]
fn the_media_plan_on_what_the_data_leaves_them_and_never_less_than_all_but_its_share() {
    use super::DATA_SHARE;
    let stats = LinkStats::default();
    stats.set_estimate(1_000_000.0);
    assert_eq!(stats.media_estimate(), 1_000_000);
    stats.data_bps.store(200_000, Ordering::Relaxed);
    assert_eq!(stats.media_estimate(), 800_000);
    // Data that took more (where the media left it unused) does not shrink the media's plan
    // past its share.
    stats.data_bps.store(900_000, Ordering::Relaxed);
    assert_eq!(
        stats.media_estimate(),
        1_000_000 - (1_000_000.0 * DATA_SHARE) as u64
    );
}
