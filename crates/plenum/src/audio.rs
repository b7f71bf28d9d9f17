//! A room's audio: one task that, every 20 ms, encodes our stream once and writes it to every
//! link's Opus track, and for every peer plays the next frame out of its jitter buffer
//! (decoded, recovered from FEC or concealed), measures whether it speaks, mixes all peers
//! and hands the mix to the sink.
//!
//! Every link negotiates one send-receive Opus track when it is created, so publishing,
//! muting and stopping a stream never renegotiate: they only start or stop the packets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_media::{
    AudioSink, AudioSource, FRAME_SAMPLES, JitterBuffer, JitterConfig, OpusConfig, OpusDecoder,
    OpusEncoder, Playout, ProcessingConfig, SAMPLE_RATE, SpeakingConfig, SpeakingDetector,
    VoiceProcessor,
};
use plenum_proto::PeerId;
use tokio::sync::mpsc;

use crate::outbound::{TrackSender, send_to_all};
use crate::types::RoomEvent;

/// One frame of audio.
pub(crate) const FRAME: Duration = Duration::from_millis(20);
/// RTP packets queued from the track readers before newer ones are dropped.
const RTP_QUEUE: usize = 1024;
const COMMAND_QUEUE: usize = 64;

/// What the room driver and the room handle tell the audio task.
pub(crate) enum AudioCmd {
    /// A link's Opus track is ready to send on; `stats` is what its chain learns of the
    /// path (the encoder's rate follows the poorest link).
    LinkUp {
        peer: PeerId,
        sender: TrackSender,
        stats: Arc<crate::congestion::LinkStats>,
    },
    /// The link to a peer went: stop sending to it and forget its audio.
    LinkDown { peer: PeerId },
    /// Publish this source (replacing any), or stop publishing.
    Source(Option<Box<dyn AudioSource>>),
    /// Mute or unmute what we publish (nothing is sent while muted).
    Muted(bool),
    /// Our voice goes on a tree's stage (to every peer of the room), not on our links'
    /// audio tracks; or no longer.
    Stage(bool),
    /// Our voice holds this seat of a cells room's stage (to every cell), not our cell
    /// links' audio tracks; or no seat.
    Seat(Option<usize>),
    /// Echo cancellation and noise suppression for microphone sources.
    Processing(ProcessingConfig),
    /// The level of our source's last frame (dBFS; -inf without a source).
    Level(tokio::sync::oneshot::Sender<f32>),
    /// Where the mix of everyone we hear goes; the reply comes once the previous sink is
    /// dropped (a recording is complete on disk).
    Sink(Option<Box<dyn AudioSink>>, tokio::sync::oneshot::Sender<()>),
    /// Drop the source (closing a microphone) and the sink (completing a recording) and
    /// end; the reply comes once both are dropped.
    Stop(tokio::sync::oneshot::Sender<()>),
}

impl std::fmt::Debug for AudioCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LinkUp { peer, .. } => write!(f, "LinkUp({})", peer.short()),
            Self::LinkDown { peer } => write!(f, "LinkDown({})", peer.short()),
            Self::Source(s) => write!(f, "Source({})", s.is_some()),
            Self::Muted(m) => write!(f, "Muted({m})"),
            Self::Stage(s) => write!(f, "Stage({s})"),
            Self::Seat(s) => write!(f, "Seat({s:?})"),
            Self::Processing(p) => write!(f, "Processing({p:?})"),
            Self::Sink(s, _) => write!(f, "Sink({})", s.is_some()),
            Self::Level(_) => f.write_str("Level"),
            Self::Stop(_) => f.write_str("Stop"),
        }
    }
}

/// An RTP packet from a peer's track.
#[derive(Debug)]
pub(crate) struct RtpIn {
    /// Whose voice it is (in a tree, the root's or the stage speaker's).
    pub(crate) peer: PeerId,
    /// The link it came over, and the link's track: a new one is a new stream of that voice
    /// (its own numbers). Tracks: [`TRACK_AUDIO`], [`TRACK_STAGE`], a seat's.
    pub(crate) via: (PeerId, u8),
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
    pub(crate) payload: Bytes,
}

