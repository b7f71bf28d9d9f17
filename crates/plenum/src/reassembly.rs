//! Whole VP8 frames from RTP packets (RFC 7741), sans-IO: packets in any order go in, frames
//! come out in order; a frame with a packet that never came is given up once a later frame
//! is complete and the hole has had time for a retransmission, and then inter frames are held
//! back until a keyframe. A complete keyframe never waits behind a hole: what comes before it
//! is given up at once (nothing before a keyframe is needed to decode it or what follows).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// How long a hole may wait for a retransmission: as long as it is still asked for. A
/// shorter wait gives up repairs already on their way whenever a queue stands on the path
/// (each is then a keyframe request and a freeze).
const HOLE_WAIT: Duration = crate::congestion::nack::MAX_AGE;
/// Packets held at most; past this, the oldest frame is given up.
const MAX_HELD: usize = 2048;

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) data: Bytes,
    pub(crate) timestamp: u32,
    pub(crate) keyframe: bool,
}

#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    head: bool,
    /// The first packet of a keyframe.
    key: bool,
    payload: Bytes,
    arrived: Instant,
}

/// What the reassembler has seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReassemblyStats {
    pub(crate) frames: u64,
    /// Frames given up because a packet never came.
    pub(crate) lost: u64,
    /// Inter frames held back while waiting for a keyframe.
    pub(crate) skipped: u64,
    /// Payloads that were not VP8.
    pub(crate) malformed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    held: BTreeMap<u64, Held>,
    /// The highest extended sequence number seen.
    highest: Option<u64>,
    /// Everything at or below this sequence number is done with.
    done_through: Option<u64>,
    waiting_for_keyframe: bool,
    /// A keyframe should be asked for (taken by [`Self::take_keyframe_request`]).
    ask_keyframe: bool,
    stats: ReassemblyStats,
}

impl Reassembler {
    pub(crate) fn new() -> Self {
        Self {
            // Until the first keyframe nothing decodes.
            waiting_for_keyframe: true,
            ..Self::default()
        }
    }

