//! The forwarding unit on a virtual clock: upstream packets in, each link's stream out.

use std::time::Duration;

use bytes::Bytes;
use rtc::rtp::{Header, Packet};

use super::{ForwardStats, Forwarded, Forwarder, KEYFRAME_GAP, Kind};

const U0: u32 = 0x1000;
const U1: u32 = 0x1001;
const V0: u32 = 0x2000;

/// An upstream stream: its SSRC, next sequence number and the next picture's timestamp.
struct Upstream {
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Upstream {
    fn new(ssrc: u32, seq: u16, ts: u32) -> Self {
        Self { ssrc, seq, ts }
    }

    /// One picture of `parts` VP8 packets (a keyframe if `key`), with a header extension
    /// as an upstream link's chain leaves on it.
    fn picture(&mut self, key: bool, parts: usize) -> Vec<Packet> {
        let mut out = Vec::new();
        for i in 0..parts {
            let mut payload = vec![0xab_u8; 40];
            // VP8 payload descriptor: S set on the first packet, partition 0.
            payload[0] = if i == 0 { 0x10 } else { 0x00 };
            // The frame's first byte: bit 0 clear on a keyframe.
            payload[1] = if key { 0x00 } else { 0x01 };
            let mut header = Header {
                version: 2,
                marker: i + 1 == parts,
                payload_type: 96,
                sequence_number: self.seq,
                timestamp: self.ts,
                ssrc: self.ssrc,
                ..Header::default()
            };
            header
                .set_extension(3, Bytes::from_static(&[0x12, 0x34]))
                .expect("an extension");
            out.push(Packet {
                header,
                payload: payload.into(),
            });
            self.seq = self.seq.wrapping_add(1);
        }
        self.ts = self.ts.wrapping_add(3_000);
        out
    }
}

fn push_all(f: &mut Forwarder<&'static str>, packets: &[Packet]) {
    for p in packets {
        f.push(p);
    }
}

fn drain(f: &mut Forwarder<&'static str>) -> Vec<Forwarded<&'static str>> {
    std::iter::from_fn(|| f.poll_packet()).collect()
}

fn requests(f: &mut Forwarder<&'static str>) -> Vec<u32> {
    std::iter::from_fn(|| f.poll_keyframe_request()).collect()
}

/// (sequence number, timestamp) of what `link` got.
fn numbers(out: &[Forwarded<&'static str>], link: &str) -> Vec<(u16, u32)> {
    out.iter()
        .filter(|f| f.link == link)
        .map(|f| (f.packet.header.sequence_number, f.packet.header.timestamp))
        .collect()
}

/// Each number one after the one before, across wraps.
fn consecutive(numbers: &[(u16, u32)]) -> bool {
    numbers.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1))
}

/// Timestamps never go back (across wraps).
fn timestamps_go_on(numbers: &[(u16, u32)]) -> bool {
    numbers
        .windows(2)
        .all(|w| (w[1].1.wrapping_sub(w[0].1) as i32) >= 0)
}

#[test]
fn each_link_gets_a_stream_of_its_own_from_a_keyframe_on() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    f.add_link("b", 0xb, 100, 0, t0);
    // Both want a keyframe to start from: one request goes up.
    assert_eq!(requests(&mut f), vec![U0]);

    let mut up = Upstream::new(U0, 65_530, 4_000_000_000);
    push_all(&mut f, &up.picture(false, 3));
    assert!(drain(&mut f).is_empty(), "a link started on an inter frame");
    let key = up.picture(true, 4);
    let inter = up.picture(false, 5);
    push_all(&mut f, &key);
    push_all(&mut f, &inter);
    let out = drain(&mut f);
    for (link, ssrc, pt) in [("a", 0xa, 96), ("b", 0xb, 100)] {
        let got: Vec<&Packet> = out
            .iter()
            .filter(|p| p.link == link)
            .map(|p| &p.packet)
            .collect();
        assert_eq!(got.len(), 9, "{link} got {} packets", got.len());
        assert!(
            got.iter()
                .all(|p| p.header.ssrc == ssrc && p.header.payload_type == pt)
        );
        assert!(
            got.iter()
                .all(|p| !p.header.extension && p.header.extensions.is_empty()),
            "the upstream link's header extensions went on"
        );
        let n = numbers(&out, link);
        assert!(consecutive(&n), "{link}: {n:?}");
        // Pictures keep their spacing (across the timestamp's wrap).
        assert_eq!(n[4].1.wrapping_sub(n[0].1), 3_000);
        // The payload is passed on untouched, and the marker with it.
        assert_eq!(got[0].payload, key[0].payload);
        assert!(got[3].header.marker && !got[2].header.marker);
    }
    assert_eq!(f.stats().forwarded, 18);
}

