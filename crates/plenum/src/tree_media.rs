//! Media down a broadcast tree: a node passes what its parent sends it (audio, camera,
//! screen) on to each of its children, packet by packet through the sans-IO
//! [`Forwarder`], without decoding. The root's media reaches every node along tree edges.
//!
//! The driver says where the node stands ([`TreeMedia::route`], from every tree state
//! change) and which tracks each link carries ([`TreeMedia::adopt`], when its media comes
//! up). A child's link then carries what we forward, never what we publish: the media
//! tasks are told it went down, and told again when it is ours once more (we became the
//! root, or it is no longer our child). The readers of our parent's tracks push each packet
//! here and write what comes back to the children's tracks, and send the keyframe requests
//! the unit aggregates upstream; a child's own request reaches the unit through the video
//! task, which hears every link's PLIs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use plenum_media::Content;
use plenum_proto::PeerId;
use rtc::rtp::Packet;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::congestion::LinkStats;
use crate::forward::{Forwarder, Kind};
use crate::outbound::TrackSender;

/// A link's lanes as this module numbers them.
pub(crate) const AUDIO: usize = 0;
pub(crate) const LANES: usize = 3;

/// The lane index of a video lane.
pub(crate) fn video_lane(lane: Content) -> usize {
    match lane {
        Content::Camera => 1,
        Content::Screen => 2,
    }
}

/// One outgoing track of a link.
#[derive(Clone)]
struct Out {
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
}

impl From<&TrackSender> for Out {
    fn from(sender: &TrackSender) -> Self {
        Self {
            track: Arc::clone(&sender.track),
            ssrc: sender.ssrc,
            payload_type: sender.payload_type,
        }
    }
}

/// A link's tracks, by lane.
pub(crate) type LinkTracks = [Option<TrackSender>; LANES];

/// What a forwarded packet needs: the child's track and the packet as it carries it.
pub(crate) type Write = (Arc<TrackLocalStaticSample>, Packet);

struct Link {
    tracks: [Option<Out>; LANES],
    stats: Arc<LinkStats>,
}

struct State {
    parent: Option<PeerId>,
    children: BTreeSet<PeerId>,
    is_root: bool,
    /// Every link whose media is up, with its tracks.
    links: HashMap<PeerId, Link>,
    /// The links we forward to (children with their media up, while we are not the root).
    forwarding: BTreeSet<PeerId>,
    /// The upstream SSRC of each lane, once a packet of our parent's came.
    upstream: [Option<u32>; LANES],
    lanes: [Forwarder<PeerId>; LANES],
}

/// A node's forwarding, shared by the driver, the video task and the track readers.
pub(crate) struct TreeMedia {
    state: Mutex<State>,
}

impl std::fmt::Debug for TreeMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeMedia").finish_non_exhaustive()
    }
}

impl Default for TreeMedia {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                parent: None,
                children: BTreeSet::new(),
                is_root: false,
                links: HashMap::new(),
                forwarding: BTreeSet::new(),
                upstream: [None; LANES],
                lanes: [
                    Forwarder::new(Kind::Audio),
                    Forwarder::new(Kind::Video),
                    Forwarder::new(Kind::Video),
                ],
            }),
        }
    }
}

/// Which links a change of place handed to forwarding, and which it gave back to our own
/// media.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) forwarded: Vec<PeerId>,
    pub(crate) released: Vec<PeerId>,
}

impl TreeMedia {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Our place in the tree changed.
    pub(crate) fn route(
        &self,
        parent: Option<PeerId>,
        children: &[PeerId],
        is_root: bool,
        now: Instant,
    ) -> Moved {
        let mut state = self.state();
        if state.parent != parent {
            // Packets of a new parent start a new upstream (`push`).
            state.upstream = [None; LANES];
        }
        state.parent = parent;
        state.children = children.iter().cloned().collect();
        state.is_root = is_root;
        state.sync(now)
    }

    /// A link's media is up with these tracks. Returns whether we forward to it (its tracks
    /// are ours alone then; the media tasks must not write to them).
    pub(crate) fn adopt(
        &self,
        peer: &PeerId,
        tracks: &LinkTracks,
        stats: &Arc<LinkStats>,
        now: Instant,
    ) -> bool {
        let mut state = self.state();
        let link = Link {
            tracks: std::array::from_fn(|i| tracks[i].as_ref().map(Out::from)),
            stats: Arc::clone(stats),
        };
        // New tracks (a new connection): the unit starts the link again.
        state.forwarding.remove(peer);
        for lane in &mut state.lanes {
            lane.remove_link(peer);
        }
        state.links.insert(peer.clone(), link);
        state.sync(now);
        state.forwarding.contains(peer)
    }

