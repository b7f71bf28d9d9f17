//! The driver's media side: commands to the audio and video threads (never waited
//! for: what their queues cannot take waits in order), the tracks a link carries each
//! way, keyframes, and the threads' end.

use std::sync::Arc;

use plenum_proto::PeerId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_remote::TrackRemote;

use super::{
    Driver, MAX_TRACKS_PER_CELLS_LINK, MAX_TRACKS_PER_LINK, MAX_TRACKS_PER_TREE_LINK, MEDIA_STOP,
};
use crate::audio::{AudioCmd, AudioHandle, RtpIn};
use crate::outbound::TrackSender;
use crate::types::{RoomError, RoomEvent};
use crate::video::VideoCmd;

impl Driver {
    /// Tells the media tasks a link's tracks went away (replaced, dropped or closed).
    pub(super) fn audio_down(&mut self, peer: &PeerId) {
        self.video.tree.drop_link(peer);
        for (to, word) in self.audio.cells.drop_link(peer) {
            self.say(&to, &word);
        }
        self.media_tasks_down(peer);
    }

    /// Tells the media tasks to stop writing to a link's tracks.
    fn media_tasks_down(&mut self, peer: &PeerId) {
        self.tell_audio(AudioCmd::LinkDown { peer: peer.clone() });
        self.tell_video(VideoCmd::LinkDown { peer: peer.clone() });
    }

    /// A command for the audio task, without waiting for it: what its queue cannot take
    /// now waits in order and goes on a later step (see `flush_media`).
    pub(super) fn tell_audio(&mut self, cmd: AudioCmd) {
        if !self.audio_backlog.push(cmd) {
            tracing::warn!("audio task far behind; oldest command dropped");
        }
        self.flush_media();
    }

    pub(super) fn tell_video(&mut self, cmd: VideoCmd) {
        if !self.video_backlog.push(cmd) {
            tracing::warn!("video task far behind; oldest command dropped");
        }
        self.flush_media();
    }

    /// Hands held commands to the media tasks while their queues have room.
    pub(super) fn flush_media(&mut self) {
        let audio = &self.audio.cmds;
        self.audio_backlog.flush(|cmd| {
            match audio.try_send(cmd) {
                Err(mpsc::error::TrySendError::Full(cmd)) => Some(cmd),
                // Taken, or the task is gone (the room is ending): nothing to hold.
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            }
        });
        let video = &self.video.cmds;
        self.video_backlog.flush(|cmd| match video.try_send(cmd) {
            Err(mpsc::error::TrySendError::Full(cmd)) => Some(cmd),
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        });
    }

    /// Stops the audio and video tasks (dropping sources and sinks: devices close,
    /// recordings complete) and joins their threads, whoever still holds a `Room`.
    pub(super) async fn stop_media(&mut self) {
        let mut stopping = Vec::new();
        let (done, stopped) = oneshot::channel();
        if self.audio.cmds.send(AudioCmd::Stop(done)).await.is_ok() {
            stopping.push(stopped);
        }
        let (done, stopped) = oneshot::channel();
        if self.video.cmds.send(VideoCmd::Stop(done)).await.is_ok() {
            stopping.push(stopped);
        }
        for stopped in stopping {
            if tokio::time::timeout(MEDIA_STOP, stopped).await.is_err() {
                tracing::warn!("a media task did not stop in time");
            }
        }
        for thread in std::mem::take(&mut self.media) {
            thread.join().await;
        }
    }

