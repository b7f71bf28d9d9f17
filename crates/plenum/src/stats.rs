//! A call's figures: per link (what it may send, sends and receives, its round trip and loss)
//! and per video stream we receive (frame rate, size, freezes), as [`crate::Room::stats`]
//! returns them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use plenum_media::Content;
use plenum_proto::PeerId;

/// A call's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CallStats {
    /// One per link.
    pub links: Vec<LinkReport>,
    /// One per video stream we receive.
    pub video: Vec<VideoReport>,
    /// One per peer we hear.
    pub audio: Vec<AudioReport>,
    /// Media packets we passed on, undecoded, to our children in a tree room.
    pub forwarded_packets: u64,
}

/// One heard peer's audio figures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AudioReport {
    pub peer: PeerId,
    /// Packets that arrived in time to be played.
    pub packets: u64,
    /// Packets that arrived after their turn (played as concealment instead).
    pub late: u64,
    /// 20 ms frames made up by the decoder (lost or late packets).
    pub concealed: u64,
    /// Frames recovered from the next packet's in-band FEC.
    pub recovered: u64,
    /// The delay the jitter buffer holds, to ride out the path's variation.
    pub delay: Duration,
}

/// One link's figures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LinkReport {
    pub peer: PeerId,
    /// What the link may send, in bits per second (from the peer's transport-wide feedback).
    pub estimate_bps: u64,
    /// What it sent over the last second, retransmissions included (RTP, bits per second).
    pub send_bps: u64,
    /// What it received over the last second (RTP, bits per second).
    pub receive_bps: u64,
    /// What its data channel sent over the last second (SCTP DATA, bits per second).
    pub data_send_bps: u64,
    /// The rate its data channel is held to, in bits per second: a share of the estimate
    /// while the link carries our video, 0 (not paced) otherwise.
    pub data_pace_bps: u64,
    /// The round trip, from RTCP reports, once measured.
    pub rtt: Option<Duration>,
    /// The share of our packets the peer last reported lost (0 to 1).
    pub loss: f64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
    /// Bytes sent again on request.
    pub retransmitted_bytes: u64,
    /// Bytes sent as probes: copies of what was just sent, on the repair stream, while the
    /// link tests whether its path carries a bigger picture.
    pub probe_bytes: u64,
    /// Retransmissions asked for and not sent (over their share of the estimate).
    pub retransmissions_refused: u64,
    /// Retransmissions from the peer that came on its repair stream (RTX) and filled a gap.
    pub retransmissions_received: u64,
    /// How long a video packet queued now would wait to leave.
    pub queue: Duration,
    /// The most the peer says it takes, in bits per second, while it says so: it passes
    /// our media on (down a tree, or across cells), and the narrowest path below it is
    /// narrower than the estimate. Our media to it plan on the lesser of the two.
    pub cap_bps: Option<u64>,
    /// The picture size each of our video streams goes out at on this link (camera, screen).
    pub sending: Vec<(Content, u32, u32)>,
}

/// One received video stream's figures.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VideoReport {
    pub peer: PeerId,
    pub lane: Content,
    /// Pictures decoded.
    pub frames: u64,
    /// Pictures decoded over the last second.
    pub fps: u32,
    pub width: u32,
    pub height: u32,
    /// Pauses between pictures long enough to be seen (see [`FrameClock`]).
    pub freezes: u32,
    pub freeze_total: Duration,
    pub longest_freeze: Duration,
}

/// Frames over time: frame rate over the last second, and freezes as WebRTC's statistics
/// count them: a pause longer than three average frame intervals and at least 150 ms longer
/// than one.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameClock {
    frames: u64,
    last: Option<Instant>,
    /// The mean frame interval, smoothed.
    mean: Option<Duration>,
    recent: VecDeque<Instant>,
    freezes: u32,
    freeze_total: Duration,
    longest: Duration,
}

impl FrameClock {
    const WINDOW: Duration = Duration::from_secs(1);

    pub(crate) fn frame(&mut self, now: Instant) {
        self.frames += 1;
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            match self.mean {
                Some(mean) if gap > (mean * 3).max(mean + Duration::from_millis(150)) => {
                    tracing::debug!(gap_ms = gap.as_millis() as u64, "picture frozen");
                    self.freezes += 1;
                    self.freeze_total += gap;
                    self.longest = self.longest.max(gap);
                }
                Some(mean) => self.mean = Some((mean * 7 + gap) / 8),
                None => self.mean = Some(gap),
            }
        }
        self.last = Some(now);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Self::WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Figures as of `now`: a pause still going on counts as a freeze once it is one.
    pub(crate) fn report(
        &self,
        peer: PeerId,
        lane: Content,
        (width, height): (u32, u32),
        now: Instant,
    ) -> VideoReport {
        let mut report = VideoReport {
            peer,
            lane,
            frames: self.frames,
            fps: self
                .recent
                .iter()
                .filter(|t| now.saturating_duration_since(**t) <= Self::WINDOW)
                .count() as u32,
            width,
            height,
            freezes: self.freezes,
            freeze_total: self.freeze_total,
            longest_freeze: self.longest,
        };
        if let (Some(last), Some(mean)) = (self.last, self.mean) {
            let gap = now.saturating_duration_since(last);
            if gap > (mean * 3).max(mean + Duration::from_millis(150)) {
                report.freezes += 1;
                report.freeze_total += gap;
                report.longest_freeze = report.longest_freeze.max(gap);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        plenum_proto::identity::Identity::generate().peer_id()
    }

    #[test]
    fn a_steady_stream_has_its_frame_rate_and_no_freeze() {
        let t0 = crate::clock::now();
        let mut clock = FrameClock::default();
        for i in 0..90u32 {
            clock.frame(t0 + Duration::from_millis(33) * i);
        }
        let now = t0 + Duration::from_millis(33) * 89;
        let report = clock.report(peer(), Content::Camera, (640, 360), now);
        assert_eq!(report.frames, 90);
        assert!((30..=31).contains(&report.fps), "{}", report.fps);
        assert_eq!(report.freezes, 0);
    }

    #[test]
    fn a_pause_is_a_freeze_and_one_still_going_counts_too() {
        let t0 = crate::clock::now();
        let mut clock = FrameClock::default();
        let mut t = t0;
        for _ in 0..30 {
            clock.frame(t);
            t += Duration::from_millis(33);
        }
        // 100 ms: three intervals, but not 150 ms over one: no freeze.
        t += Duration::from_millis(67);
        clock.frame(t);
        t += Duration::from_millis(400);
        clock.frame(t);
        let report = clock.report(peer(), Content::Camera, (640, 360), t);
        assert_eq!(report.freezes, 1);
        assert_eq!(report.longest_freeze, Duration::from_millis(400));
        // Nothing for a second: a freeze while it lasts.
        let later = clock.report(
            peer(),
            Content::Camera,
            (640, 360),
            t + Duration::from_secs(1),
        );
        assert_eq!(later.freezes, 2);
        assert_eq!(later.longest_freeze, Duration::from_secs(1));
        assert_eq!(later.fps, 1, "only the last picture is within the second");
    }
}