/// Handles to the audio task.
#[derive(Debug, Clone)]
pub(crate) struct AudioHandle {
    pub(crate) cmds: mpsc::Sender<AudioCmd>,
    pub(crate) rtp: mpsc::Sender<RtpIn>,
    /// What each heard peer's jitter buffer counts, refreshed every [`REPORT_EVERY`] frames.
    pub(crate) hearing: Hearing,
    /// A cells room's stage forwarding, which our voice goes through while it holds a seat.
    pub(crate) cells: Arc<crate::cell_stage::CellStage>,
    /// Whether our voice is on, as a detector with a long hold says (a cells room's server
    /// seats us on the stage while it is).
    pub(crate) speaking: tokio::sync::watch::Receiver<bool>,
}

/// The audio task's figures per heard peer, read by [`crate::Room::stats`].
pub(crate) type Hearing = Arc<Mutex<HashMap<PeerId, crate::stats::AudioReport>>>;

/// Our own voice's detector: as the room's for others, but "not speaking" only after 2 s
/// of quiet, so that a cells room's stage keeps a speaker's seat through its pauses.
const OWN_SPEAKING: SpeakingConfig = SpeakingConfig {
    on_dbfs: -45.0,
    off_dbfs: -55.0,
    on_frames: 3,
    off_frames: 100,
};

/// How often (in frames) the figures in [`Hearing`] are refreshed: five times a second.
const REPORT_EVERY: u64 = 10;

/// A link's audio track, as [`RtpIn::via`] names it.
pub(crate) const TRACK_AUDIO: u8 = 0;
/// A tree link's stage track.
pub(crate) const TRACK_STAGE: u8 = 1;
/// A cells link's track of seat `n`.
pub(crate) fn track_seat(n: usize) -> u8 {
    2 + n as u8
}

struct Remote {
    /// The link (and its track) this voice's packets come over.
    via: (PeerId, u8),
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    speaking: SpeakingDetector,
}

struct Task {
    hearing: Hearing,
    senders: HashMap<PeerId, TrackSender>,
    paths: HashMap<PeerId, Arc<crate::congestion::LinkStats>>,
    /// The rate and expected loss the encoder is set to.
    rate: OpusRate,
    remotes: HashMap<PeerId, Remote>,
    source: Option<Box<dyn AudioSource>>,
    encoder: Option<OpusEncoder>,
    /// The encoder's settings (the room's bitrate cap).
    opus: OpusConfig,
    /// What microphones get; the processor exists while the source is a microphone.
    processing: ProcessingConfig,
    processor: Option<VoiceProcessor>,
    muted: bool,
    /// Our voice is the tree's stage: it goes through `tree`.
    on_stage: bool,
    tree: Arc<crate::tree_media::TreeMedia>,
    /// Our voice holds this seat of a cells room's stage: it goes through `cells`.
    seat: Option<usize>,
    cells: Arc<crate::cell_stage::CellStage>,
    own_speaking: SpeakingDetector,
    speaking: tokio::sync::watch::Sender<bool>,
    sink: Option<Box<dyn AudioSink>>,
    events: crate::events::EventSender,
    frame: Vec<f32>,
    mix: Vec<f32>,
    /// Keeps the mix of every voice in range by turning it down, not clipping it.
    limiter: plenum_media::mixer::Limiter,
    dropped_rtp: u64,
    frames: u64,
    local_level: f32,
}

/// How often (in frames) the encoder's rate is fitted to the links: once a second.
const ADAPT_EVERY: u64 = 50;

/// The least Opus is ever given: wideband voice, with room for its FEC.
pub(crate) const AUDIO_FLOOR: i32 = 16_000;
/// The share of the poorest link's estimate audio may take (video has the rest).
const AUDIO_SHARE: f64 = 0.1;
/// The loss the FEC is sized for when none is reported, and at most (percent).
const LOSS_FLOOR: i32 = 2;
const LOSS_CEILING: i32 = 30;

/// The encoder's rate: one encoder feeds every link, so the poorest link sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpusRate {
    pub(crate) bitrate: i32,
    /// The loss the in-band FEC is sized for, in percent.
    pub(crate) expected_loss: i32,
}