    pub(crate) fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Whether a keyframe should be asked for since the last call.
    pub(crate) fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.ask_keyframe)
    }

    fn extend(&self, seq: u16) -> u64 {
        extend_seq(self.highest, seq)
    }

    /// Takes one RTP packet; returns the frames it completes, in order.
    pub(crate) fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
        now: Instant,
    ) -> Vec<Frame> {
        let seq = self.extend(seq);
        if self.done_through.is_some_and(|d| seq <= d) || payload.is_empty() {
            return Vec::new(); // late duplicate or retransmission of a finished frame
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        let head = starts_frame(&payload);
        let key = head && frame_is_key(&payload);
        self.held.insert(
            seq,
            Held {
                timestamp,
                marker,
                head,
                key,
                payload,
                arrived: now,
            },
        );
        self.poll(now)
    }

    /// Frames that time completes: holes that waited long enough are given up. Call it now
    /// and then when no packets come.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        loop {
            if let Some(frame) = self.next_in_order() {
                if let Some(frame) = self.admit(frame) {
                    out.push(frame);
                }
                continue;
            }
            if !self.skip_to_keyframe() && !self.give_up_oldest(now) {
                break;
            }
        }
        out
    }

    /// The last packet of the frame starting at `first`, if all its packets are here.
    fn complete_from(&self, first: u64) -> Option<u64> {
        let timestamp = self.held.get(&first)?.timestamp;
        for (expected, (&seq, h)) in (first..).zip(self.held.range(first..)) {
            if seq != expected || h.timestamp != timestamp {
                return None;
            }
            if h.marker {
                return Some(seq);
            }
        }
        None
    }

    /// The frame at the front, if all its packets are here.
    fn next_in_order(&mut self) -> Option<Frame> {
        let (&first, held) = self.held.iter().next()?;
        if !held.head || self.done_through.is_some_and(|d| first != d + 1) {
            return None;
        }
        let last = self.complete_from(first)?;
        let timestamp = held.timestamp;
        let mut data = BytesMut::new();
        let mut depacketizer = Vp8Packet::default();
        let mut malformed = false;
        for seq in first..=last {
            if let Some(h) = self.held.remove(&seq) {
                match depacketizer.depacketize(&h.payload) {
                    Ok(part) => data.extend_from_slice(&part),
                    Err(_) => malformed = true,
                }
            }
        }
        self.done_through = Some(last);
        if malformed || data.is_empty() {
            self.stats.malformed += 1;
            self.lose_picture();
            return None;
        }
        let keyframe = data[0] & 0x01 == 0;
        Some(Frame {
            data: data.freeze(),
            timestamp,
            keyframe,
        })
    }

    /// Passes a complete frame on, or holds back inter frames until a keyframe.
    fn admit(&mut self, frame: Frame) -> Option<Frame> {
        if frame.keyframe {
            self.waiting_for_keyframe = false;
        }
        if self.waiting_for_keyframe {
            self.stats.skipped += 1;
            return None;
        }
        self.stats.frames += 1;
        Some(frame)
    }

    /// Whether inter frames are being held back until a keyframe.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// The picture is broken (a frame would not decode): wait for, and ask for, a keyframe.
    pub(crate) fn lose(&mut self) {
        self.lose_picture();
    }

    fn lose_picture(&mut self) {
        self.stats.lost += 1;
        self.waiting_for_keyframe = true;
        self.ask_keyframe = true;
    }

    /// When the front is stuck behind a hole and a complete keyframe is held (one that could
    /// go out in order would have), gives up everything before the keyframe, without asking
    /// for another. Returns whether it did.
    fn skip_to_keyframe(&mut self) -> bool {
        let keyframe = self
            .held
            .iter()
            .filter(|(_, h)| h.key)
            .map(|(&seq, _)| seq)
            .find(|&seq| self.complete_from(seq).is_some());
        let Some(keyframe) = keyframe else {
            return false;
        };
        self.held.retain(|&seq, _| seq >= keyframe);
        self.done_through = Some(keyframe - 1);
        self.stats.lost += 1;
        true
    }

    /// When the front is stuck behind a hole that has waited long enough (or too much is
    /// held), drops everything up to the next frame start. Returns whether it dropped.
    fn give_up_oldest(&mut self, now: Instant) -> bool {
        let Some((_, oldest)) = self.held.iter().next() else {
            return false;
        };
        let stale = now.duration_since(oldest.arrived) >= HOLE_WAIT;
        if !stale && self.held.len() < MAX_HELD {
            return false;
        }
        let front = self.held.keys().next().copied();
        let next_head = self
            .held
            .iter()
            .skip(1)
            .find(|(_, h)| h.head)
            .map(|(&seq, _)| seq);
        let drop_to = match next_head {
            Some(head) => head - 1,
            None => match front {
                // Nothing to skip to yet: drop all but keep waiting for the next frame.
                Some(_) => self.highest.unwrap_or(0),
                None => return false,
            },
        };
        tracing::debug!(
            front = ?front,
            drop_to,
            held = self.held.len(),
            waited_ms = now.duration_since(oldest.arrived).as_millis() as u64,
            done_through = ?self.done_through,
            "hole given up"
        );
        self.held.retain(|&seq, _| seq > drop_to);
        self.done_through = Some(drop_to);
        self.lose_picture();
        true
    }
}

/// Whether a VP8 RTP payload is the first packet of a frame (the start of partition 0).
pub(crate) fn starts_frame(payload: &Bytes) -> bool {
    // (An empty payload is no partition's head, so the index below is safe.)
    Vp8Packet::default().is_partition_head(payload) && payload[0] & 0x0f == 0
}

/// Whether a VP8 RTP payload is the first packet of a keyframe.
pub(crate) fn starts_keyframe(payload: &Bytes) -> bool {
    starts_frame(payload) && frame_is_key(payload)
}

/// Whether the frame a frame's first payload begins is a keyframe (its first byte has bit 0
/// clear).
fn frame_is_key(payload: &Bytes) -> bool {
    Vp8Packet::default()
        .depacketize(payload)
        .is_ok_and(|frame| frame.first().is_some_and(|b| b & 0x01 == 0))
}