    /// The call's figures: each link's, and each video stream's we receive.
    pub(super) fn stats(&self) -> crate::stats::CallStats {
        let now = crate::clock::now();
        let mut links: Vec<crate::stats::LinkReport> = self
            .links
            .iter()
            .map(|(peer, link)| {
                let f = link.stats.figures();
                let lanes = [plenum_media::Content::Camera, plenum_media::Content::Screen];
                crate::stats::LinkReport {
                    peer: peer.clone(),
                    estimate_bps: f.estimate_bps,
                    send_bps: f.send_bps,
                    receive_bps: f.receive_bps,
                    data_send_bps: f.data_bps,
                    data_pace_bps: f.data_pace_bps,
                    rtt: f.rtt,
                    loss: f64::from(f.loss_permille) / 1000.0,
                    sent_bytes: f.sent_bytes,
                    received_bytes: f.received_bytes,
                    retransmitted_bytes: f.sent_rtx_bytes,
                    probe_bytes: f.sent_probe_bytes,
                    retransmissions_refused: f.rtx_refused,
                    retransmissions_received: f.repaired,
                    queue: f.queue,
                    cap_bps: link.stats.cap(now),
                    sending: lanes
                        .into_iter()
                        .zip(f.sending)
                        .filter_map(|(lane, size)| size.map(|(w, h)| (lane, w, h)))
                        .collect(),
                }
            })
            .collect();
        links.sort_by(|a, b| a.peer.cmp(&b.peer));
        let mut video: Vec<crate::stats::VideoReport> = self
            .video
            .receiving
            .lock()
            .map(|receiving| {
                receiving
                    .iter()
                    .map(|((peer, lane), (clock, size))| {
                        clock.report(peer.clone(), *lane, *size, now)
                    })
                    .collect()
            })
            .unwrap_or_default();
        video.sort_by(|a, b| (&a.peer, a.lane as u8).cmp(&(&b.peer, b.lane as u8)));
        let mut audio: Vec<crate::stats::AudioReport> = self
            .audio
            .hearing
            .lock()
            .map(|hearing| hearing.values().cloned().collect())
            .unwrap_or_default();
        audio.sort_by(|a, b| a.peer.cmp(&b.peer));
        crate::stats::CallStats {
            links,
            video,
            audio,
            forwarded_packets: self.video.tree.forwarded() + self.audio.cells.forwarded(),
        }
    }

    /// Sends keyframes on the link to `peer`, so that the far side's video resumes at once.
    pub(super) fn keyframes(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get(peer) else {
            return;
        };
        // A presenter's pictures go on the presenter's tracks.
        let presenter = link.seats.get(crate::cell_stage::PRESENTER_CAMERA..);
        let tracks: Vec<&crate::link::LinkTrack> = match presenter {
            Some(tracks) if self.presenting => tracks.iter().collect(),
            _ => [&link.video, &link.screen].into_iter().flatten().collect(),
        };
        for track in tracks {
            if self
                .video
                .keyframes
                .try_send((peer.clone(), track.ssrc))
                .is_err()
            {
                tracing::trace!("keyframe request already pending");
            }
        }
    }

    /// The link to `peer` is open: its tracks go to the media tasks (or carry what we
    /// forward, to a child in a tree), queued messages leave.
    pub(super) async fn media_up(&mut self, peer: &PeerId) {
        let Some(link) = self.links.get(peer) else {
            return;
        };
        let stats = Arc::clone(&link.stats);
        let tracks = [
            link.audio.clone(),
            link.video.clone(),
            link.screen.clone(),
            link.stage.clone(),
        ];
        let [audio, video, screen, stage] = tracks;
        let tracks: crate::tree_media::LinkTracks = [
            track_sender(audio, peer, "audio").await,
            track_sender(video, peer, "video").await,
            track_sender(screen, peer, "video").await,
            track_sender(stage, peer, "stage").await,
        ];
        let now = crate::clock::now();
        let mut seats = Vec::new();
        for track in link.seats.clone() {
            seats.push(track_sender(Some(track), peer, "stage").await);
        }
        let forwarded = self.video.tree.adopt(peer, &tracks, &stats, now);
        if self.cells_room {
            self.audio.cells.adopt(peer, &seats, &stats);
        }
        let bridge = self.audio.cells.is_bridge(peer);
        if self.presenting {
            // Our camera and screen go on the presenter's tracks, to every cell mate and
            // over every bridge; our voice has a seat.
            let [audio, _, _, stage] = tracks;
            let mut seats = seats;
            let [camera, screen] = [0, 1].map(|i| {
                seats
                    .get_mut(crate::cell_stage::PRESENTER_CAMERA + i)
                    .and_then(Option::take)
            });
            let audio = audio.filter(|_| !bridge);
            self.own_media_up(peer, [audio, camera, screen, stage], &stats);
        } else if !forwarded && !bridge {
            // A bridge partner's link carries the stage from cell to cell, nothing of ours.
            self.own_media_up(peer, tracks, &stats);
        }
        self.flush_pending(peer);
    }

