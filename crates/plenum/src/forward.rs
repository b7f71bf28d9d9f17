//! Forwarding without decoding: a peer in the middle of a tree (or a bridge between cells)
//! passes a stream it receives on to each of its downstream links packet by packet, never
//! decoding it. Sans IO, told the time.
//!
//! Per downstream link the [`Forwarder`] keeps:
//! - **one output stream**: the link's own SSRC and payload type (its track), and sequence
//!   numbers and timestamps of its own, continuous whatever happens upstream. A layer switch
//!   and a new upstream (a parent change) re-anchor the mapping at a keyframe: the link's
//!   receiver sees one unbroken stream, and its decoder follows a size change at that
//!   keyframe, as it does for a sender that changes layers on a mesh link;
//! - **its layer**: the one its estimate allows, of the layers that arrive (the link's own
//!   rules decide, as in the mesh; [`Forwarder::set_layer`]). A switch waits for a keyframe
//!   of the new layer, and asks upstream for one; until then the old layer goes on.
//!
//! Keyframe requests are aggregated: however many links want a keyframe of a layer (a new
//! link, a link whose decoder lost the picture, a switch, a new upstream), at most one
//! request for it goes upstream each [`KEYFRAME_GAP`]; one wanted inside the gap goes at
//! its end, unless a keyframe of that layer came meanwhile.
//!
//! Retransmission downstream is the link's own: what the unit writes to a link's track
//! passes through that link's interceptor chain, whose send buffer answers the link's
//! NACKs on its repair stream within its pacer's budget (this file's tests run the unit's
//! output into that chain). A gap that came from upstream is asked for by this peer's own
//! receive side; the repair, when it comes, is forwarded under the number its gap has
//! downstream.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::{Header, Packet};

use crate::reassembly::{extend_seq, starts_keyframe};

/// At most one keyframe request per layer goes upstream this often.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// An upstream packet this far behind the newest forwarded is too old to forward (the link's
/// receiver has given it up).
const MAX_BEHIND: u64 = 1_000;
/// How many of an upstream stream's latest sequence numbers are remembered as come, so a
/// packet that comes twice is passed on once.
const SEEN_WINDOW: u64 = 1_024;

/// What is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// VP8: a link starts, switches and re-anchors only at a keyframe.
    Video,
    /// Opus: every packet stands alone.
    Audio,
}

impl Kind {
    /// The timestamp step put between the last packet before a re-anchoring and the first
    /// after (one picture at 30 fps; one 20 ms Opus frame).
    fn step(self) -> u32 {
        match self {
            Kind::Video => 3_000,
            Kind::Audio => 960,
        }
    }
}

/// A packet for one downstream link, rewritten for it.
#[derive(Debug, Clone)]
pub struct Forwarded<K> {
    pub link: K,
    pub packet: Packet,
}

/// What the unit did, for the statistics and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ForwardStats {
    /// Packets written to links.
    pub forwarded: u64,
    /// Upstream packets dropped: of no known upstream SSRC, empty, or too old.
    pub dropped: u64,
    /// Upstream packets that had come before (a retransmission of one that was not lost,
    /// or a probe's copy): passed on once.
    pub duplicates: u64,
    /// Keyframe requests sent upstream.
    pub keyframe_requests: u64,
    /// Times a link moved to another layer or upstream at a keyframe.
    pub switches: u64,
}

/// Where a link's output stands on its current upstream stream.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// The upstream SSRC it follows.
    ssrc: u32,
    /// The upstream sequence number (extended) and timestamp the mapping starts from...
    in_seq: u64,
    in_ts: u32,
    /// ...and what they became.
    out_seq: u16,
    out_ts: u32,
    /// The highest upstream sequence number seen on it (extended).
    highest: u64,
}

/// Which of an upstream stream's latest [`SEEN_WINDOW`] sequence numbers have come.
#[derive(Debug, Default)]
struct Seen {
    highest: Option<u64>,
    bits: Vec<u64>,
}

/// Whether an upstream packet is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    New,
    /// It came before.
    Again,
    /// Too far behind the newest to tell.
    TooOld,
}

