//! A room's video: one task that takes pictures from our sources (the camera and a shared
//! screen, each a lane with its own track on every link) at their frame rates, encodes each
//! once (VP8) and writes it to every link's track for that lane; and, per remote video track,
//! a reader that reassembles frames, decodes them and hands the pictures to the sink.
//!
//! Keyframes: sent when a link comes up, when a receiver asks (PLI/FIR, through the links'
//! keyframe taps), at most one per [`KEYFRAME_GAP`]. A receiver asks when its track starts and
//! whenever it had to give up a frame.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_media::{Content, VideoSink, VideoSource};
use plenum_proto::PeerId;
use plenum_vpx::{Encoder, EncoderConfig};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::congestion::LinkStats;
use crate::outbound::{TrackSender, send_to_all};
use crate::reassembly::Reassembler;
use crate::tree_media::TreeMedia;
use crate::types::{RoomError, RoomEvent};

mod layers;

use layers::Scale;

/// Commands queued for the video task.
const COMMAND_QUEUE: usize = 64;
/// Keyframe requests queued (one pending is as good as many).
pub(crate) const KEYFRAME_QUEUE: usize = 8;
/// The least time between two keyframes sent on request.
const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// A link whose pacer holds more than this gets no new picture on top (its layer skips one).
const MAX_QUEUE: Duration = Duration::from_millis(200);
/// The least time between two keyframe requests a receiver sends.
const REQUEST_GAP: Duration = Duration::from_millis(500);

pub(crate) enum VideoCmd {
    /// A link's VP8 track for one lane is ready to send on.
    LinkUp {
        peer: PeerId,
        lane: Content,
        sender: TrackSender,
        /// What the link learns of its path (its estimate picks the layer it gets).
        stats: Arc<LinkStats>,
    },
    LinkDown {
        peer: PeerId,
    },
    /// What to send on a lane (`None`: nothing).
    Source(Content, Option<Box<dyn VideoSource>>),
    /// Drop every source (closing cameras and screen captures) and end; the reply comes
    /// once they are dropped.
    Stop(tokio::sync::oneshot::Sender<()>),
}

impl std::fmt::Debug for VideoCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LinkUp { peer, lane, .. } => write!(f, "LinkUp({}, {lane:?})", peer.short()),
            Self::LinkDown { peer } => write!(f, "LinkDown({})", peer.short()),
            Self::Source(lane, s) => write!(f, "Source({lane:?}, {})", s.is_some()),
            Self::Stop(_) => f.write_str("Stop"),
        }
    }
}

/// A keyframe request: from which peer, about which of our streams (its SSRC).
pub(crate) type KeyframeRequest = (PeerId, u32);

/// Where decoded pictures go; shared by every remote track's reader.
pub(crate) type SharedSink = Arc<Mutex<Option<Box<dyn VideoSink>>>>;

/// The room's side of the video task.
#[derive(Clone)]
pub(crate) struct VideoHandle {
    pub(crate) cmds: mpsc::Sender<VideoCmd>,
    pub(crate) keyframes: mpsc::Sender<KeyframeRequest>,
    pub(crate) sink: SharedSink,
    /// The streams we receive, with their frame clocks (for [`crate::Room::stats`]).
    pub(crate) receiving: Receiving,
    /// Forwarding down a tree, shared with the driver, the task and the readers.
    pub(crate) tree: Arc<TreeMedia>,
}

/// Each received video stream's frame clock and picture size, by peer and lane.
pub(crate) type Receiving =
    Arc<Mutex<HashMap<(PeerId, Content), (crate::stats::FrameClock, (u32, u32))>>>;

/// What a remote video track's reader passes packets through, and whom its pictures are
/// named after.
#[derive(Clone)]
pub(crate) enum Relay {
    /// A peer's own track: its pictures are its own.
    Own,
    /// A tree room's link: what our parent sends goes on to our children, and is the
    /// root's.
    Tree(Arc<TreeMedia>),
    /// A presenter lane of a cells room's stage: passed on along the cells when this
    /// neighbour is the lane's source (a copy is dropped and its sender told to stop), and
    /// the presenter's.
    Stage {
        cells: Arc<crate::cell_stage::CellStage>,
        lane: usize,
        words: mpsc::Sender<(PeerId, crate::cell_stage::Control)>,
    },
}

impl Relay {
    /// Passes a packet of `from`'s on (on the tree's `lane`); returns whether it is to be
    /// decoded here.
    async fn packet(
        &self,
        from: &PeerId,
        lane: Content,
        packet: &rtc::rtp::Packet,
        now: Instant,
    ) -> bool {
        match self {
            Self::Own => true,
            Self::Tree(tree) => {
                let lane = crate::tree_media::video_lane(lane);
                crate::tree_media::send(tree.push(from, lane, packet, now)).await;
                true
            }
            Self::Stage { cells, lane, words } => {
                let pushed = cells.push(from, *lane, packet, now);
                for word in pushed.controls {
                    if words.try_send(word).is_err() {
                        tracing::debug!("stage word dropped; the next copy asks again");
                    }
                }
                crate::tree_media::send(pushed.writes).await;
                pushed.play.is_some()
            }
        }
    }