    /// The server's stage: our seat, if we hold one, and whether we present. A change of
    /// the latter moves our camera and screen between our own tracks and the presenter's.
    pub(super) async fn stage_told(
        &mut self,
        seats: &[Option<plenum_proto::signal::StageSeat>],
        presenter: Option<&plenum_proto::signal::StageSeat>,
    ) {
        let (ours, presenting) = self.audio.cells.set_seats(seats, presenter);
        self.tell_audio(AudioCmd::Seat(ours));
        if presenting == self.presenting {
            return;
        }
        tracing::info!(presenting, "our pictures to every cell");
        self.presenting = presenting;
        let opened: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.opened)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in opened {
            self.media_tasks_down(&peer);
            self.media_up(&peer).await;
        }
    }

    /// Our bridges in a cells room may have changed with a new plan: a link that became one
    /// stops carrying our own media, one that no longer is carries it again.
    pub(super) async fn cells_moved(&mut self) {
        let now = self.audio.cells.bridges();
        let before = std::mem::replace(&mut self.bridges, now.clone());
        for peer in now.difference(&before) {
            if self.links.contains_key(peer) {
                tracing::debug!(peer = peer.short(), "a bridge now: the stage only");
                self.media_tasks_down(peer);
                if self.presenting {
                    self.media_up(peer).await;
                }
            }
        }
        for peer in before.difference(&now) {
            if self.links.contains_key(peer) {
                self.media_tasks_down(peer);
                self.media_up(peer).await;
            }
        }
    }

    /// Our own media goes out on a link's tracks.
    fn own_media_up(
        &mut self,
        peer: &PeerId,
        tracks: crate::tree_media::LinkTracks,
        stats: &Arc<crate::congestion::LinkStats>,
    ) {
        // The stage's track is the forwarding's alone.
        let [audio, video, screen, _stage] = tracks;
        if let Some(sender) = audio {
            let cmd = AudioCmd::LinkUp {
                peer: peer.clone(),
                sender,
                stats: Arc::clone(stats),
            };
            self.tell_audio(cmd);
        }
        let lanes = [
            (plenum_media::Content::Camera, video),
            (plenum_media::Content::Screen, screen),
        ];
        for (lane, sender) in lanes {
            if let Some(sender) = sender {
                let cmd = VideoCmd::LinkUp {
                    peer: peer.clone(),
                    lane,
                    sender,
                    stats: Arc::clone(stats),
                };
                self.tell_video(cmd);
            }
        }
    }

    /// Our place in a tree changed: children we now forward to stop carrying our own media,
    /// links we no longer forward to carry it again.
    pub(super) async fn tree_moved(&mut self, place: crate::tree_media::Place) {
        let now = crate::clock::now();
        let moved = self.video.tree.route(place, now);
        for peer in moved.forwarded {
            tracing::debug!(peer = peer.short(), "forwarding to a child");
            self.media_tasks_down(&peer);
        }
        for peer in moved.released {
            tracing::debug!(peer = peer.short(), "no longer forwarding to a link");
            self.media_up(&peer).await;
        }
    }

    /// What a track's reader forwards through and names media after: the tree's
    /// forwarding in a tree room, nothing in any other (its packets skip it).
    fn tree_readers(&self) -> Option<Arc<crate::tree_media::TreeMedia>> {
        self.tree_room.then(|| Arc::clone(&self.video.tree))
    }

    /// Reads a video track: a presenter lane of a cells room's stage (`stage`), or the
    /// peer's own camera or screen (forwarded down a tree in a tree room).
    fn read_video(
        &self,
        peer: PeerId,
        track: Arc<dyn TrackRemote>,
        lane: plenum_media::Content,
        stage: Option<usize>,
    ) -> tokio::task::JoinHandle<()> {
        let ends = crate::video::TrackEnds {
            sink: self.video.sink.clone(),
            events: self.events.clone(),
            receiving: self.video.receiving.clone(),
        };
        let relay = match (stage, self.tree_readers()) {
            (Some(lane), _) => crate::video::Relay::Stage {
                cells: Arc::clone(&self.audio.cells),
                lane,
                words: self.stage_words_tx.clone(),
            },
            (None, Some(tree)) => crate::video::Relay::Tree(tree),
            (None, None) => crate::video::Relay::Own,
        };
        tokio::spawn(crate::video::read_track(peer, lane, track, ends, relay))
    }

    /// A track the peer sends on its link: read (its media to the media threads), read
    /// and dropped (a peer that may not publish), or left unread past the link's bound.
    pub(super) async fn on_track(&mut self, peer: PeerId, track: Arc<dyn TrackRemote>) {
        let tree = self.tree_readers();
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let bound = if self.tree_room {
            MAX_TRACKS_PER_TREE_LINK
        } else if self.cells_room {
            MAX_TRACKS_PER_CELLS_LINK
        } else {
            MAX_TRACKS_PER_LINK
        };
        if link.tasks.len() >= bound {
            // Our links carry three tracks each way (audio, camera, screen): more is a peer
            // growing our readers and decoders without bound. Left unread.
            tracing::warn!(
                peer = peer.short(),
                "track beyond the link's bound; ignored"
            );
            link.refused_tracks += 1;
            if link.refused_tracks == 1 {
                self.emit(RoomEvent::Error(RoomError::Malformed {
                    peer,
                    reason: format!("more than {bound} media tracks on one link"),
                }));
            }
            return;
        }
        let track_id = track.track_id().await;
        let own_lane = link.lane_of(&track_id);
        let seat = crate::link::seat_of(&track_id).filter(|_| self.cells_room);
        let task = if self.tree_room && track_id.starts_with("stage-") {
            let audio = self.audio.clone();
            let tree = Arc::clone(&self.video.tree);
            tokio::spawn(read_stage(audio, peer.clone(), track, tree))
        } else if let Some(lane) = seat.and_then(crate::cell_stage::lane_content) {
            // The presenter's pictures, whoever brings them.
            self.read_video(peer.clone(), track, lane, seat)
        } else if let Some(seat) = seat {
            let audio = self.audio.clone();
            let words = self.stage_words_tx.clone();
            tokio::spawn(read_seat(audio, peer.clone(), track, seat, words))
        } else if self.core.is_viewer(&peer) {
            tracing::info!(
                peer = peer.short(),
                "media from a peer not permitted to publish; dropped"
            );
            // Read and drop: an unread track fills webrtc-rs's queue and logs each packet.
            tokio::spawn(async move { while track.poll().await.is_some() {} })
        } else if track.kind().await == RtpCodecKind::Video {
            self.read_video(peer.clone(), track, own_lane, None)
        } else {
            let audio = self.audio.clone();
            let loss = self.config.audio_loss_percent;
            tokio::spawn(read_track(audio, peer.clone(), track, loss, tree))
        };
        match self.links.get_mut(&peer) {
            Some(link) => link.tasks.push(task),
            None => task.abort(),
        }
    }
}