#[test]
fn a_link_changes_layer_at_the_new_layers_keyframe_and_is_numbered_on_without_a_gap() {
    let t0 = crate::clock::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0, U1], t0);
    f.add_link("a", 0xa, 96, 1, t0);
    f.add_link("b", 0xb, 96, 1, t0);
    assert_eq!(requests(&mut f), vec![U1]);
    // The layers' numbers and clocks have nothing in common.
    let mut top = Upstream::new(U0, 100, 90_000);
    let mut small = Upstream::new(U1, 30_000, 7_777);
    push_all(&mut f, &small.picture(true, 2));
    push_all(&mut f, &top.picture(true, 6));
    let mut out = drain(&mut f);

    // "a" may have the top layer now: it asks for its keyframe and stays where it is
    // until it comes; "b" stays on the small layer throughout.
    f.set_layer(&"a", 0, at(1_000));
    assert_eq!(requests(&mut f), vec![U0]);
    for _ in 0..3 {
        push_all(&mut f, &small.picture(false, 2));
        push_all(&mut f, &top.picture(false, 6));
    }
    let before = drain(&mut f);
    assert_eq!(numbers(&before, "a").len(), 6, "a left its layer early");
    out.extend(before);
    push_all(&mut f, &small.picture(false, 2));
    push_all(&mut f, &top.picture(true, 6));
    push_all(&mut f, &small.picture(false, 2));
    push_all(&mut f, &top.picture(false, 6));
    out.extend(drain(&mut f));

    let a = numbers(&out, "a");
    // 2 + 3 x 2 + 2 of the small layer, then 6 + 6 of the top one.
    assert_eq!(a.len(), 22, "{a:?}");
    assert!(consecutive(&a), "a's numbers: {a:?}");
    assert!(timestamps_go_on(&a), "a's timestamps: {a:?}");
    let b = numbers(&out, "b");
    assert_eq!(b.len(), 12, "b's layer was changed by a's: {b:?}");
    assert!(consecutive(&b));
    assert_eq!(f.stats().switches, 3, "{:?}", f.stats());
}

#[test]
fn a_new_upstream_is_followed_from_its_keyframe_numbered_on() {
    let t0 = crate::clock::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    let mut old = Upstream::new(U0, 10, 1_000);
    push_all(&mut f, &old.picture(true, 3));
    push_all(&mut f, &old.picture(false, 3));
    let mut out = drain(&mut f);
    requests(&mut f);

    // The parent died; the new one's stream has numbers and a clock of its own.
    f.set_upstream(&[V0], at(2_000));
    assert_eq!(
        requests(&mut f),
        vec![V0],
        "no keyframe asked of the new parent"
    );
    let mut new = Upstream::new(V0, 50_000, 3_000_000);
    push_all(&mut f, &new.picture(false, 3));
    // The old parent's last packets, still arriving.
    push_all(&mut f, &old.picture(false, 3));
    assert!(
        drain(&mut f).is_empty(),
        "forwarded before the new parent's keyframe"
    );
    push_all(&mut f, &new.picture(true, 3));
    push_all(&mut f, &new.picture(false, 3));
    out.extend(drain(&mut f));
    let a = numbers(&out, "a");
    assert_eq!(a.len(), 12);
    assert!(consecutive(&a), "{a:?}");
    assert!(timestamps_go_on(&a), "{a:?}");
    assert_eq!(a[6].1, a[5].1 + 3_000, "a picture's step across the change");
}

#[test]
fn keyframe_requests_are_one_per_layer_per_gap() {
    let t0 = crate::clock::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    let links = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for (i, link) in links.iter().enumerate() {
        f.add_link(*link, i as u32, 96, 0, at(i as u64 * 10));
    }
    assert_eq!(requests(&mut f), vec![U0], "ten links, one request");
    let mut up = Upstream::new(U0, 1, 0);
    push_all(&mut f, &up.picture(true, 2));

    // Every link's decoder loses the picture within 100 ms: one request now, the rest wait
    // for the gap and go as one.
    let first = at(1_000);
    for (i, link) in links.iter().enumerate() {
        f.keyframe_wanted(link, first + Duration::from_millis(i as u64 * 10));
    }
    assert_eq!(requests(&mut f), vec![U0]);
    assert_eq!(f.poll_timeout(), Some(first + KEYFRAME_GAP));
    f.handle_timeout(first + KEYFRAME_GAP - Duration::from_millis(1));
    assert!(requests(&mut f).is_empty(), "asked again inside the gap");
    f.handle_timeout(first + KEYFRAME_GAP);
    assert_eq!(requests(&mut f), vec![U0]);
    assert_eq!(f.poll_timeout(), None);

    // Wanted again inside the gap, but a keyframe comes first: nothing more is asked.
    let second = first + KEYFRAME_GAP + Duration::from_millis(10);
    f.keyframe_wanted(&"a", second);
    push_all(&mut f, &up.picture(true, 2));
    f.handle_timeout(second + KEYFRAME_GAP);
    assert!(
        requests(&mut f).is_empty(),
        "asked for a keyframe that had come"
    );
    assert_eq!(f.stats().keyframe_requests, 3);
}