    /// The keyframe requests due upstream through `from`'s link: the SSRCs to ask for.
    fn keyframe_requests(&self, from: &PeerId, lane: Content, now: Instant) -> Vec<u32> {
        match self {
            Self::Own => Vec::new(),
            Self::Tree(tree) => {
                tree.keyframe_requests(from, crate::tree_media::video_lane(lane), now)
            }
            Self::Stage { cells, lane, .. } => cells.keyframe_requests(from, *lane, now),
        }
    }

    /// The most to tell `from` we take on its link, if it is due: we pass its stream on,
    /// and this is the narrowest path it goes on to.
    fn cap_due(&self, from: &PeerId, lane: Content, now: Instant) -> Option<u64> {
        match self {
            Self::Own => None,
            Self::Tree(tree) => tree.cap_due(from, crate::tree_media::video_lane(lane), now),
            Self::Stage { cells, lane, .. } => cells.cap_due(from, *lane, now),
        }
    }

    /// Whose pictures `from`'s track carries; `None` while it cannot be told.
    fn origin(&self, from: &PeerId) -> Option<PeerId> {
        match self {
            Self::Own => Some(from.clone()),
            Self::Tree(tree) => tree.origin(from),
            Self::Stage { cells, lane, .. } => cells.holder(*lane),
        }
    }
}

/// Where a remote track's reader and decoder hand what they make.
pub(crate) struct TrackEnds {
    pub(crate) sink: SharedSink,
    pub(crate) events: crate::events::EventSender,
    pub(crate) receiving: Receiving,
}

impl std::fmt::Debug for VideoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoHandle").finish_non_exhaustive()
    }
}

/// One picture size of a lane: its encoder, and its keyframe and frame-rate state.
struct Layer {
    encoder: Option<Encoder>,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    /// The least time between two keyframes sent on request: the time one takes to arrive.
    keyframe_gap: Duration,
    /// One picture of each `divisor` is sent (frame rate, when the rate alone is not enough).
    divisor: u32,
    /// Pictures since the last one sent.
    skipped: u32,
    /// The rate planned for it, in kbit/s.
    rate: u32,
}

impl Layer {
    fn new() -> Self {
        Self {
            encoder: None,
            keyframe_wanted: true,
            last_keyframe: None,
            keyframe_gap: KEYFRAME_GAP,
            divisor: 1,
            skipped: 0,
            rate: layers::FLOOR_KBPS,
        }
    }
}

/// A link a lane sends on: its track, what it has learnt of its path, and its layer.
struct LaneLink {
    sender: TrackSender,
    stats: Arc<LinkStats>,
    /// The layer the link gets pictures from (`None`: none yet).
    layer: Option<usize>,
    /// The layer the link moves to at that layer's next keyframe.
    next: Option<usize>,
    /// When it may climb to a bigger layer again.
    climb: layers::Climb,
}

impl LaneLink {
    fn wants(&self, layer: usize) -> bool {
        self.layer == Some(layer) || self.next == Some(layer)
    }

    /// The lane `index` no longer goes out on this link: it starts again at the next
    /// picture, and the link's figures stop saying it carries the lane (which also lets its
    /// data channel go unpaced) or probes for it.
    fn stop(&mut self, index: usize) {
        self.layer = None;
        self.next = None;
        self.stats.set_sending(index, None);
        self.stats.set_probe(0);
    }
}

/// One stream we publish (the camera, or a shared screen): its source, its layers, and the
/// track on every link it goes out on.
struct Lane {
    kind: Content,
    links: HashMap<PeerId, LaneLink>,
    source: Option<Box<dyn VideoSource>>,
    layers: Vec<Layer>,
    /// The size of the source's pictures the layers were made for.
    size: Option<(u32, u32)>,
    /// When the next picture is due.
    due: Instant,
}

impl Lane {
    fn new(kind: Content) -> Self {
        Self {
            kind,
            links: HashMap::new(),
            source: None,
            layers: Vec::new(),
            size: None,
            due: crate::clock::now(),
        }
    }

    fn every(&self) -> Duration {
        Duration::from_secs(1) / self.source.as_ref().map_or(30, |s| s.fps().clamp(1, 120))
    }

    /// A keyframe on `layer` as soon as the gap allows (the gap: the time the keyframe
    /// takes to reach `stats`' peer, so a request repeated while one is on its way does
    /// not make another).
    fn want_keyframe(&mut self, layer: usize, stats: Option<&LinkStats>) {
        if let Some(l) = self.layers.get_mut(layer) {
            l.keyframe_wanted = true;
            if let Some(stats) = stats {
                let on_its_way = stats.rtt().unwrap_or_default() + stats.queue();
                l.keyframe_gap = on_its_way.max(KEYFRAME_GAP);
            }
        }
    }
}