impl Seen {
    /// Marks `seq` as come.
    fn arrive(&mut self, seq: u16) -> Arrival {
        if self.bits.is_empty() {
            self.bits = vec![0; (SEEN_WINDOW / 64) as usize];
        }
        let seq = extend_seq(self.highest, seq);
        match self.highest {
            Some(highest) if seq > highest => {
                // Forget what the window moved past.
                for old in (highest + 1)..=seq.min(highest + SEEN_WINDOW) {
                    self.set(old, false);
                }
                self.highest = Some(seq);
            }
            Some(highest) if highest - seq >= SEEN_WINDOW => return Arrival::TooOld,
            Some(_) if self.get(seq) => return Arrival::Again,
            Some(_) => {}
            None => self.highest = Some(seq),
        }
        self.set(seq, true);
        Arrival::New
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % SEEN_WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn get(&self, seq: u64) -> bool {
        let (word, bit) = Self::slot(seq);
        self.bits[word] & bit != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let (word, bit) = Self::slot(seq);
        if on {
            self.bits[word] |= bit;
        } else {
            self.bits[word] &= !bit;
        }
    }
}

#[derive(Debug)]
struct Link {
    ssrc: u32,
    payload_type: u8,
    /// The layer the link should be on (of those that arrive, the nearest to it).
    target: usize,
    anchor: Option<Anchor>,
    /// The newest output: (sequence number, timestamp).
    last: Option<(u16, u32)>,
}

/// One forwarded stream's unit: its upstream layers in, each downstream link's stream out.
#[derive(Debug)]
pub struct Forwarder<K> {
    kind: Kind,
    /// The upstream SSRC of each layer, largest first.
    layers: Vec<u32>,
    /// What has come of each layer.
    seen: Vec<Seen>,
    links: HashMap<K, Link>,
    /// The last output of links removed: one added again is numbered on from it.
    retired: HashMap<K, (u16, u32)>,
    /// When a keyframe of each layer was last asked for.
    asked: HashMap<usize, Instant>,
    /// Layers a keyframe is wanted of, not yet asked for (inside the gap).
    wanted: BTreeSet<usize>,
    packets: VecDeque<Forwarded<K>>,
    requests: VecDeque<u32>,
    stats: ForwardStats,
}

impl<K: Clone + Eq + Hash> Forwarder<K> {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            layers: Vec::new(),
            seen: Vec::new(),
            links: HashMap::new(),
            retired: HashMap::new(),
            asked: HashMap::new(),
            wanted: BTreeSet::new(),
            packets: VecDeque::new(),
            requests: VecDeque::new(),
            stats: ForwardStats::default(),
        }
    }

    pub fn stats(&self) -> ForwardStats {
        self.stats
    }

    /// The upstream SSRC of each layer that arrives, largest first. A set other than the
    /// one before is a new upstream (a new parent, or the publisher's layers changed): every
    /// link goes on from its next keyframe, numbered on from where it was.
    pub fn set_upstream(&mut self, layers: &[u32], now: Instant) {
        if self.layers == layers {
            return;
        }
        self.layers = layers.to_vec();
        self.seen = layers.iter().map(|_| Seen::default()).collect();
        self.asked.clear();
        self.wanted.clear();
        // Requests not yet sent name the old upstream's streams.
        self.requests.clear();
        let mut want = Vec::new();
        for link in self.links.values_mut() {
            link.anchor = None;
            want.push(link.target);
        }
        for layer in want {
            self.want_keyframe(layer, now);
        }
    }

    /// A downstream link: its track's SSRC and payload type, and the layer it starts on.
    /// It gets nothing before a keyframe of that layer, which is asked for. A link that was
    /// removed (it stopped taking the stream for a while) is numbered on from its last
    /// output: the receiver's SRTP follows a stream by its sequence numbers, and a stream
    /// that jumped by half their range would be refused there.
    pub fn add_link(&mut self, key: K, ssrc: u32, payload_type: u8, layer: usize, now: Instant) {
        let last = self
            .links
            .get(&key)
            .and_then(|l| l.last)
            .or_else(|| self.retired.remove(&key));
        self.links.insert(
            key,
            Link {
                ssrc,
                payload_type,
                target: layer,
                anchor: None,
                last,
            },
        );
        self.want_keyframe(layer, now);
    }

    pub fn remove_link(&mut self, key: &K) {
        if let Some(last) = self.links.remove(key).and_then(|l| l.last) {
            self.retired.insert(key.clone(), last);
        }
    }

    /// The layer a link's estimate allows (0: the largest). It moves at that layer's next
    /// keyframe, which is asked for.
    pub fn set_layer(&mut self, key: &K, layer: usize, now: Instant) {
        let Some(link) = self.links.get_mut(key) else {
            return;
        };
        link.target = layer;
        let current = link
            .anchor
            .and_then(|a| self.layers.iter().position(|&s| s == a.ssrc));
        if current != Some(self.arriving(layer)) {
            self.want_keyframe(layer, now);
        }
    }

    /// A link's receiver asked for a keyframe (its decoder lost the picture).
    pub fn keyframe_wanted(&mut self, key: &K, now: Instant) {
        if let Some(target) = self.links.get(key).map(|l| l.target) {
            self.want_keyframe(target, now);
        }
    }

    /// Of the layers that arrive, the one nearest to `layer` (the smallest, when it asks
    /// for a smaller one than arrives).
    fn arriving(&self, layer: usize) -> usize {
        layer.min(self.layers.len().saturating_sub(1))
    }

    fn want_keyframe(&mut self, layer: usize, now: Instant) {
        if self.kind == Kind::Audio || self.layers.is_empty() {
            return;
        }
        let layer = self.arriving(layer);
        let recent = self
            .asked
            .get(&layer)
            .is_some_and(|&at| now.saturating_duration_since(at) < KEYFRAME_GAP);
        if recent {
            self.wanted.insert(layer);
        } else {
            self.ask(layer, now);
        }
    }

    fn ask(&mut self, layer: usize, now: Instant) {
        self.wanted.remove(&layer);
        self.asked.insert(layer, now);
        if let Some(&ssrc) = self.layers.get(layer) {
            self.requests.push_back(ssrc);
            self.stats.keyframe_requests += 1;
        }
    }

    /// A packet from upstream: forwarded to every link that follows its stream, and the
    /// start of one for a link waiting for a keyframe of its layer.
    pub fn push(&mut self, packet: &Packet) {
        let Some(layer) = self.layers.iter().position(|&s| s == packet.header.ssrc) else {
            self.stats.dropped += 1;
            return;
        };
        if packet.payload.is_empty() {
            self.stats.dropped += 1;
            return;
        }
        match self.seen[layer].arrive(packet.header.sequence_number) {
            Arrival::New => {}
            Arrival::Again => {
                self.stats.duplicates += 1;
                return;
            }
            Arrival::TooOld => {
                self.stats.dropped += 1;
                return;
            }
        }
        let start = match self.kind {
            Kind::Audio => true,
            Kind::Video => starts_keyframe(&packet.payload),
        };
        if start {
            // The keyframe asked for has come: no further request for it.
            self.wanted.remove(&layer);
        }
        let kind = self.kind;
        let top = self.layers.len() - 1;
        for (key, link) in &mut self.links {
            let follows = link.anchor.is_some_and(|a| a.ssrc == packet.header.ssrc);
            if !follows {
                if !(start && link.target.min(top) == layer) {
                    continue;
                }
                link.anchor = Some(Self::anchor_at(link, packet, kind));
                self.stats.switches += 1;
            }
            if let Some(out) = Self::rewrite(link, packet) {
                self.packets.push_back(Forwarded {
                    link: key.clone(),
                    packet: out,
                });
                self.stats.forwarded += 1;
            }
        }
    }

    /// A new anchor for `link` at `packet` (a keyframe's first packet, or any audio
    /// packet): numbered on from the link's last output.
    fn anchor_at(link: &Link, packet: &Packet, kind: Kind) -> Anchor {
        let (out_seq, out_ts) = match link.last {
            Some((seq, ts)) => (seq.wrapping_add(1), ts.wrapping_add(kind.step())),
            None => (packet.header.sequence_number, packet.header.timestamp),
        };
        let in_seq = extend_seq(None, packet.header.sequence_number);
        Anchor {
            ssrc: packet.header.ssrc,
            in_seq,
            in_ts: packet.header.timestamp,
            out_seq,
            out_ts,
            highest: in_seq,
        }
    }

    /// `packet` as `link` carries it, or `None` if it is from before the link's anchor or
    /// too old.
    fn rewrite(link: &mut Link, packet: &Packet) -> Option<Packet> {
        let anchor = link.anchor.as_mut()?;
        let seq = extend_seq(Some(anchor.highest), packet.header.sequence_number);
        if seq < anchor.in_seq || anchor.highest.saturating_sub(seq) > MAX_BEHIND {
            return None;
        }
        let out_seq = anchor.out_seq.wrapping_add((seq - anchor.in_seq) as u16);
        let out_ts = anchor
            .out_ts
            .wrapping_add(packet.header.timestamp.wrapping_sub(anchor.in_ts));
        if seq >= anchor.highest {
            anchor.highest = seq;
            link.last = Some((out_seq, out_ts));
        }
        Some(Packet {
            // The upstream link's header extensions (its transport-wide numbers) mean
            // nothing downstream; the link's chain adds its own.
            header: Header {
                version: 2,
                marker: packet.header.marker,
                payload_type: link.payload_type,
                sequence_number: out_seq,
                timestamp: out_ts,
                ssrc: link.ssrc,
                ..Header::default()
            },
            payload: Bytes::clone(&packet.payload),
        })
    }

    /// The next packet to write to a link.
    pub fn poll_packet(&mut self) -> Option<Forwarded<K>> {
        self.packets.pop_front()
    }

    /// The next upstream SSRC to send a keyframe request (PLI) for.
    pub fn poll_keyframe_request(&mut self) -> Option<u32> {
        self.requests.pop_front()
    }

    /// The keyframe requests due upstream at `now` (a wanted one whose gap ended among
    /// them): the SSRCs to send a PLI for. For an IO shell that looks in as it reads.
    pub fn due_keyframe_requests(&mut self, now: Instant) -> Vec<u32> {
        if self.poll_timeout().is_some_and(|at| at <= now) {
            self.handle_timeout(now);
        }
        std::iter::from_fn(|| self.poll_keyframe_request()).collect()
    }

    /// When a keyframe wanted inside the gap may be asked for.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wanted
            .iter()
            .filter_map(|layer| self.asked.get(layer).map(|&at| at + KEYFRAME_GAP))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .wanted
            .iter()
            .copied()
            .filter(|layer| {
                self.asked
                    .get(layer)
                    .is_none_or(|&at| now.saturating_duration_since(at) >= KEYFRAME_GAP)
            })
            .collect();
        for layer in due {
            self.ask(layer, now);
        }
    }
}

#[cfg(test)]
mod tests;
