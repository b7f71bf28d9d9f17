//! A room's video: one task that takes pictures from our sources (the camera and a shared
//! screen, each a lane with its own track on every link) at their frame rates, encodes each
//! once (VP8) and writes it to every link's track for that lane; and, per remote video track,
//! a reader that reassembles frames, decodes them and hands the pictures to the sink.
//!
//! Keyframes: sent when a link comes up, when a receiver asks (PLI/FIR, through the links'
//! keyframe taps), at most one per [`KEYFRAME_GAP`]. A receiver asks when its track starts and
//! whenever it had to give up a frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_media::{Content, VideoSink, VideoSource};
use plenum_proto::PeerId;
use plenum_vpx::{Encoder, EncoderConfig};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::outbound::{TrackSender, send_to_all};
use crate::reassembly::Reassembler;
use crate::types::{RoomError, RoomEvent};

/// Commands queued for the video task.
const COMMAND_QUEUE: usize = 64;
/// Keyframe requests queued (one pending is as good as many).
pub(crate) const KEYFRAME_QUEUE: usize = 8;
/// The least time between two keyframes sent on request.
const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// The least time between two keyframe requests a receiver sends.
const REQUEST_GAP: Duration = Duration::from_millis(500);

pub(crate) enum VideoCmd {
    /// A link's VP8 track for one lane is ready to send on.
    LinkUp {
        peer: PeerId,
        lane: Content,
        sender: TrackSender,
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
}

impl std::fmt::Debug for VideoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoHandle").finish_non_exhaustive()
    }
}

/// One stream we publish (the camera, or a shared screen): its source, its encoder, and
/// the track on every link it goes out on.
struct Lane {
    kind: Content,
    senders: HashMap<PeerId, TrackSender>,
    source: Option<Box<dyn VideoSource>>,
    encoder: Option<Encoder>,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    /// When the next picture is due.
    due: Instant,
}

impl Lane {
    fn new(kind: Content) -> Self {
        Self {
            kind,
            senders: HashMap::new(),
            source: None,
            encoder: None,
            keyframe_wanted: false,
            last_keyframe: None,
            due: crate::clock::now(),
        }
    }

    fn every(&self) -> Duration {
        Duration::from_secs(1) / self.source.as_ref().map_or(30, |s| s.fps().clamp(1, 120))
    }
}

struct Task {
    lanes: [Lane; 2],
    events: crate::events::EventSender,
    epoch: Instant,
    /// The configured bitrate for the camera; `None`: chosen from the picture size.
    bitrate_kbps: Option<u32>,
}