struct Task {
    lanes: [Lane; 2],
    events: crate::events::EventSender,
    epoch: Instant,
    /// The configured bitrate for the camera; `None`: chosen from the picture size.
    bitrate_kbps: Option<u32>,
    /// Links we forward to: their keyframe requests go to the forwarding unit.
    tree: Arc<TreeMedia>,
    /// And links we pass a cells room's presenter on to.
    cells: Arc<crate::cell_stage::CellStage>,
}

/// Starts a room's video task on a thread of its own (encoding is CPU work that must not
/// hold a runtime worker); it ends on [`VideoCmd::Stop`] or when every handle is dropped.
pub(crate) fn spawn(
    events: crate::events::EventSender,
    bitrate_kbps: Option<u32>,
    (tree, cells): (Arc<TreeMedia>, Arc<crate::cell_stage::CellStage>),
) -> (VideoHandle, crate::media_thread::MediaThread) {
    let (cmds, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (keyframes, keyframe_rx) = mpsc::channel(KEYFRAME_QUEUE);
    let task = Task {
        lanes: [Lane::new(Content::Camera), Lane::new(Content::Screen)],
        events,
        epoch: crate::clock::now(),
        bitrate_kbps,
        tree: Arc::clone(&tree),
        cells,
    };
    let thread =
        crate::media_thread::MediaThread::spawn("plenum-video", task.run(cmd_rx, keyframe_rx));
    let handle = VideoHandle {
        cmds,
        keyframes,
        sink: Arc::new(Mutex::new(None)),
        receiving: Arc::new(Mutex::new(HashMap::new())),
        tree,
    };
    (handle, thread)
}

/// A frame's display time as a `Duration` that webrtc-rs turns into exactly `ticks` at 90 kHz
/// (it truncates, so round up by a nanosecond).
fn frame_duration(fps: u32) -> (u32, Duration) {
    let ticks = 90_000 / fps.clamp(1, 120);
    (
        ticks,
        Duration::from_nanos(u64::from(ticks) * 1_000_000_000 / 90_000 + 1),
    )
}

fn lane_index(kind: Content) -> usize {
    match kind {
        Content::Camera => 0,
        Content::Screen => 1,
    }
}

impl Task {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<VideoCmd>,
        mut keyframes: mpsc::Receiver<KeyframeRequest>,
    ) {
        loop {
            let next = self
                .lanes
                .iter()
                .filter(|l| l.source.is_some())
                .map(|l| l.due)
                .min();
            let sleep = tokio::time::sleep_until(
                next.unwrap_or_else(|| crate::clock::now() + Duration::from_secs(3600))
                    .into(),
            );
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(VideoCmd::Stop(done)) => {
                        for lane in &mut self.lanes {
                            lane.source = None;
                            lane.layers.clear();
                            for link in lane.links.values() {
                                link.stats.set_probe(0);
                            }
                            lane.links.clear();
                        }
                        // The room may have stopped waiting.
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                Some((peer, ssrc)) = keyframes.recv() => {
                    tracing::debug!(peer = peer.short(), ssrc, "keyframe request received");
                    self.keyframe_asked(&peer, ssrc);
                }
                () = sleep, if next.is_some() => {
                    let now = crate::clock::now();
                    for i in 0..self.lanes.len() {
                        let lane = &mut self.lanes[i];
                        if lane.source.is_none() || lane.due > now {
                            continue;
                        }
                        // Late pictures are skipped, not caught up on.
                        let every = lane.every();
                        lane.due = (lane.due + every).max(now);
                        self.frame(i).await;
                    }
                }
            }
        }
    }

    /// A request names our SSRC on that link; an unknown one asks both lanes. One from a
    /// link we forward to goes to the forwarding unit.
    fn keyframe_asked(&mut self, peer: &PeerId, ssrc: u32) {
        let now = crate::clock::now();
        if self.tree.keyframe_wanted(peer, ssrc, now) || self.cells.keyframe_wanted(peer, ssrc, now)
        {
            return;
        }
        let known = self.lanes.iter().any(|l| {
            l.links
                .get(peer)
                .is_some_and(|link| link.sender.ssrc == ssrc)
        });
        for lane in &mut self.lanes {
            let Some(link) = lane.links.get(peer) else {
                continue;
            };
            if known && link.sender.ssrc != ssrc {
                continue;
            }
            let Some(layer) = link.next.or(link.layer) else {
                continue;
            };
            let stats = Arc::clone(&link.stats);
            lane.want_keyframe(layer, Some(&stats));
        }
    }

    fn command(&mut self, cmd: VideoCmd) {
        match cmd {
            VideoCmd::Source(kind, source) => {
                let lane = &mut self.lanes[lane_index(kind)];
                for link in lane.links.values_mut() {
                    link.stop(lane_index(kind));
                }
                lane.layers.clear();
                lane.size = None;
                lane.source = source;
                lane.due = crate::clock::now();
            }
            VideoCmd::LinkUp {
                peer,
                lane,
                sender,
                stats,
            } => {
                tracing::debug!(
                    peer = peer.short(),
                    ?lane,
                    payload_type = sender.payload_type,
                    "video track up"
                );
                let lane = &mut self.lanes[lane_index(lane)];
                // Where to start is decided at the first picture, from the estimate; a new
                // receiver needs a keyframe to start from.
                let link = LaneLink {
                    sender,
                    stats,
                    layer: None,
                    next: None,
                    climb: layers::Climb::default(),
                };
                lane.links.insert(peer, link);
            }
            VideoCmd::LinkDown { peer } => {
                // The link itself may stay (a peer no longer ours to send to in a large
                // room): it no longer carries our video.
                for (index, lane) in self.lanes.iter_mut().enumerate() {
                    if let Some(mut link) = lane.links.remove(&peer) {
                        link.stop(index);
                    }
                }
            }
            // Handled by the loop.
            VideoCmd::Stop(_) => {}
        }
    }

    async fn frame(&mut self, index: usize) {
        let epoch = self.epoch;
        let configured = self.bitrate_kbps.filter(|_| index == 0);
        // With a screen shared beside the camera, the screen gets most of each link.
        let screen_on = self.lanes[1].source.is_some() && !self.lanes[1].links.is_empty();
        let share = match (self.lanes[index].kind, screen_on) {
            (_, false) => 1.0,
            (Content::Camera, true) => 0.3,
            (Content::Screen, true) => 0.7,
        };
        let lane = &mut self.lanes[index];
        let Some(source) = lane.source.as_mut() else {
            return;
        };
        if let Some(reason) = source.take_error() {
            tracing::warn!(lane = ?lane.kind, %reason, "video source failed; publishing stops");
            lane.source = None;
            lane.layers.clear();
            lane.size = None;
            for link in lane.links.values_mut() {
                link.stop(index);
            }
            let error = match lane.kind {
                Content::Camera => RoomError::VideoSource(reason),
                Content::Screen => RoomError::ScreenSource(reason),
            };
            let event = RoomEvent::Error(error);
            self.events.send(event);
            return;
        }
        let now_ms = epoch.elapsed().as_millis() as u32;
        let capture_ms = wall_clock_ms().unwrap_or(now_ms);
        let Some(picture) = source.next_frame(capture_ms) else {
            return;
        };
        if lane.links.is_empty() {
            return;
        }
        let (fps, content) = (source.fps(), source.content());
        let sizes = layers::sizes(picture.width, picture.height, content);
        if lane.size != Some((picture.width, picture.height)) {
            // A new picture size: new layers, and every link starts again.
            lane.size = Some((picture.width, picture.height));
            lane.layers = sizes.iter().map(|_| Layer::new()).collect();
            for link in lane.links.values_mut() {
                link.layer = None;
                link.next = None;
                link.stats.set_sending(index, None);
            }
        }
        let rates: Vec<u32> = sizes
            .iter()
            .map(|&(w, h)| EncoderConfig::bitrate_for(w, h, fps, content))
            .collect();
        let now = crate::clock::now();
        // A link that also carries a presenter's pictures we pass on leaves them most of it.
        let relaying = self.cells.relaying_pictures();
        plan(lane, &rates, (share, &relaying), configured, now);
        let (ticks, duration) = frame_duration(fps);
        // A layer's picture is made only when a link is on it or it is made from it.
        let wanted: Vec<bool> = (0..sizes.len())
            .map(|i| lane.links.values().any(|l| l.wants(i)))
            .collect();
        let needed = layers::needed(&sizes, &wanted);
        let mut made: Vec<Option<plenum_media::VideoFrame>> = vec![Some(picture)];
        for (i, &(width, height)) in sizes.iter().enumerate() {
            if i > 0 {
                let from = |j: usize| made.get(j).and_then(Option::as_ref);
                let picture = match layers::made_from(&sizes, i) {
                    _ if !needed[i] => None,
                    Some(Scale::HalfOf(j)) => from(j).map(|p| p.half()),
                    Some(Scale::ThreeQuarters) => from(0).map(|p| p.three_quarters()),
                    None => None,
                };
                made.push(picture);
            }
            // No link on this layer: not encoded (a link coming to it starts it anew).
            let Some(scaled) = made[i].as_ref().filter(|_| wanted[i]) else {
                lane.layers[i] = Layer::new();
                continue;
            };
            let layer = &mut lane.layers[i];
            layer.skipped += 1;
            if layer.skipped < layer.divisor && !layer.keyframe_wanted {
                continue;
            }
            // A link whose queue already holds more than it should wait for gets no new
            // picture on top of it: the layer skips one, rather than grow the delay.
            let backed_up = lane
                .links
                .values()
                .any(|l| l.wants(i) && l.stats.queue() > MAX_QUEUE);
            if backed_up && !layer.keyframe_wanted {
                continue;
            }
            // The picture stands for those skipped since the last one sent.
            let pictures = layer.skipped.max(1);
            layer.skipped = 0;
            let span = ticks * pictures;
            let Some(encoded) = encode(layer, scaled, (width, height), (span, fps), content, now)
            else {
                continue;
            };
            if encoded.keyframe {
                tracing::debug!(
                    width,
                    height,
                    bytes = encoded.data.len(),
                    "keyframe encoded"
                );
                // Links waiting for this layer move to it on its keyframe.
                for (peer, link) in lane.links.iter_mut().filter(|(_, l)| l.next == Some(i)) {
                    tracing::debug!(
                        peer = peer.short(),
                        lane = ?lane.kind,
                        from = ?link.layer,
                        to = i,
                        estimate = link.stats.estimate(),
                        queue_us = link.stats.queue().as_micros() as u64,
                        "layer moved"
                    );
                    link.layer = Some(i);
                    link.next = None;
                    link.stats.set_sending(index, Some((width, height)));
                }
            }
            let on_layer: Vec<(&PeerId, &TrackSender)> = lane
                .links
                .iter()
                .filter(|(_, l)| l.layer == Some(i))
                .map(|(peer, l)| (peer, &l.sender))
                .collect();
            let data = Bytes::from(encoded.data);
            send_to_all(on_layer, data, duration * pictures, now, "video").await;
        }
    }
}