    /// A link's media went down.
    pub(crate) fn drop_link(&self, peer: &PeerId) {
        let mut state = self.state();
        state.links.remove(peer);
        state.forwarding.remove(peer);
        for lane in &mut state.lanes {
            lane.remove_link(peer);
        }
    }

    /// Whether we forward to `peer` (its tracks carry our parent's media, not ours).
    #[cfg(test)]
    pub(crate) fn forwards_to(&self, peer: &PeerId) -> bool {
        self.state().forwarding.contains(peer)
    }

    /// A packet of `from`'s on `lane`: what to write to our children, if `from` is our
    /// parent.
    pub(crate) fn push(
        &self,
        from: &PeerId,
        lane: usize,
        packet: &Packet,
        now: Instant,
    ) -> Vec<Write> {
        let mut state = self.state();
        let state = &mut *state;
        if state.parent.as_ref() != Some(from) || state.forwarding.is_empty() {
            return Vec::new();
        }
        let ssrc = packet.header.ssrc;
        if state.upstream[lane] != Some(ssrc) {
            state.upstream[lane] = Some(ssrc);
            state.lanes[lane].set_upstream(&[ssrc], now);
        }
        let unit = &mut state.lanes[lane];
        unit.push(packet);
        let mut writes = Vec::new();
        while let Some(out) = unit.poll_packet() {
            let track = state
                .links
                .get(&out.link)
                .and_then(|l| l.tracks[lane].as_ref());
            if let Some(track) = track {
                writes.push((Arc::clone(&track.track), out.packet));
            }
        }
        writes
    }

    /// The keyframe requests due upstream on `lane`, if `from` is our parent: the SSRCs to
    /// send a PLI for.
    pub(crate) fn keyframe_requests(&self, from: &PeerId, lane: usize, now: Instant) -> Vec<u32> {
        let mut state = self.state();
        if state.parent.as_ref() != Some(from) {
            return Vec::new();
        }
        let unit = &mut state.lanes[lane];
        if unit.poll_timeout().is_some_and(|at| at <= now) {
            unit.handle_timeout(now);
        }
        std::iter::from_fn(|| unit.poll_keyframe_request()).collect()
    }

    /// A child asked for a keyframe on the track with `ssrc`. Returns whether it was a
    /// link we forward to (otherwise the request is for our own media).
    pub(crate) fn keyframe_wanted(&self, peer: &PeerId, ssrc: u32, now: Instant) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        if !state.forwarding.contains(peer) {
            return false;
        }
        let Some(link) = state.links.get(peer) else {
            return false;
        };
        for (lane, track) in link.tracks.iter().enumerate() {
            if track.as_ref().is_some_and(|t| t.ssrc == ssrc) {
                state.lanes[lane].keyframe_wanted(peer, now);
            }
        }
        true
    }

    /// Packets forwarded so far, over every lane.
    pub(crate) fn forwarded(&self) -> u64 {
        self.state().lanes.iter().map(|l| l.stats().forwarded).sum()
    }
}

impl State {
    /// Puts every child whose media is up under forwarding while we are not the root, and
    /// gives every other link back to our own media.
    fn sync(&mut self, now: Instant) -> Moved {
        let want: BTreeSet<PeerId> = if self.is_root {
            BTreeSet::new()
        } else {
            self.children
                .iter()
                .filter(|c| self.links.contains_key(*c))
                .cloned()
                .collect()
        };
        let mut moved = Moved::default();
        for peer in self.forwarding.difference(&want) {
            for lane in &mut self.lanes {
                lane.remove_link(peer);
            }
            if let Some(link) = self.links.get(peer) {
                link.stats.set_sending(0, None);
                link.stats.set_sending(1, None);
            }
            moved.released.push(peer.clone());
        }
        for peer in want.difference(&self.forwarding) {
            let Some(link) = self.links.get(peer) else {
                continue;
            };
            for (lane, track) in link.tracks.iter().enumerate() {
                if let Some(t) = track {
                    self.lanes[lane].add_link(peer.clone(), t.ssrc, t.payload_type, 0, now);
                }
            }
            moved.forwarded.push(peer.clone());
        }
        self.forwarding = want;
        moved
    }
}

#[cfg(test)]
mod tests;
