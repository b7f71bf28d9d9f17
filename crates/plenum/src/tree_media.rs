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
//!
//! **The stage**: every tree link carries a fourth track, the stage's voice (Opus): a peer
//! the root puts on stage (a viewer whose raised hand the presenter accepted; the word
//! comes down the tree, and while nobody is on stage no stage packet is passed on). Its
//! audio goes on the stage track of each of its tree links, and every node passes what a
//! neighbour sends on the stage to each other neighbour, so it floods along tree edges and
//! reaches everyone once, never back to where it came from. One voice at a time: a second
//! neighbour's stage packets are dropped until the first has been silent for
//! [`STAGE_HANDOVER`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plenum_media::Content;
use plenum_proto::PeerId;
use rtc::rtp::{Header, Packet};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::congestion::{CapReports, LinkStats};
use crate::forward::{Forwarder, Kind};
use crate::outbound::TrackSender;

/// A link's lanes as this module numbers them: audio, camera, screen (from the parent to
/// the children), and the stage (from anywhere to everywhere).
pub(crate) const AUDIO: usize = 0;
pub(crate) const STAGE: usize = 3;
pub(crate) const LANES: usize = 4;

/// How long the stage's voice must be silent before another neighbour's is taken.
pub(crate) const STAGE_HANDOVER: Duration = Duration::from_millis(500);
/// RTP timestamp ticks of one 20 ms Opus frame.
const OPUS_FRAME_TICKS: u32 = 960;

/// The lane index of a video lane.
pub(crate) fn video_lane(lane: Content) -> usize {
    match lane {
        Content::Camera => 1,
        Content::Screen => 2,
    }
}

/// One outgoing track of a link.
#[derive(Clone)]
pub(crate) struct Out {
    pub(crate) track: Arc<TrackLocalStaticSample>,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
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

/// Makes the writes the unit returned, each through its link's chain; a link that cannot
/// take one misses it, the others do not wait.
pub(crate) async fn send(writes: Vec<Write>) {
    use webrtc::media_stream::track_local::TrackLocal;
    for (track, packet) in writes {
        if let Err(e) = track.write_rtp(packet).await {
            tracing::trace!(error = %e, "forwarded packet not sent");
        }
    }
}

struct Link {
    tracks: [Option<Out>; LANES],
    stats: Arc<LinkStats>,
}

/// Where the stage's voice comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StageSource {
    Us,
    Neighbour(PeerId),
}

/// Our own voice on a stage as RTP: its stream's SSRC and next numbers (the tree's stage,
/// and each seat of a cells room's).
pub(crate) struct OwnVoice {
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl OwnVoice {
    /// A stream of random SSRC and starting numbers.
    pub(crate) fn new() -> Self {
        Self {
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
        }
    }

    /// One Opus frame of ours as this stream's next packet.
    pub(crate) fn next(&mut self, payload: bytes::Bytes) -> Packet {
        let packet = Packet {
            header: Header {
                version: 2,
                sequence_number: self.seq,
                timestamp: self.ts,
                ssrc: self.ssrc,
                ..Header::default()
            },
            payload,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(OPUS_FRAME_TICKS);
        packet
    }
}

struct State {
    parent: Option<PeerId>,
    /// The tree's root, once known.
    root: Option<PeerId>,
    children: BTreeSet<PeerId>,
    is_root: bool,
    /// Every link whose media is up, with its tracks.
    links: HashMap<PeerId, Link>,
    /// The links we forward to (children with their media up, while we are not the root).
    forwarding: BTreeSet<PeerId>,
    /// The upstream SSRC of each lane, once a packet of our parent's came.
    upstream: [Option<u32>; LANES],
    lanes: [Forwarder<PeerId>; LANES],
    /// The voice the stage carries, as the application set it.
    speaker: Option<PeerId>,
    stage_from: Option<StageSource>,
    /// When the stage's neighbour last sent.
    stage_heard: Option<Instant>,
    /// The links the stage goes to now.
    stage_links: BTreeSet<PeerId>,
    own: OwnVoice,
    /// What we last told our parent of the narrowest path below us, by lane.
    caps: CapReports<(PeerId, usize)>,
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
                root: None,
                children: BTreeSet::new(),
                is_root: false,
                links: HashMap::new(),
                forwarding: BTreeSet::new(),
                upstream: [None; LANES],
                lanes: [
                    Forwarder::new(Kind::Audio),
                    Forwarder::new(Kind::Video),
                    Forwarder::new(Kind::Video),
                    Forwarder::new(Kind::Audio),
                ],
                speaker: None,
                stage_from: None,
                stage_heard: None,
                stage_links: BTreeSet::new(),
                own: OwnVoice::new(),
                caps: CapReports::default(),
            }),
        }
    }
}