/// Puts every link of `lane` on the layer its estimate affords (no more than its peer says
/// the paths it passes our pictures on to carry; a move waits for that layer's keyframe),
/// then sets each layer's rate and frame rate for its poorest link, at most `cap` kbit/s.
/// A lane plans on `share` of each link, and of a link in `relaying` (one that also carries
/// a presenter's pictures we pass on) on [`crate::cell_stage::OWN_SHARE_BESIDE_PRESENTER`]
/// of that.
fn plan(
    lane: &mut Lane,
    rates: &[u32],
    (share, relaying): (f64, &BTreeSet<PeerId>),
    cap: Option<u32>,
    now: Instant,
) {
    let share_of = |peer: &PeerId| {
        if relaying.contains(peer) {
            share * crate::cell_stage::OWN_SHARE_BESIDE_PRESENTER
        } else {
            share
        }
    };
    let last = rates.len().saturating_sub(1);
    let mut wanted = Vec::new();
    for (peer, link) in &mut lane.links {
        let share = share_of(peer);
        // What the link may carry, and no more than the narrowest path below it, if its
        // peer passes our pictures on.
        let estimate = link.stats.fitted_estimate_for(link.sender.ssrc, now);
        let budget = layers::budget_kbps(estimate, share);
        // A new link starts on the layer its estimate affords, at that layer's keyframe.
        let from = link.next.or(link.layer).unwrap_or(last);
        let wanted_layer = layers::choose(from, budget, rates);
        link.climb.set_lossy(link.stats.loss() > layers::LOSSY);
        let to = link.climb.gate(from, wanted_layer, now);
        // Only a lane with layers to climb probes (a screen has one).
        if rates.len() > 1 {
            let share_now = link.climb.probe_share(now).filter(|_| wanted_layer < to);
            let probe = share_now.is_some();
            if probe != (link.stats.probe() > 0) {
                tracing::debug!(
                    probe,
                    estimate = link.stats.estimate(),
                    to = wanted_layer,
                    "probe"
                );
            }
            let rate = layers::probe_bps(rates[wanted_layer], share).min(estimate) as f64;
            link.stats
                .set_probe(share_now.map_or(0, |ramp| (rate * ramp).max(1.0) as u64));
        }
        if link.layer == Some(to) {
            link.next = None;
        } else if link.next != Some(to) {
            link.next = Some(to);
            wanted.push(to);
        }
    }
    for layer in wanted {
        lane.want_keyframe(layer, None);
    }
    for (i, &full) in rates.iter().enumerate() {
        let poorest = lane
            .links
            .iter()
            .filter(|(_, l)| l.wants(i))
            .map(|(peer, l)| {
                let estimate = l.stats.fitted_estimate_for(l.sender.ssrc, now);
                layers::budget_kbps(estimate, share_of(peer))
            })
            .min();
        let Some(budget) = poorest else { continue };
        // A configured bitrate is the most any layer is sent at.
        let budget = cap.map_or(budget, |cap| budget.min(cap));
        let may_drop = i == last;
        let (rate, divisor) = layers::rate_and_divisor(budget, full, may_drop);
        let layer = &mut lane.layers[i];
        layer.divisor = divisor;
        layer.rate = rate;
        if let Some(encoder) = layer.encoder.as_mut() {
            let current = encoder.config().bitrate_kbps;
            if current.abs_diff(rate) * 20 > current
                && let Err(e) = encoder.set_bitrate(rate)
            {
                tracing::debug!(error = %e, "bitrate not changed");
            }
        }
    }
}