/// Starts a room's video task on a thread of its own (encoding is CPU work that must not
/// hold a runtime worker); it ends on [`VideoCmd::Stop`] or when every handle is dropped.
pub(crate) fn spawn(
    events: crate::events::EventSender,
    bitrate_kbps: Option<u32>,
) -> (VideoHandle, crate::media_thread::MediaThread) {
    let (cmds, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (keyframes, keyframe_rx) = mpsc::channel(KEYFRAME_QUEUE);
    let task = Task {
        lanes: [Lane::new(Content::Camera), Lane::new(Content::Screen)],
        events,
        epoch: crate::clock::now(),
        bitrate_kbps,
    };
    let thread =
        crate::media_thread::MediaThread::spawn("plenum-video", task.run(cmd_rx, keyframe_rx));
    let handle = VideoHandle {
        cmds,
        keyframes,
        sink: Arc::new(Mutex::new(None)),
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
                            lane.encoder = None;
                            lane.senders.clear();
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
                    // A request names our SSRC on that link; unknown ones ask both lanes.
                    let known = self.lanes.iter().any(|l| {
                        l.senders.get(&peer).is_some_and(|s| s.ssrc == ssrc)
                    });
                    for lane in &mut self.lanes {
                        if !known || lane.senders.get(&peer).is_some_and(|s| s.ssrc == ssrc) {
                            lane.keyframe_wanted = true;
                        }
                    }
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

    fn command(&mut self, cmd: VideoCmd) {
        match cmd {
            VideoCmd::Source(kind, source) => {
                let lane = &mut self.lanes[lane_index(kind)];
                lane.encoder = None;
                lane.keyframe_wanted = true;
                lane.source = source;
                lane.due = crate::clock::now();
            }
            VideoCmd::LinkUp { peer, lane, sender } => {
                tracing::debug!(
                    peer = peer.short(),
                    ?lane,
                    payload_type = sender.payload_type,
                    "video track up"
                );
                let lane = &mut self.lanes[lane_index(lane)];
                lane.senders.insert(peer, sender);
                // A new receiver needs a keyframe to start from.
                lane.keyframe_wanted = true;
                lane.last_keyframe = None;
            }
            VideoCmd::LinkDown { peer } => {
                for lane in &mut self.lanes {
                    lane.senders.remove(&peer);
                }
            }
            // Handled by the loop.
            VideoCmd::Stop(_) => {}
        }
    }

    async fn frame(&mut self, index: usize) {
        let epoch = self.epoch;
        let bitrate_kbps = self.bitrate_kbps;
        let lane = &mut self.lanes[index];
        let Some(source) = lane.source.as_mut() else {
            return;
        };
        if let Some(reason) = source.take_error() {
            tracing::warn!(lane = ?lane.kind, %reason, "video source failed; publishing stops");
            lane.source = None;
            lane.encoder = None;
            let event = RoomEvent::Error(RoomError::VideoSource(reason));
            self.events.send(event);
            return;
        }
        let now_ms = epoch.elapsed().as_millis() as u32;
        let capture_ms = wall_clock_ms().unwrap_or(now_ms);
        let Some(picture) = source.next_frame(capture_ms) else {
            return;
        };
        if lane.senders.is_empty() {
            return;
        }
        let (fps, content) = (source.fps(), source.content());
        let stale = lane.encoder.as_ref().is_none_or(|e| {
            (e.config().width, e.config().height) != (picture.width, picture.height)
        });
        if stale {
            let configured = bitrate_kbps.filter(|_| lane.kind == Content::Camera);
            let config = EncoderConfig {
                width: picture.width,
                height: picture.height,
                bitrate_kbps: configured.unwrap_or_else(|| {
                    EncoderConfig::bitrate_for(picture.width, picture.height, fps, content)
                }),
                fps,
                content,
            };
            match Encoder::new(config) {
                Ok(encoder) => lane.encoder = Some(encoder),
                Err(e) => {
                    tracing::warn!(error = %e, "no video encoder; picture skipped");
                    return;
                }
            }
            lane.keyframe_wanted = true;
        }
        let Some(encoder) = lane.encoder.as_mut() else {
            return;
        };
        let now = crate::clock::now();
        let force = lane.keyframe_wanted
            && lane
                .last_keyframe
                .is_none_or(|t| now.duration_since(t) >= KEYFRAME_GAP);
        let (ticks, duration) = frame_duration(fps);
        let encoded = match encoder.encode(&picture.data, ticks, force) {
            Ok(Some(encoded)) => encoded,
            Ok(None) => return, // the rate control dropped this picture
            Err(e) => return tracing::warn!(error = %e, "encoding failed; picture skipped"),
        };
        if encoded.keyframe {
            lane.keyframe_wanted = false;
            lane.last_keyframe = Some(now);
        }
        let data = Bytes::from(encoded.data);
        send_to_all(&lane.senders, data, duration, now, "video").await;
    }
}

/// Milliseconds of Unix time, low 32 bits: the capture stamp peers on one machine share.
fn wall_clock_ms() -> Option<u32> {
    let since = crate::clock::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(since.as_millis() as u32)
}

/// Frames reassembled and waiting for a track's decoder thread; a frame that finds the
/// queue full is dropped and a keyframe asked for (decoding fell behind).
const DECODE_QUEUE: usize = 4;

/// Reads a peer's VP8 track: reassembles frames and hands them to a decoder thread of the
/// track's own, which hands pictures to the sink; asks for keyframes when it starts and
/// after losses. Ends with the track; the decoder thread ends with it and is joined.
pub(crate) async fn read_track(
    peer: PeerId,
    lane: Content,
    track: Arc<dyn TrackRemote>,
    sink: SharedSink,
    events: crate::events::EventSender,
) {
    let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel::<Bytes>(DECODE_QUEUE);
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let decoder = {
        let (peer, lost) = (peer.clone(), Arc::clone(&lost));
        std::thread::Builder::new()
            .name(format!("vp8-{}", peer.short()))
            .spawn(move || decode_frames(&peer, lane, &frames_rx, &sink, &events, &lost))
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
    loop {
        let frames = tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    media_ssrc.get_or_insert(packet.header.ssrc);
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
        if reassembler.take_keyframe_request() || reassembler.waiting() {
            request_keyframe(&*track, media_ssrc, &mut last_request).await;
        }
    }
    drop(frames_tx);
    let decode_errors = tokio::task::spawn_blocking(move || decoder.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
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
    sink: &SharedSink,
    events: &crate::events::EventSender,
    lost: &std::sync::atomic::AtomicBool,
) -> u64 {
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
                if let Ok(mut sink) = sink.lock()
                    && let Some(sink) = sink.as_mut()
                {
                    sink.frame(peer.as_str(), lane, picture);
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
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    let Some(media_ssrc) = media_ssrc else {
        return;
    };
    let now = crate::clock::now();
    if last.is_some_and(|t| now.duration_since(t) < REQUEST_GAP) {
        return;
    }
    *last = Some(now);
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    match track.write_rtcp(vec![Box::new(pli)]).await {
        Ok(()) => tracing::debug!(media_ssrc, "keyframe requested"),
        Err(e) => tracing::debug!(error = %e, "keyframe request not sent"),
    }
}