impl OpusRate {
    /// What a new encoder starts at: the room's setting.
    fn top(config: OpusConfig) -> Self {
        Self {
            bitrate: config.bitrate,
            expected_loss: config.expected_loss,
        }
    }

    /// The rate for these links: a tenth of the poorest estimate, between [`AUDIO_FLOOR`]
    /// and the room's setting (a cap under the floor is kept: it was asked for), and FEC
    /// sized for the worst loss reported, with a little more than seen.
    pub(crate) fn for_paths(
        config: OpusConfig,
        paths: impl Iterator<Item = crate::congestion::LinkFigures>,
    ) -> Self {
        let (least, worst) = paths.fold((u64::MAX, 0u32), |(least, worst), f| {
            (least.min(f.estimate_bps), worst.max(f.loss_permille))
        });
        if least == u64::MAX {
            return Self::top(config);
        }
        let share = (least as f64 * AUDIO_SHARE) as i32;
        let bitrate = share.clamp(AUDIO_FLOOR.min(config.bitrate), config.bitrate);
        let loss_percent = ((worst * 3 / 2).div_ceil(10)) as i32;
        Self {
            bitrate,
            expected_loss: loss_percent.clamp(LOSS_FLOOR, LOSS_CEILING),
        }
    }
}

/// The encoder settings for a bitrate cap in kbit/s (none: the default, 32).
pub(crate) fn opus_config(kbps: Option<u32>) -> OpusConfig {
    let default = OpusConfig::default();
    OpusConfig {
        bitrate: kbps.map_or(default.bitrate, |k| (k.clamp(6, 510) * 1000) as i32),
        ..default
    }
}