/// Our place in the tree, as the tree's state says it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Place {
    pub(crate) parent: Option<PeerId>,
    pub(crate) children: Vec<PeerId>,
    pub(crate) is_root: bool,
    /// The root, once known.
    pub(crate) root: Option<PeerId>,
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
    pub(crate) fn route(&self, place: Place, now: Instant) -> Moved {
        let mut state = self.state();
        if state.parent != place.parent {
            // Packets of a new parent start a new upstream (`push`).
            state.upstream = [None; LANES];
        }
        state.parent = place.parent;
        state.children = place.children.into_iter().collect();
        state.is_root = place.is_root;
        state.root = place.root;
        state.sync(now)
    }

    /// Whose media a track of `peer`'s carries, for the sink, the mix and the figures:
    /// the root's, when `peer` is our parent (it forwards the root's, or is the root);
    /// `peer`'s own from a child, or at the root. `None` while it cannot be told: before
    /// we have a place (the only link is to the parent-to-be), or from our parent before
    /// we know the root. Its media then reach nobody: named after the forwarder, the
    /// root's pictures would show under another's name.
    pub(crate) fn origin(&self, peer: &PeerId) -> Option<PeerId> {
        let state = self.state();
        if state.is_root {
            return Some(peer.clone());
        }
        match (&state.parent, &state.root) {
            (Some(parent), Some(root)) if parent == peer => Some(root.clone()),
            (Some(parent), None) if parent == peer => None,
            (Some(_), _) => Some(peer.clone()),
            (None, _) => None,
        }
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
        state.stage_links.remove(peer);
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
        for lane in 0..LANES {
            state.caps.forget(&(peer.clone(), lane));
        }
        state.forwarding.remove(peer);
        state.stage_links.remove(peer);
        for lane in &mut state.lanes {
            lane.remove_link(peer);
        }
        if state.stage_from == Some(StageSource::Neighbour(peer.clone())) {
            state.stage_from = None;
            state.sync_stage(crate::clock::now());
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
        state.forward(lane, packet, now)
    }

    /// The keyframe requests due upstream on `lane`, if `from` is our parent: the SSRCs to
    /// send a PLI for.
    pub(crate) fn keyframe_requests(&self, from: &PeerId, lane: usize, now: Instant) -> Vec<u32> {
        let mut state = self.state();
        if state.parent.as_ref() != Some(from) {
            return Vec::new();
        }
        state.lanes[lane].due_keyframe_requests(now)
    }

    /// The most to tell `from` we take on `lane`, if it is our parent and one is due: the
    /// narrowest path of the children we pass its media on to (a REMB on its link; it sends
    /// no more than that fits, so a child behind a narrow path does not get more than it
    /// carries).
    pub(crate) fn cap_due(&self, from: &PeerId, lane: usize, now: Instant) -> Option<u64> {
        let mut state = self.state();
        let State {
            parent,
            forwarding,
            links,
            caps,
            ..
        } = &mut *state;
        if parent.as_ref() != Some(from) {
            return None;
        }
        let below = forwarding
            .iter()
            .filter_map(|child| links.get(child))
            .filter_map(|link| {
                let ssrc = link.tracks.get(lane)?.as_ref()?.ssrc;
                Some(link.stats.fitted_estimate_for(ssrc, now))
            });
        caps.due(&(from.clone(), lane), below, now)
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

    /// The voice the stage carries is `speaker`'s (`None`: nobody's). Returns whether it is
    /// ours: our audio then goes on the stage ([`TreeMedia::push_own`]), not on our links'
    /// own audio tracks. The root is never on the stage: everyone hears it already.
    pub(crate) fn set_stage(&self, speaker: Option<PeerId>, me: &PeerId, now: Instant) -> bool {
        let mut state = self.state();
        let ours = speaker.as_ref() == Some(me) && !state.is_root;
        state.speaker = speaker;
        if !ours && state.stage_from == Some(StageSource::Us) {
            state.stage_from = None;
            state.sync_stage(now);
        }
        ours
    }

    /// Whose voice the stage carries, for the audio task's mix.
    pub(crate) fn speaker(&self) -> Option<PeerId> {
        self.state().speaker.clone()
    }

    /// A stage packet from the neighbour `from`: the writes that pass it on to every other
    /// neighbour, or `None` if it is not the stage's voice (nobody is on stage, not a tree
    /// neighbour, or a second voice while the first still speaks), which is then not
    /// played either.
    pub(crate) fn push_stage(
        &self,
        from: &PeerId,
        packet: &Packet,
        now: Instant,
    ) -> Option<Vec<Write>> {
        let mut state = self.state();
        let state = &mut *state;
        // Nobody on stage (as the root said): nothing is passed on or played.
        if state.speaker.is_none() || !state.neighbours().any(|n| n == from) {
            return None;
        }
        let from_here = StageSource::Neighbour(from.clone());
        match &state.stage_from {
            Some(StageSource::Us) => return None,
            Some(source) if *source == from_here => {}
            Some(_)
                if state
                    .stage_heard
                    .is_some_and(|t| now.saturating_duration_since(t) < STAGE_HANDOVER) =>
            {
                return None;
            }
            _ => {
                state.stage_from = Some(from_here);
                state.sync_stage(now);
            }
        }
        state.stage_heard = Some(now);
        Some(state.forward(STAGE, packet, now))
    }

    /// One of our Opus frames for the stage: the writes that put it on every neighbour's
    /// stage track.
    pub(crate) fn push_own(&self, payload: bytes::Bytes, now: Instant) -> Vec<Write> {
        let mut state = self.state();
        let state = &mut *state;
        if state.stage_from != Some(StageSource::Us) {
            state.stage_from = Some(StageSource::Us);
            state.sync_stage(now);
        }
        let packet = state.own.next(payload);
        state.forward(STAGE, &packet, now)
    }

    /// Packets forwarded so far, over every lane.
    pub(crate) fn forwarded(&self) -> u64 {
        self.state().lanes.iter().map(|l| l.stats().forwarded).sum()
    }
}

impl State {
    /// Our tree neighbours: the parent and the children.
    fn neighbours(&self) -> impl Iterator<Item = &PeerId> {
        self.parent.iter().chain(self.children.iter())
    }

    /// `packet` through `lane`'s unit: the writes to the links it goes to.
    fn forward(&mut self, lane: usize, packet: &Packet, now: Instant) -> Vec<Write> {
        let ssrc = packet.header.ssrc;
        if self.upstream[lane] != Some(ssrc) {
            self.upstream[lane] = Some(ssrc);
            self.lanes[lane].set_upstream(&[ssrc], now);
        }
        let unit = &mut self.lanes[lane];
        unit.push(packet);
        let mut writes = Vec::new();
        while let Some(out) = unit.poll_packet() {
            let track = self
                .links
                .get(&out.link)
                .and_then(|l| l.tracks[lane].as_ref());
            if let Some(track) = track {
                writes.push((Arc::clone(&track.track), out.packet));
            }
        }
        writes
    }

    /// Puts the stage on every neighbour's link but the one it comes from.
    fn sync_stage(&mut self, now: Instant) {
        let from = match &self.stage_from {
            Some(StageSource::Neighbour(peer)) => Some(peer.clone()),
            _ => None,
        };
        let want: BTreeSet<PeerId> = self
            .neighbours()
            .filter(|n| Some(*n) != from.as_ref())
            .filter(|n| {
                self.links
                    .get(*n)
                    .is_some_and(|l| l.tracks[STAGE].is_some())
            })
            .cloned()
            .collect();
        for peer in self.stage_links.difference(&want) {
            self.lanes[STAGE].remove_link(peer);
        }
        for peer in want.difference(&self.stage_links) {
            if let Some(t) = self.links.get(peer).and_then(|l| l.tracks[STAGE].as_ref()) {
                self.lanes[STAGE].add_link(peer.clone(), t.ssrc, t.payload_type, 0, now);
            }
        }
        self.stage_links = want;
    }

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
            for lane in &mut self.lanes[..STAGE] {
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
            for (lane, track) in link.tracks[..STAGE].iter().enumerate() {
                if let Some(t) = track {
                    self.lanes[lane].add_link(peer.clone(), t.ssrc, t.payload_type, 0, now);
                }
            }
            moved.forwarded.push(peer.clone());
        }
        self.forwarding = want;
        if let Some(StageSource::Neighbour(from)) = &self.stage_from
            && !self.neighbours().any(|n| n == from)
        {
            self.stage_from = None;
        }
        self.sync_stage(now);
        moved
    }
}

#[cfg(test)]
mod tests;