#[test]
fn a_repair_that_comes_late_from_upstream_fills_its_gap_downstream() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    let mut up = Upstream::new(U0, 65_534, 0);
    let key = up.picture(true, 5);
    // The third packet is lost upstream and comes later, repaired; one from before the
    // keyframe comes later still.
    for i in [0, 1, 3, 4, 2] {
        f.push(&key[i]);
    }
    let mut stale = key[0].clone();
    stale.header.sequence_number = 65_533;
    f.push(&stale);
    let out = drain(&mut f);
    let a = numbers(&out, "a");
    assert_eq!(a.len(), 5, "{a:?}");
    let mut sorted = a.clone();
    sorted.sort_by_key(|(seq, _)| seq.wrapping_sub(a[0].0));
    assert!(consecutive(&sorted), "{a:?}");
    // The repair went under its own number, between its neighbours'.
    assert_eq!(a[4].0, a[1].0.wrapping_add(1));
}

#[test]
fn a_packet_that_comes_twice_is_passed_on_once() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    f.add_link("b", 0xb, 96, 0, t0);
    let mut up = Upstream::new(U0, 65_530, 0);
    let key = up.picture(true, 4);
    let next = up.picture(false, 4);
    push_all(&mut f, &key);
    // A sender's probe (copies of what it just sent) and a retransmission of a packet that
    // was not lost, across the wrap of the sequence numbers: nothing more goes downstream.
    push_all(&mut f, &key[1..3]);
    push_all(&mut f, &next);
    push_all(&mut f, &key);
    push_all(&mut f, &next[..2]);
    let out = drain(&mut f);
    for link in ["a", "b"] {
        let got = numbers(&out, link);
        assert_eq!(got.len(), 8, "{link}: {got:?}");
        assert!(consecutive(&got), "{link}: {got:?}");
    }
    assert_eq!(f.stats().duplicates, 8);
    // Much later, the same numbers come round again (a stream runs for hours): they are
    // new packets, passed on.
    for _ in 0..(65_536 / 4 - 2) {
        push_all(&mut f, &up.picture(false, 4));
    }
    drain(&mut f);
    let again = up.picture(false, 4);
    assert_eq!(
        again[0].header.sequence_number,
        key[0].header.sequence_number
    );
    push_all(&mut f, &again);
    assert_eq!(numbers(&drain(&mut f), "a").len(), 4);
    assert_eq!(f.stats().duplicates, 8);
    // One from further back than the unit remembers is too old: dropped, not a duplicate.
    let dropped = f.stats().dropped;
    let mut stale = again[0].clone();
    stale.header.sequence_number = stale.header.sequence_number.wrapping_sub(2_000);
    f.push(&stale);
    assert!(drain(&mut f).is_empty());
    assert_eq!(f.stats().dropped, dropped + 1);
    assert_eq!(f.stats().duplicates, 8);
}

#[test]
fn audio_is_forwarded_from_any_packet_and_no_keyframe_is_asked_for() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Audio);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 111, 0, t0);
    let packet = Packet {
        header: Header {
            version: 2,
            payload_type: 111,
            sequence_number: 9,
            timestamp: 960,
            ssrc: U0,
            ..Header::default()
        },
        payload: Bytes::from_static(&[0xfc, 0xff, 0xfe]),
    };
    f.push(&packet);
    let out = drain(&mut f);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].packet.header.ssrc, 0xa);
    assert!(requests(&mut f).is_empty());
}