/// Encodes one picture on a layer (making its encoder first), a keyframe when one is wanted
/// and the gap allows.
fn encode(
    layer: &mut Layer,
    picture: &plenum_media::VideoFrame,
    (width, height): (u32, u32),
    (ticks, fps): (u32, u32),
    content: Content,
    now: Instant,
) -> Option<plenum_vpx::Encoded> {
    if layer.encoder.is_none() {
        let config = EncoderConfig {
            width,
            height,
            bitrate_kbps: layer.rate,
            fps,
            content,
        };
        match Encoder::new(config) {
            Ok(encoder) => layer.encoder = Some(encoder),
            Err(e) => {
                tracing::warn!(error = %e, "no video encoder; picture skipped");
                return None;
            }
        }
        layer.keyframe_wanted = true;
    }
    let encoder = layer.encoder.as_mut()?;
    let force = layer.keyframe_wanted
        && layer
            .last_keyframe
            .is_none_or(|t| now.duration_since(t) >= layer.keyframe_gap);
    let encoded = match encoder.encode(&picture.data, ticks, force) {
        Ok(Some(encoded)) => encoded,
        Ok(None) => {
            tracing::debug!(width, height, "the rate control dropped a picture");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "encoding failed; picture skipped");
            return None;
        }
    };
    if encoded.keyframe {
        layer.keyframe_wanted = false;
        layer.last_keyframe = Some(now);
    }
    Some(encoded)
}