/// An RTP sequence number as a 64-bit one: the one nearest `highest` (the highest seen so
/// far, extended), across wraps either way; the first is put one wrap up, so that numbers
/// a little below it still have room.
pub(crate) fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    let Some(highest) = highest else {
        return u64::from(seq) + (1 << 16);
    };
    let base = highest & !0xffff;
    [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
        .into_iter()
        .map(|b| b + u64::from(seq))
        .min_by_key(|c| c.abs_diff(highest))
        .unwrap_or(base + u64::from(seq))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test takes its origin from the clock
mod tests {
    use super::*;
    use rtc::rtp::codec::vp8::Vp8Payloader;
    use rtc::rtp::packetizer::Payloader;

    /// A fake VP8 frame of `len` bytes (keyframe bit from `key`), cut into payloads.
    fn packets(key: bool, len: usize, tag: u8) -> Vec<Bytes> {
        let mut frame = vec![tag; len];
        frame[0] = if key { 0x10 } else { 0x11 };
        let mut payloader = Vp8Payloader::default();
        payloader
            .payload(400, &Bytes::from(frame))
            .expect("payloads")
    }

    struct Wire {
        seq: u16,
        out: Vec<(u16, u32, bool, Bytes)>,
    }

    impl Wire {
        fn frame(&mut self, key: bool, ts: u32, tag: u8) {
            let parts = packets(key, 1000, tag);
            let n = parts.len();
            for (i, p) in parts.into_iter().enumerate() {
                self.out.push((self.seq, ts, i + 1 == n, p));
                self.seq = self.seq.wrapping_add(1);
            }
        }
    }

    type Sent = (u16, u32, bool, Bytes);

    /// A keyframe and three inter frames; what arrived (all but the second frame's second
    /// packet), and that packet.
    fn a_packet_of_the_second_of_four_frames_lost() -> (Wire, Vec<Sent>, Sent) {
        let mut wire = Wire {
            seq: 100,
            out: Vec::new(),
        };
        wire.frame(true, 0, 1);
        wire.frame(false, 3000, 2);
        wire.frame(false, 6000, 3);
        wire.frame(false, 9000, 4);
        let lost_at = wire.out.iter().position(|p| p.1 == 3000).expect("frame 2") + 1;
        let mut packets = wire.out.clone();
        let lost = packets.remove(lost_at);
        (wire, packets, lost)
    }

    fn feed(r: &mut Reassembler, packets: &[(u16, u32, bool, Bytes)], now: Instant) -> Vec<Frame> {
        packets
            .iter()
            .flat_map(|(s, t, m, p)| r.push(*s, *t, *m, p.clone(), now))
            .collect()
    }

    #[test]
    fn frames_come_out_whole_and_in_order_across_reordering_and_wrap() {
        let mut wire = Wire {
            seq: 65_530,
            out: Vec::new(),
        };
        wire.frame(true, 0, 1);
        wire.frame(false, 3000, 2);
        wire.frame(false, 6000, 3);
        let mut packets = wire.out.clone();
        packets.swap(1, 2);
        packets.swap(4, 6);
        let duplicate = packets[3].clone();
        packets.push(duplicate);
        let mut r = Reassembler::new();
        let frames = feed(&mut r, &packets, Instant::now());
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, vec![0, 3000, 6000]);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert_eq!(frames[1].data.len(), 1000);
        assert!(frames[1].data[1..].iter().all(|b| *b == 2));
        assert_eq!(r.stats().lost, 0);
        assert!(!r.take_keyframe_request());
    }

    #[test]
    fn a_lost_packet_costs_its_frame_and_inter_frames_wait_for_a_keyframe() {
        let (mut wire, packets, _) = a_packet_of_the_second_of_four_frames_lost();
        let t0 = Instant::now();
        let mut r = Reassembler::new();
        let before = feed(&mut r, &packets, t0);
        assert_eq!(
            before.len(),
            1,
            "only the first frame before the hole times out"
        );
        // Time passes with no retransmission: the hole is given up, the inter frames after
        // it held back, and a keyframe asked for; the one that comes is played.
        let next = r.poll(t0 + HOLE_WAIT);
        assert!(next.is_empty(), "{next:?}");
        assert!(r.take_keyframe_request(), "asks for a keyframe");
        assert!(
            r.stats().lost >= 1 && r.stats().skipped >= 2,
            "{:?}",
            r.stats()
        );
        wire.out.clear();
        wire.frame(true, 12_000, 5);
        let after = feed(&mut r, &wire.out, t0 + HOLE_WAIT);
        let stamps: Vec<u32> = after.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, vec![12_000]);
    }

    #[test]
    fn a_repair_that_comes_while_it_is_still_asked_for_completes_its_frame() {
        let (_, packets, repair) = a_packet_of_the_second_of_four_frames_lost();
        let t0 = Instant::now();
        let mut r = Reassembler::new();
        assert_eq!(feed(&mut r, &packets, t0).len(), 1);
        // Behind a standing queue a repair takes a few hundred ms: the hole waits for it as
        // long as the receiver asks for it.
        let late = t0 + crate::congestion::nack::MAX_AGE - Duration::from_millis(50);
        assert!(r.poll(late).is_empty());
        let frames = r.push(repair.0, repair.1, repair.2, repair.3, late);
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, vec![3000, 6000, 9000]);
        assert_eq!(r.stats().lost, 0);
        assert!(!r.take_keyframe_request());
    }

    #[test]
    fn a_keyframe_behind_a_hole_plays_at_once() {
        let mut wire = Wire {
            seq: 65_500,
            out: Vec::new(),
        };
        wire.frame(true, 0, 1);
        wire.frame(false, 3000, 2);
        wire.frame(false, 6000, 3);
        wire.frame(true, 9000, 4);
        wire.frame(false, 12_000, 5);
        let lost_at = wire.out.iter().position(|p| p.1 == 3000).expect("frame 2") + 1;
        let mut packets = wire.out.clone();
        packets.remove(lost_at);
        let mut r = Reassembler::new();
        // No time passes: the hole has not waited, yet nothing before the keyframe matters.
        let frames = feed(&mut r, &packets, Instant::now());
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, vec![0, 9000, 12_000]);
        assert!(frames[1].keyframe);
        assert_eq!(r.stats().lost, 1);
        assert!(!r.take_keyframe_request(), "it has its keyframe");
        // The retransmission that comes late is ignored.
        let late = &wire.out[lost_at];
        assert!(
            r.push(late.0, late.1, late.2, late.3.clone(), Instant::now())
                .is_empty()
        );
    }

    #[test]
    fn an_incomplete_keyframe_is_not_skipped_to() {
        let mut wire = Wire {
            seq: 7,
            out: Vec::new(),
        };
        wire.frame(true, 0, 1);
        wire.frame(false, 3000, 2);
        wire.frame(true, 6000, 3);
        let mut packets = wire.out.clone();
        let hole = packets.iter().position(|p| p.1 == 3000).expect("frame 2") + 1;
        let key_tail = packets.len() - 1;
        packets.remove(key_tail);
        packets.remove(hole);
        let t0 = Instant::now();
        let mut r = Reassembler::new();
        let frames = feed(&mut r, &packets, t0);
        assert_eq!(frames.len(), 1, "only the first keyframe: {frames:?}");
        // The keyframe's last packet comes: it plays, the inter frame is given up.
        let tail = &wire.out[wire.out.len() - 1];
        let more = r.push(tail.0, tail.1, tail.2, tail.3.clone(), t0);
        let stamps: Vec<u32> = more.iter().map(|f| f.timestamp).collect();
        assert_eq!(stamps, vec![6000]);
    }

    #[test]
    fn garbage_payloads_do_not_panic() {
        let mut r = Reassembler::new();
        let now = Instant::now();
        for i in 0..2000u16 {
            let junk = Bytes::from(vec![(i % 256) as u8; (i % 7) as usize]);
            let _ = r.push(i.wrapping_mul(7919), u32::from(i), i % 3 == 0, junk, now);
        }
        let _ = r.poll(now + HOLE_WAIT);
        let _ = r.push(1, 1, true, Bytes::from_static(&[0x10]), now + HOLE_WAIT);
    }
}
