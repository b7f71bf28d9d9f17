//! A room's audio: one task that, every 20 ms, encodes our stream once and writes it to every
//! link's Opus track, and for every peer plays the next frame out of its jitter buffer
//! (decoded, recovered from FEC or concealed), measures whether it speaks, mixes all peers
//! and hands the mix to the sink.
//!
//! Every link negotiates one send-receive Opus track when it is created, so publishing,
//! muting and stopping a stream never renegotiate: they only start or stop the packets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_media::{
    AudioSink, AudioSource, FRAME_SAMPLES, JitterBuffer, JitterConfig, OpusConfig, OpusDecoder,
    OpusEncoder, Playout, ProcessingConfig, SpeakingConfig, SpeakingDetector, VoiceProcessor,
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
    /// A link's Opus track is ready to send on.
    LinkUp { peer: PeerId, sender: TrackSender },
    /// The link to a peer went: stop sending to it and forget its audio.
    LinkDown { peer: PeerId },
    /// Publish this source (replacing any), or stop publishing.
    Source(Option<Box<dyn AudioSource>>),
    /// Mute or unmute what we publish (nothing is sent while muted).
    Muted(bool),
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
    pub(crate) peer: PeerId,
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
    pub(crate) payload: Bytes,
}

/// Handles to the audio task.
#[derive(Debug, Clone)]
pub(crate) struct AudioHandle {
    pub(crate) cmds: mpsc::Sender<AudioCmd>,
    pub(crate) rtp: mpsc::Sender<RtpIn>,
}

struct Remote {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    speaking: SpeakingDetector,
}

struct Task {
    senders: HashMap<PeerId, TrackSender>,
    remotes: HashMap<PeerId, Remote>,
    source: Option<Box<dyn AudioSource>>,
    encoder: Option<OpusEncoder>,
    /// The encoder's settings (the room's bitrate cap).
    opus: OpusConfig,
    /// What microphones get; the processor exists while the source is a microphone.
    processing: ProcessingConfig,
    processor: Option<VoiceProcessor>,
    muted: bool,
    sink: Option<Box<dyn AudioSink>>,
    events: crate::events::EventSender,
    frame: Vec<f32>,
    mix: Vec<f32>,
    dropped_rtp: u64,
    frames: u64,
    local_level: f32,
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
) -> (AudioHandle, crate::media_thread::MediaThread) {
    let (cmds, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (rtp, rtp_rx) = mpsc::channel(RTP_QUEUE);
    let task = Task {
        senders: HashMap::new(),
        remotes: HashMap::new(),
        source: None,
        encoder: None,
        opus,
        processing,
        processor: None,
        muted: false,
        sink: None,
        events,
        frame: vec![0.0; FRAME_SAMPLES],
        mix: vec![0.0; FRAME_SAMPLES],
        dropped_rtp: 0,
        frames: 0,
        local_level: f32::NEG_INFINITY,
    };
    let thread = crate::media_thread::MediaThread::spawn("plenum-audio", task.run(cmd_rx, rtp_rx));
    (AudioHandle { cmds, rtp }, thread)
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
            AudioCmd::LinkUp { peer, sender } => {
                tracing::debug!(
                    peer = peer.short(),
                    payload_type = sender.payload_type,
                    "audio track up"
                );
                self.senders.insert(peer, sender);
            }
            AudioCmd::LinkDown { peer } => {
                self.senders.remove(&peer);
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
                        Ok(encoder) => self.encoder = Some(encoder),
                        Err(e) => tracing::error!(error = %e, "no Opus encoder; not publishing"),
                    }
                }
                self.source = source;
                self.update_processor();
            }
            AudioCmd::Muted(muted) => self.muted = muted,
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
        if !self.remotes.contains_key(&packet.peer) {
            let decoder = match OpusDecoder::new() {
                Ok(d) => d,
                Err(e) => return tracing::error!(error = %e, "no Opus decoder"),
            };
            let remote = Remote {
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

    fn speaking(&mut self, peer: PeerId, speaking: bool) {
        // Lossy: an application that lags gets the next change, not this one.
        self.events
            .send_lossy(RoomEvent::Speaking { peer, speaking });
    }

    async fn frame(&mut self) {
        let now = crate::clock::now();
        self.frames += 1;
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
        plenum_media::mixer::soft_clip(&mut self.mix);
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
        if self.muted || self.senders.is_empty() {
            return;
        }
        let packet = match encoder.encode(&self.frame) {
            Ok(p) => Bytes::copy_from_slice(p),
            Err(e) => return tracing::warn!(error = %e, "encoding failed; frame skipped"),
        };
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