/// Starts a room's audio task on a thread of its own (Opus, echo cancellation and the
/// sink's writes are CPU and file work that must not hold a runtime worker); it ends on
/// [`AudioCmd::Stop`] or when every handle is dropped.
pub(crate) fn spawn(
    events: crate::events::EventSender,
    processing: ProcessingConfig,
    opus: OpusConfig,
    tree: Arc<crate::tree_media::TreeMedia>,
    cells: Arc<crate::cell_stage::CellStage>,
) -> (AudioHandle, crate::media_thread::MediaThread) {
    let (cmds, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (rtp, rtp_rx) = mpsc::channel(RTP_QUEUE);
    let hearing = Hearing::default();
    let (speaking, speaking_rx) = tokio::sync::watch::channel(false);
    let task = Task {
        hearing: Arc::clone(&hearing),
        senders: HashMap::new(),
        paths: HashMap::new(),
        rate: OpusRate::top(opus),
        remotes: HashMap::new(),
        source: None,
        encoder: None,
        opus,
        processing,
        processor: None,
        muted: false,
        on_stage: false,
        tree,
        seat: None,
        cells: Arc::clone(&cells),
        own_speaking: SpeakingDetector::new(OWN_SPEAKING),
        speaking,
        sink: None,
        events,
        frame: vec![0.0; FRAME_SAMPLES],
        mix: vec![0.0; FRAME_SAMPLES],
        limiter: plenum_media::mixer::Limiter::new(
            FRAME_SAMPLES as f32 * 1000.0 / SAMPLE_RATE as f32,
        ),
        dropped_rtp: 0,
        frames: 0,
        local_level: f32::NEG_INFINITY,
    };
    let thread = crate::media_thread::MediaThread::spawn("plenum-audio", task.run(cmd_rx, rtp_rx));
    let handle = AudioHandle {
        cmds,
        rtp,
        hearing,
        cells,
        speaking: speaking_rx,
    };
    (handle, thread)
}

impl AudioHandle {
    /// Hands a received packet to the audio task without waiting: a full queue drops it (the
    /// jitter buffer conceals the gap).
    pub(crate) fn packet(&self, packet: RtpIn) -> bool {
        self.rtp.try_send(packet).is_ok()
    }
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::Receiver<AudioCmd>, mut rtp: mpsc::Receiver<RtpIn>) {
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(AudioCmd::Stop(done)) => {
                        self.source = None;
                        self.processor = None;
                        self.sink = None;
                        self.senders.clear();
                        // The room may have stopped waiting.
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.handle_cmd(cmd),
                    None => break,
                },
                Some(packet) = rtp.recv() => self.handle_rtp(packet),
                _ = tick.tick() => self.frame().await,
            }
        }
        if self.dropped_rtp > 0 {
            tracing::debug!(dropped = self.dropped_rtp, "audio task ends");
        }
    }

    fn handle_cmd(&mut self, cmd: AudioCmd) {
        match cmd {
            AudioCmd::LinkUp {
                peer,
                sender,
                stats,
            } => {
                tracing::debug!(
                    peer = peer.short(),
                    payload_type = sender.payload_type,
                    "audio track up"
                );
                self.paths.insert(peer.clone(), stats);
                self.senders.insert(peer, sender);
            }
            AudioCmd::LinkDown { peer } => {
                self.senders.remove(&peer);
                self.paths.remove(&peer);
                if let Ok(mut hearing) = self.hearing.lock() {
                    hearing.remove(&peer);
                }
                if self
                    .remotes
                    .remove(&peer)
                    .is_some_and(|r| r.speaking.speaking())
                {
                    self.speaking(peer, false);
                }
            }
            AudioCmd::Source(source) => {
                self.encoder = None;
                if source.is_some() {
                    match OpusEncoder::new(self.opus) {
                        Ok(encoder) => {
                            self.encoder = Some(encoder);
                            self.rate = OpusRate::top(self.opus);
                        }
                        Err(e) => tracing::error!(error = %e, "no Opus encoder; not publishing"),
                    }
                }
                self.source = source;
                self.update_processor();
                // A new source (or none) starts quiet.
                self.own_speaking = SpeakingDetector::new(OWN_SPEAKING);
                self.speaking.send_replace(false);
            }
            AudioCmd::Muted(muted) => self.muted = muted,
            AudioCmd::Stage(on) => self.on_stage = on,
            AudioCmd::Seat(seat) => self.seat = seat,
            AudioCmd::Processing(config) => {
                self.processing = config;
                self.update_processor();
            }
            AudioCmd::Level(reply) => {
                let level = if self.source.is_some() {
                    self.local_level
                } else {
                    f32::NEG_INFINITY
                };
                // The caller may have stopped waiting.
                let _ = reply.send(level);
            }
            AudioCmd::Sink(sink, done) => {
                drop(std::mem::replace(&mut self.sink, sink));
                // The caller may have stopped waiting; the sink is replaced either way.
                let _ = done.send(());
            }
            // Handled by the loop.
            AudioCmd::Stop(_) => {}
        }
    }

    /// A fresh processor when the source is a microphone and processing is on (a new device
    /// has a new echo path to learn); none otherwise.
    fn update_processor(&mut self) {
        let wanted = self.processing.any() && self.source.as_ref().is_some_and(|s| s.is_device());
        self.processor = wanted.then(|| VoiceProcessor::new(self.processing));
    }

    fn handle_rtp(&mut self, packet: RtpIn) {
        let now = crate::clock::now();
        // The same voice over another link (a new parent in a tree) is numbered anew: it
        // starts a jitter buffer and decoder of its own.
        let fresh = self
            .remotes
            .get(&packet.peer)
            .is_none_or(|r| r.via != packet.via);
        if fresh {
            let decoder = match OpusDecoder::new() {
                Ok(d) => d,
                Err(e) => return tracing::error!(error = %e, "no Opus decoder"),
            };
            let remote = Remote {
                via: packet.via.clone(),
                jitter: JitterBuffer::new(JitterConfig::default()),
                decoder,
                speaking: SpeakingDetector::new(SpeakingConfig::default()),
            };
            self.remotes.insert(packet.peer.clone(), remote);
        }
        if let Some(remote) = self.remotes.get_mut(&packet.peer) {
            remote
                .jitter
                .handle_packet(packet.seq, packet.timestamp, packet.payload, now);
        }
    }

    /// Refreshes the figures [`crate::Room::stats`] reads.
    fn report(&self) {
        let Ok(mut hearing) = self.hearing.lock() else {
            return;
        };
        for (peer, remote) in &self.remotes {
            let s = remote.jitter.stats();
            hearing.insert(
                peer.clone(),
                crate::stats::AudioReport {
                    peer: peer.clone(),
                    packets: s.received,
                    late: s.late,
                    concealed: s.concealed,
                    recovered: s.fec,
                    delay: remote.jitter.target_delay(),
                },
            );
        }
    }

    fn speaking(&mut self, peer: PeerId, speaking: bool) {
        // Lossy: an application that lags gets the next change, not this one.
        self.events
            .send_lossy(RoomEvent::Speaking { peer, speaking });
    }

    async fn frame(&mut self) {
        let now = crate::clock::now();
        self.frames += 1;
        if self.frames.is_multiple_of(REPORT_EVERY) {
            self.report();
        }
        if self.frames.is_multiple_of(250) {
            for (peer, remote) in &self.remotes {
                let s = remote.jitter.stats();
                tracing::debug!(
                    peer = peer.short(),
                    received = s.received,
                    late = s.late,
                    duplicates = s.duplicates,
                    fec = s.fec,
                    concealed = s.concealed,
                    dropped = s.dropped,
                    depth = remote.jitter.depth(),
                    target_ms = remote.jitter.target_delay().as_millis() as u64,
                    "audio stats"
                );
            }
        }
        self.send_frame(now).await;
        self.mix.fill(0.0);
        let mut changes = Vec::new();
        for (peer, remote) in &mut self.remotes {
            let result = match remote.jitter.poll_frame(now) {
                Playout::Packet(p) => remote.decoder.decode(&p, &mut self.frame),
                Playout::Fec(next) => remote.decoder.decode_fec(&next, &mut self.frame),
                Playout::Conceal => remote.decoder.conceal(&mut self.frame),
                Playout::Silence => {
                    self.frame.fill(0.0);
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = peer.short(), error = %e, "undecodable audio; concealed");
                if remote.decoder.conceal(&mut self.frame).is_err() {
                    self.frame.fill(0.0);
                }
            }
            if let Some(speaking) = remote.speaking.handle_frame(&self.frame) {
                changes.push((peer.clone(), speaking));
            }
            plenum_media::mixer::add_into(&mut self.mix, &self.frame);
        }
        for (peer, speaking) in changes {
            self.speaking(peer, speaking);
        }
        self.limiter.process(&mut self.mix);
        if let Some(processor) = self.processor.as_mut() {
            processor.render(&self.mix);
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.write(&self.mix);
        }
    }

    async fn send_frame(&mut self, now: Instant) {
        let (Some(source), Some(encoder)) = (self.source.as_mut(), self.encoder.as_mut()) else {
            return;
        };
        if let Some(reason) = source.take_error() {
            tracing::warn!(%reason, "audio source failed; publishing stops");
            self.source = None;
            let event = RoomEvent::Error(crate::types::RoomError::AudioSource(reason));
            self.events.send(event);
            return;
        }
        source.read(&mut self.frame);
        if let Some(processor) = self.processor.as_mut() {
            processor.capture(&mut self.frame);
        }
        self.local_level = plenum_media::analysis::rms_dbfs(&self.frame);
        let level = if self.muted {
            f32::NEG_INFINITY
        } else {
            self.local_level
        };
        if let Some(speaking) = self.own_speaking.handle_level(level) {
            self.speaking.send_replace(speaking);
        }
        if self.muted || (self.senders.is_empty() && !self.on_stage && self.seat.is_none()) {
            return;
        }
        if self.frames.is_multiple_of(ADAPT_EVERY) {
            let figures = self.paths.values().map(|path| path.figures());
            let wanted = OpusRate::for_paths(self.opus, figures);
            if wanted != self.rate {
                match encoder.set_rate(wanted.bitrate, wanted.expected_loss) {
                    Ok(()) => {
                        tracing::debug!(?wanted, "audio rate follows the path");
                        self.rate = wanted;
                    }
                    Err(e) => tracing::warn!(error = %e, "the encoder refused a new rate"),
                }
            }
        }
        let packet = match encoder.encode(&self.frame) {
            Ok(p) => Bytes::copy_from_slice(p),
            Err(e) => return tracing::warn!(error = %e, "encoding failed; frame skipped"),
        };
        if self.on_stage {
            crate::tree_media::send(self.tree.push_own(packet, now)).await;
            return;
        }
        if let Some(seat) = self.seat {
            crate::tree_media::send(self.cells.push_own(seat, packet, now)).await;
            return;
        }
        send_to_all(&self.senders, packet, FRAME, now, "audio").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes per 20 ms frame the room's encoder makes of noise (which takes all the bits
    /// it is allowed), under a cap.
    fn bytes_per_frame(kbps: Option<u32>) -> f64 {
        let mut encoder = OpusEncoder::new(opus_config(kbps)).unwrap();
        let mut state = 7u64;
        let mut total = 0;
        for _ in 0..100 {
            let frame: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|_| (plenum_overlay::splitmix64(&mut state) % 2000) as f32 / 2000.0 - 0.5)
                .collect();
            total += encoder.encode(&frame).unwrap().len();
        }
        total as f64 / 100.0
    }

    fn path(estimate_bps: u64, loss_permille: u32) -> crate::congestion::LinkFigures {
        crate::congestion::LinkFigures {
            estimate_bps,
            loss_permille,
            ..Default::default()
        }
    }

    #[test]
    fn the_audio_rate_follows_the_poorest_link_down_to_a_floor() {
        let room = opus_config(None);
        let rate = |paths: Vec<_>| OpusRate::for_paths(room, paths.into_iter());
        // No links: the room's setting.
        assert_eq!(rate(vec![]).bitrate, 32_000);
        // Wide paths: the room's setting, FEC sized for a little loss.
        let wide = rate(vec![path(2_000_000, 0), path(5_000_000, 0)]);
        assert_eq!(
            wide,
            OpusRate {
                bitrate: 32_000,
                expected_loss: LOSS_FLOOR
            }
        );
        // One narrow link sets it: a tenth of its estimate.
        assert_eq!(
            rate(vec![path(2_000_000, 0), path(200_000, 0)]).bitrate,
            20_000
        );
        // Never under the floor.
        assert_eq!(rate(vec![path(80_000, 0)]).bitrate, AUDIO_FLOOR);
        // Loss sizes the FEC: 8 % seen, 12 % expected; and at most the ceiling.
        assert_eq!(rate(vec![path(1_000_000, 80)]).expected_loss, 12);
        assert_eq!(rate(vec![path(1_000_000, 900)]).expected_loss, LOSS_CEILING);
        // A room capped under the floor keeps its cap.
        let low = OpusRate::for_paths(opus_config(Some(8)), vec![path(80_000, 0)].into_iter());
        assert_eq!(low.bitrate, 8_000);
    }

    #[test]
    fn a_new_rate_reaches_a_running_encoder() {
        let mut encoder = OpusEncoder::new(opus_config(None)).unwrap();
        let mut state = 11u64;
        let mut noise = || -> Vec<f32> {
            (0..FRAME_SAMPLES)
                .map(|_| (plenum_overlay::splitmix64(&mut state) % 2000) as f32 / 2000.0 - 0.5)
                .collect()
        };
        let mut bytes = |encoder: &mut OpusEncoder| -> usize {
            (0..50)
                .map(|_| encoder.encode(&noise()).unwrap().len())
                .sum()
        };
        let before = bytes(&mut encoder);
        encoder.set_rate(AUDIO_FLOOR, 20).unwrap();
        bytes(&mut encoder); // the encoder settles
        let after = bytes(&mut encoder);
        assert!(
            after * 3 < before * 2,
            "{after} bytes at the floor, {before} at 32 kbit/s"
        );
    }

    #[test]
    fn an_audio_bitrate_cap_reaches_the_encoder() {
        let capped = bytes_per_frame(Some(8));
        let default = bytes_per_frame(None);
        let high = bytes_per_frame(Some(128));
        // 8 kbit/s is 20 bytes per 20 ms frame; 32 kbit/s 80; 128 kbit/s 320.
        assert!(
            (10.0..=30.0).contains(&capped),
            "{capped} bytes at 8 kbit/s"
        );
        assert!(
            (60.0..=100.0).contains(&default),
            "{default} bytes by default"
        );
        assert!(high > 2.0 * default, "{high} bytes at 128 kbit/s");
        // Out of range: clamped to what Opus takes.
        assert_eq!(opus_config(Some(1)).bitrate, 6_000);
        assert_eq!(opus_config(Some(9_999)).bitrate, 510_000);
    }
}