/// Milliseconds of Unix time, low 32 bits: the capture stamp peers on one machine share.
fn wall_clock_ms() -> Option<u32> {
    let since = crate::clock::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(since.as_millis() as u32)
}

/// Frames reassembled and waiting for a track's decoder thread; a frame that finds the
/// queue full is dropped and a keyframe asked for (decoding fell behind). Room for every
/// frame a repaired hole releases at once (a hole waits up to 400 ms: 24 frames at 60 fps);
/// with less, each repair that came late became a keyframe request and a freeze.
const DECODE_QUEUE: usize = 32;
const _: () =
    assert!(DECODE_QUEUE as u128 >= crate::congestion::nack::MAX_AGE.as_millis() * 60 / 1000);

/// Reads a peer's VP8 track: reassembles frames and hands them to a decoder thread of the
/// track's own, which hands pictures to the sink; asks for keyframes when it starts and
/// after losses. Ends with the track; the decoder thread ends with it and is joined.
pub(crate) async fn read_track(
    peer: PeerId,
    lane: Content,
    track: Arc<dyn TrackRemote>,
    ends: TrackEnds,
    relay: Relay,
) {
    let TrackEnds {
        sink,
        events,
        receiving,
    } = ends;
    let book = Arc::clone(&receiving);
    let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel::<Bytes>(DECODE_QUEUE);
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let decoder = {
        let (peer, lost) = (peer.clone(), Arc::clone(&lost));
        let relay = relay.clone();
        std::thread::Builder::new()
            .name(format!("vp8-{}", peer.short()))
            .spawn(move || {
                let ends = TrackEnds {
                    sink,
                    events,
                    receiving: book,
                };
                decode_frames(&peer, lane, &frames_rx, &ends, &lost, &relay)
            })
    };
    let decoder = match decoder {
        Ok(thread) => thread,
        Err(e) => return tracing::error!(error = %e, "no decoder thread; video ignored"),
    };
    let mut reassembler = Reassembler::new();
    let mut media_ssrc = track.ssrcs().await.first().copied();
    let mut last_request: Option<Instant> = None;
    let mut behind = 0u64;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    request_keyframe(&*track, media_ssrc, &mut last_request).await;
    // Whether the last packet was ours to decode (a stage copy is not; nor asked a
    // keyframe of).
    let mut decoding = true;
    loop {
        let frames = tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    media_ssrc.get_or_insert(packet.header.ssrc);
                    decoding = relay.packet(&peer, lane, &packet, crate::clock::now()).await;
                    if !decoding {
                        continue;
                    }
                    reassembler.push(
                        packet.header.sequence_number,
                        packet.header.timestamp,
                        packet.header.marker,
                        packet.payload,
                        crate::clock::now(),
                    )
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => continue,
            },
            _ = poll.tick() => reassembler.poll(crate::clock::now()),
        };
        for frame in frames {
            match frames_tx.try_send(frame.data) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(_)) => {
                    behind += 1;
                    reassembler.lose();
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => break,
            }
        }
        if lost.swap(false, std::sync::atomic::Ordering::AcqRel) {
            reassembler.lose();
        }
        if decoding && (reassembler.take_keyframe_request() || reassembler.waiting()) {
            request_keyframe(&*track, media_ssrc, &mut last_request).await;
        }
        let now = crate::clock::now();
        for ssrc in relay.keyframe_requests(&peer, lane, now) {
            send_pli(&*track, ssrc).await;
        }
        if let Some(media_ssrc) = media_ssrc
            && let Some(bps) = relay.cap_due(&peer, lane, now)
        {
            send_cap(&*track, media_ssrc, bps).await;
        }
    }
    drop(frames_tx);
    let decode_errors = tokio::task::spawn_blocking(move || decoder.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // A stream seen under the root's name (forwarded) goes on under it through the next
    // parent's track; only a peer's own is forgotten with its track.
    if let Ok(mut receiving) = receiving.lock() {
        receiving.remove(&(peer.clone(), lane));
    }
    tracing::debug!(
        peer = peer.short(),
        stats = ?reassembler.stats(),
        decode_errors,
        behind,
        "video track ended"
    );
}