/// A link's track ready to write to, once its payload type is negotiated.
async fn track_sender(
    track: Option<crate::link::LinkTrack>,
    peer: &PeerId,
    what: &str,
) -> Option<TrackSender> {
    let track = track?;
    let Some(payload_type) = track.payload_type().await else {
        tracing::warn!(peer = peer.short(), "no {what} codec negotiated");
        return None;
    };
    Some(TrackSender {
        track: track.track,
        ssrc: track.ssrc,
        payload_type,
    })
}

/// Reads a neighbour's stage track in a tree room: each packet the stage takes is passed on
/// to our other neighbours and played as the stage speaker's voice.
async fn read_stage(
    audio: AudioHandle,
    peer: PeerId,
    track: Arc<dyn TrackRemote>,
    tree: Arc<crate::tree_media::TreeMedia>,
) {
    use webrtc::media_stream::track_remote::TrackRemoteEvent;
    let mut refused = 0u64;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let now = crate::clock::now();
                let Some(writes) = tree.push_stage(&peer, &packet, now) else {
                    refused += 1;
                    continue;
                };
                crate::tree_media::send(writes).await;
                // Played as the speaker's own voice (nobody's, until the application
                // names the speaker).
                if let Some(speaker) = tree.speaker() {
                    let _ = audio.packet(RtpIn {
                        peer: speaker,
                        via: (peer.clone(), crate::audio::TRACK_STAGE),
                        seq: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload: packet.payload,
                    });
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(peer = peer.short(), refused, "stage track ended");
}

/// Reads a neighbour's track of a seat of a cells room's stage: the voice it carries is
/// passed on along the cells and played as the seated peer's, when this neighbour is the
/// seat's source; a copy from another is dropped and its sender told to stop.
async fn read_seat(
    audio: AudioHandle,
    peer: PeerId,
    track: Arc<dyn TrackRemote>,
    seat: usize,
    words: mpsc::Sender<(PeerId, crate::cell_stage::Control)>,
) {
    use webrtc::media_stream::track_remote::TrackRemoteEvent;
    let mut copies = 0u64;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let now = crate::clock::now();
                let pushed = audio.cells.push(&peer, seat, &packet, now);
                for word in pushed.controls {
                    if words.try_send(word).is_err() {
                        tracing::debug!("stage word dropped; the next copy asks again");
                    }
                }
                crate::tree_media::send(pushed.writes).await;
                match pushed.play {
                    Some(voice) => {
                        let _ = audio.packet(RtpIn {
                            peer: voice,
                            via: (peer.clone(), crate::audio::track_seat(seat)),
                            seq: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            payload: packet.payload,
                        });
                    }
                    None => copies += 1,
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(peer = peer.short(), seat, copies, "seat track ended");
}

/// Reads a peer's Opus track and hands its packets to the audio task.
async fn read_track(
    audio: AudioHandle,
    peer: PeerId,
    track: std::sync::Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    loss_percent: u8,
    tree: Option<Arc<crate::tree_media::TreeMedia>>,
) {
    use rand::{Rng, SeedableRng};
    use webrtc::media_stream::track_remote::TrackRemoteEvent;
    let mut dropped = 0u64;
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) if rng.random_range(0..100u8) < loss_percent => {
                dropped += 1;
            }
            TrackRemoteEvent::OnRtpPacket(packet) => {
                // Forwarded audio is the root's, whichever neighbour brought it.
                let voice = match &tree {
                    Some(tree) => {
                        let now = crate::clock::now();
                        let lane = crate::tree_media::AUDIO;
                        crate::tree_media::send(tree.push(&peer, lane, &packet, now)).await;
                        // Played once we know whose voice it is.
                        let Some(origin) = tree.origin(&peer) else {
                            continue;
                        };
                        origin
                    }
                    None => peer.clone(),
                };
                let rtp = RtpIn {
                    peer: voice,
                    via: (peer.clone(), crate::audio::TRACK_AUDIO),
                    seq: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    payload: packet.payload,
                };
                if !audio.packet(rtp) {
                    dropped += 1;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(peer = peer.short(), dropped, "audio track ended");
}