#[test]
fn a_link_removed_and_added_again_is_numbered_on_from_its_last_packet() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Audio);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 111, 0, t0);
    let voice = |seq: u16| Packet {
        header: Header {
            version: 2,
            payload_type: 111,
            sequence_number: seq,
            timestamp: u32::from(seq) * 960,
            ssrc: U0,
            ..Header::default()
        },
        payload: Bytes::from_static(&[0xfc, 0xff, 0xfe]),
    };
    f.push(&voice(100));
    f.push(&voice(101));
    f.remove_link(&"a");
    f.push(&voice(102));
    // Back after a while, and from another upstream far along its own numbers.
    f.add_link("a", 0xa, 111, 0, t0);
    f.set_upstream(&[U1], t0);
    let mut far = voice(40_000);
    far.header.ssrc = U1;
    f.push(&far);
    let out = numbers(&drain(&mut f), "a");
    assert_eq!(out.len(), 3);
    assert!(consecutive(&out), "{out:?}");
}

#[test]
fn packets_of_no_known_stream_empty_or_garbled_are_dropped_not_forwarded() {
    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    let mut stranger = Upstream::new(0xdead, 1, 1);
    push_all(&mut f, &stranger.picture(true, 2));
    let empty = Packet {
        header: Header {
            ssrc: U0,
            ..Header::default()
        },
        payload: Bytes::new(),
    };
    f.push(&empty);
    // Garbage where VP8 should be: never a keyframe's start, so never forwarded here.
    for (seq, garbage) in [&[0xff_u8][..], &[0x10], &[0x90, 0xff], &[0x80]]
        .into_iter()
        .enumerate()
    {
        f.push(&Packet {
            header: Header {
                ssrc: U0,
                sequence_number: seq as u16 + 1,
                ..Header::default()
            },
            payload: Bytes::copy_from_slice(garbage),
        });
    }
    assert!(drain(&mut f).is_empty());
    assert_eq!(
        f.stats(),
        ForwardStats {
            dropped: 3,
            keyframe_requests: 1,
            ..ForwardStats::default()
        }
    );
}

/// What the unit writes to a link goes through that link's chain; a NACK from the link's
/// receiver for a forwarded packet is answered from the chain's send buffer, on the repair
/// stream, under the number the link knows it by.
#[test]
fn what_a_link_asks_again_for_is_answered_from_its_chains_send_buffer() {
    use rtc::interceptor::{
        AttributedPacket, Interceptor, NackResponderBuilder, Packet as Wire, RTCPFeedback,
        StreamInfo, TaggedPacket,
    };
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use rtc::sansio::Protocol;
    use rtc::shared::TransportContext;
    const REPAIR: u32 = 0xa0;

    let t0 = crate::clock::now();
    let mut f = Forwarder::new(Kind::Video);
    f.set_upstream(&[U0], t0);
    f.add_link("a", 0xa, 96, 0, t0);
    let mut up = Upstream::new(U0, 7, 0);
    push_all(&mut f, &up.picture(true, 4));
    let out = drain(&mut f);

    let mut chain = NackResponderBuilder::new().build();
    chain.bind_local_stream(&StreamInfo {
        ssrc: 0xa,
        ssrc_rtx: Some(REPAIR),
        payload_type: 96,
        payload_type_rtx: Some(97),
        mime_type: "video/VP8".to_owned(),
        rtcp_feedback: vec![RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        }],
        ..Default::default()
    });
    let tagged = |message| TaggedPacket {
        now: t0,
        transport: TransportContext::default(),
        message: AttributedPacket::new(message),
    };
    for forwarded in &out {
        chain
            .handle_write(tagged(Wire::Rtp(forwarded.packet.clone())))
            .expect("write");
    }
    while chain.poll_write().is_some() {}
    let asked = out[2].packet.header.sequence_number;
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 0xa,
        nacks: vec![NackPair {
            packet_id: asked,
            lost_packets: 0,
        }],
    };
    chain
        .handle_read(tagged(Wire::Rtcp(vec![Box::new(nack)])))
        .expect("read");
    while chain.poll_read().is_some() {}
    let repairs: Vec<rtc::rtp::Packet> = std::iter::from_fn(|| chain.poll_write())
        .filter_map(|m| match m.message.packet {
            Wire::Rtp(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(repairs[0].header.ssrc, REPAIR);
    assert_eq!(repairs[0].payload[..2], asked.to_be_bytes());
    assert_eq!(repairs[0].payload[2..], out[2].packet.payload[..]);
}

#[test]
fn a_link_added_before_any_upstream_waits_for_one() {
    let t0 = crate::clock::now();
    let mut f: Forwarder<&'static str> = Forwarder::new(Kind::Video);
    f.add_link("a", 0xa, 96, 2, t0);
    assert!(requests(&mut f).is_empty());
    f.set_upstream(&[U0, U1], t0 + Duration::from_millis(5));
    // Its layer is what arrives at most: the smaller one.
    assert_eq!(requests(&mut f), vec![U1]);
}