/// A track's decoder thread: decodes each frame and hands the picture to the sink; sets
/// `lost` when a frame did not decode (the reader then waits for a keyframe). A keyframe
/// larger than the decoder takes is reported once as malformed. Returns the frames that
/// did not decode.
fn decode_frames(
    peer: &PeerId,
    lane: Content,
    frames: &std::sync::mpsc::Receiver<Bytes>,
    ends: &TrackEnds,
    lost: &std::sync::atomic::AtomicBool,
    relay: &Relay,
) -> u64 {
    let TrackEnds {
        sink,
        events,
        receiving,
    } = ends;
    let mut decoder = match plenum_vpx::Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "no VP8 decoder; video ignored");
            return 0;
        }
    };
    let mut errors = 0u64;
    let mut oversize_reported = false;
    for data in frames {
        match decoder.decode(&data) {
            Ok(Some(picture)) => {
                let Some(picture) = plenum_media::VideoFrame::from_i420(
                    picture.width,
                    picture.height,
                    picture.data,
                ) else {
                    continue;
                };
                // Forwarded pictures are the root's or the presenter's, whichever neighbour
                // brought them (and shown to nobody until we know whose they are).
                let Some(origin) = relay.origin(peer) else {
                    continue;
                };
                if let Ok(mut receiving) = receiving.lock() {
                    let entry = receiving.entry((origin.clone(), lane)).or_default();
                    entry.0.frame(crate::clock::now());
                    entry.1 = (picture.width, picture.height);
                }
                if let Ok(mut sink) = sink.lock()
                    && let Some(sink) = sink.as_mut()
                {
                    sink.frame(origin.as_str(), lane, picture);
                }
            }
            Ok(None) => {}
            Err(e) => {
                errors += 1;
                if let plenum_vpx::VpxError::Dimensions { width, height } = e
                    && !std::mem::replace(&mut oversize_reported, true)
                {
                    tracing::warn!(
                        peer = peer.short(),
                        width,
                        height,
                        "oversized picture refused"
                    );
                    events.send(RoomEvent::Error(RoomError::Malformed {
                        peer: peer.clone(),
                        reason: format!(
                            "a {width}x{height} picture: larger than {} pixels or {} on a side",
                            plenum_vpx::MAX_DECODE_PIXELS,
                            plenum_vpx::MAX_DECODE_SIDE
                        ),
                    }));
                } else {
                    tracing::debug!(peer = peer.short(), error = %e, "undecodable frame");
                }
                lost.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
    errors
}

/// Sends a picture-loss indication, at most one per [`REQUEST_GAP`].
async fn request_keyframe(
    track: &dyn TrackRemote,
    media_ssrc: Option<u32>,
    last: &mut Option<Instant>,
) {
    let Some(media_ssrc) = media_ssrc else {
        return;
    };
    let now = crate::clock::now();
    if last.is_some_and(|t| now.duration_since(t) < REQUEST_GAP) {
        return;
    }
    *last = Some(now);
    send_pli(track, media_ssrc).await;
}

/// Tells `track`'s sender the most we take (a REMB naming `media_ssrc`, in bits per second):
/// the narrowest path we pass its stream on to.
async fn send_cap(track: &dyn TrackRemote, media_ssrc: u32, bps: u64) {
    use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    let remb = ReceiverEstimatedMaximumBitrate {
        sender_ssrc: 0,
        bitrate: bps as f32,
        ssrcs: vec![media_ssrc],
    };
    match track.write_rtcp(vec![Box::new(remb)]).await {
        Ok(()) => tracing::trace!(media_ssrc, bps, "cap told upstream"),
        Err(e) => tracing::debug!(error = %e, "cap not told upstream"),
    }
}

/// Sends a picture-loss indication for `media_ssrc` on `track`'s link.
async fn send_pli(track: &dyn TrackRemote, media_ssrc: u32) {
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    match track.write_rtcp(vec![Box::new(pli)]).await {
        Ok(()) => tracing::debug!(media_ssrc, "keyframe requested"),
        Err(e) => tracing::debug!(error = %e, "keyframe request not sent"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use plenum_media::Content;
    use plenum_proto::PeerId;
    use plenum_vpx::EncoderConfig;
    use rtc::media_stream::MediaStreamTrack;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

    use super::{Lane, LaneLink, Layer, layers, plan};
    use crate::congestion::{CAP_HOLDS, LinkStats};
    use crate::outbound::TrackSender;

    fn link(id: &str, stats: &Arc<LinkStats>) -> LaneLink {
        let track = MediaStreamTrack::new(
            "stream".to_owned(),
            format!("video-{id}"),
            "label".to_owned(),
            RtpCodecKind::Video,
            vec![],
        );
        let track = TrackLocalStaticSample::new(crate::clock::now(), track).expect("a track");
        LaneLink {
            sender: TrackSender {
                track: Arc::new(track),
                ssrc: 1,
                payload_type: 96,
            },
            stats: Arc::clone(stats),
            layer: None,
            next: None,
            climb: layers::Climb::default(),
        }
    }

    /// A link's peer and its figures.
    type Peer = (PeerId, Arc<LinkStats>);

    /// A 720p camera's lane to two links, "a" and "b", on alike paths: its layers' full
    /// rates, the lane, and each link's peer and figures.
    fn lane_to_a_and_b() -> (Vec<u32>, Lane, [Peer; 2]) {
        let rates: Vec<u32> = layers::sizes(1280, 720, Content::Camera)
            .iter()
            .map(|&(w, h)| EncoderConfig::bitrate_for(w, h, 30, Content::Camera))
            .collect();
        let mut lane = Lane::new(Content::Camera);
        lane.layers = rates.iter().map(|_| Layer::new()).collect();
        let links = ["a", "b"].map(|name| {
            let peer = PeerId::new(name.repeat(8)).expect("an id");
            let stats = Arc::new(LinkStats::default());
            lane.links.insert(peer.clone(), link(name, &stats));
            (peer, stats)
        });
        (rates, lane, links)
    }

    #[test]
    fn a_link_whose_peer_passes_our_pictures_on_gets_what_the_narrowest_path_below_carries() {
        let now = crate::clock::now();
        let (rates, mut lane, [(a, _), (b, narrow)]) = lane_to_a_and_b();
        let last = rates.len() - 1;
        // Both links' own paths are alike; b passes our pictures on to a path of 150 kbit/s.
        narrow.set_cap(150_000, &[], now);
        plan(&mut lane, &rates, (1.0, &BTreeSet::new()), None, now);
        let wide_layer = lane.links[&a].next.expect("a layer for a");
        assert!(
            wide_layer < last,
            "a's own path affords more than the least"
        );
        assert_eq!(lane.links[&b].next, Some(last), "b gets the smallest layer");
        // The smallest layer is made for b at the rate the narrow path below it carries.
        let fitted = layers::budget_kbps(150_000, 1.0);
        assert_eq!(
            lane.layers[last].rate,
            layers::rate_and_divisor(fitted, rates[last], true).0
        );
        // b's word lapses (it no longer passes them on): it climbs as a's path does.
        let later = now + CAP_HOLDS + layers::CLIMB_HOLD;
        plan(&mut lane, &rates, (1.0, &BTreeSet::new()), None, later);
        assert_eq!(lane.links[&b].next, Some(wide_layer));
        // A cap b names for another of our streams (one it passes on) leaves this one be.
        narrow.set_cap(150_000, &[2], later);
        plan(&mut lane, &rates, (1.0, &BTreeSet::new()), None, later);
        assert_eq!(lane.links[&b].next, Some(wide_layer));
    }

    #[test]
    fn a_link_that_also_carries_a_presenters_pictures_we_pass_on_leaves_them_most_of_it() {
        let now = crate::clock::now();
        let (rates, mut lane, [(a, _), (b, bridge)]) = lane_to_a_and_b();
        // Alike paths; we pass the presenter's pictures on to b.
        let relaying = BTreeSet::from([b.clone()]);
        plan(&mut lane, &rates, (1.0, &relaying), None, now);
        let (to_a, to_b) = (lane.links[&a].next, lane.links[&b].next);
        assert!(to_b > to_a, "b gets a smaller layer: {to_a:?} {to_b:?}");
        // Our pictures' rate on b's layer is what its share of the link affords.
        let share = crate::cell_stage::OWN_SHARE_BESIDE_PRESENTER;
        let budget = layers::budget_kbps(bridge.fitted_estimate_for(1, now), share);
        let on_b = to_b.expect("a layer for b");
        assert_eq!(
            lane.layers[on_b].rate,
            layers::rate_and_divisor(budget, rates[on_b], on_b == rates.len() - 1).0
        );
    }
}
