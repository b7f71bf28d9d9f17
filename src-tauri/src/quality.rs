//! A connected peer's link as the user sees it: the figures of the call's statistics and one
//! grade for the tile's indicator, the worst of what they say.

use std::collections::BTreeMap;

use plenum::{AudioReport, CallStats, LinkReport, PeerId, VideoReport};

use crate::types::{LinkQuality, PeerState, PeerView, QualityGrade, ReceivedVideo};

/// Where each figure turns a link fair, then poor.
struct Bounds {
    /// Our estimate of the path, kbit/s (under it: worse).
    estimate_kbps: (u32, u32),
    /// Loss on the way to the peer, percent.
    loss_percent: (f32, f32),
    /// Round trip, ms.
    rtt_ms: (f64, f64),
    /// Its camera's pictures per second (under it: worse).
    fps: (u32, u32),
    /// Its audio concealed over the last second, percent.
    concealed_percent: (f32, f32),
}

const BOUNDS: Bounds = Bounds {
    estimate_kbps: (500, 150),
    loss_percent: (3.0, 10.0),
    rtt_ms: (250.0, 500.0),
    fps: (20, 8),
    concealed_percent: (3.0, 10.0),
};

fn above<T: PartialOrd>(value: T, (fair, poor): (T, T)) -> QualityGrade {
    if value >= poor {
        QualityGrade::Poor
    } else if value >= fair {
        QualityGrade::Fair
    } else {
        QualityGrade::Good
    }
}

fn below<T: PartialOrd>(value: T, (fair, poor): (T, T)) -> QualityGrade {
    if value < poor {
        QualityGrade::Poor
    } else if value < fair {
        QualityGrade::Fair
    } else {
        QualityGrade::Good
    }
}

/// The figures a grade is made of.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub estimate_kbps: u32,
    pub loss_percent: f32,
    pub rtt_ms: Option<f64>,
    /// Its camera's pictures per second, when we receive it.
    pub fps: Option<u32>,
    pub concealed_percent: f32,
}

/// The worst of what the figures say.
pub fn grade(f: &Figures) -> QualityGrade {
    let mut grade = below(f.estimate_kbps, BOUNDS.estimate_kbps)
        .max(above(f.loss_percent, BOUNDS.loss_percent))
        .max(above(f.concealed_percent, BOUNDS.concealed_percent));
    if let Some(rtt) = f.rtt_ms {
        grade = grade.max(above(rtt, BOUNDS.rtt_ms));
    }
    if let Some(fps) = f.fps {
        grade = grade.max(below(fps, BOUNDS.fps));
    }
    grade
}

/// Audio is graded once this many packets were played between two readings (half a
/// second's worth): a peer that mutes stops sending, and the frames concealed while its
/// stream ends are no fault of the path.
const GRADED_AUDIO: u64 = 25;
/// Video is graded once this many pictures have been decoded (its first seconds' rate is
/// the start, not the path).
const GRADED_VIDEO: u64 = 60;

/// The share (percent) of frames concealed between two readings of (packets played,
/// frames concealed); none while too little was played to say.
pub fn concealed_share(now: (u64, u64), before: (u64, u64)) -> f32 {
    let played = now.0.saturating_sub(before.0);
    let made_up = now.1.saturating_sub(before.1);
    if played < GRADED_AUDIO {
        return 0.0;
    }
    made_up as f32 * 100.0 / (played + made_up) as f32
}

/// Each connected peer's link quality in `peers`, from the call's statistics; `heard` keeps
/// each heard peer's audio (packets, concealed frames) from one refresh to the next.
pub fn grade_links(
    peers: &mut BTreeMap<PeerId, PeerView>,
    heard: &mut BTreeMap<PeerId, (u64, u64)>,
    stats: &CallStats,
) {
    for link in &stats.links {
        let Some(view) = peers.get_mut(&link.peer) else {
            continue;
        };
        if view.state != PeerState::Connected {
            continue;
        }
        let video = stats
            .video
            .iter()
            .find(|v| v.peer == link.peer && v.lane == plenum_media::Content::Camera);
        let audio = stats.audio.iter().find(|a| a.peer == link.peer);
        let before = match audio.map(|a| (a.packets, a.concealed)) {
            Some(now) => heard.insert(link.peer.clone(), now),
            None => heard.remove(&link.peer),
        };
        view.quality = Some(of_link(link, video, audio, before, view.rtt_ms));
    }
}

/// The quality of one link: `heard_before` is the peer's audio (packets, concealed frames)
/// at the last refresh, so concealment is measured over the time since; `rtt_ms` the last
/// ping's round trip.
pub fn of_link(
    link: &LinkReport,
    video: Option<&VideoReport>,
    audio: Option<&AudioReport>,
    heard_before: Option<(u64, u64)>,
    rtt_ms: Option<f64>,
) -> LinkQuality {
    let estimate_kbps = (link.estimate_bps / 1000) as u32;
    let loss_percent = (link.loss * 100.0) as f32;
    let concealed_percent = match (audio, heard_before) {
        (Some(a), Some(before)) => concealed_share((a.packets, a.concealed), before),
        _ => 0.0,
    };
    let figures = Figures {
        estimate_kbps,
        loss_percent,
        rtt_ms: rtt_ms.or(link.rtt.map(|d| d.as_secs_f64() * 1000.0)),
        fps: video.filter(|v| v.frames >= GRADED_VIDEO).map(|v| v.fps),
        concealed_percent,
    };
    LinkQuality {
        grade: grade(&figures),
        estimate_kbps,
        send_kbps: (link.send_bps / 1000) as u32,
        receive_kbps: (link.receive_bps / 1000) as u32,
        data_kbps: (link.data_send_bps / 1000) as u32,
        loss_percent,
        sending: link
            .sending
            .iter()
            .find(|(lane, ..)| *lane == plenum_media::Content::Camera)
            .map(|(_, w, h)| (*w, *h)),
        video: video.map(|v| ReceivedVideo {
            width: v.width,
            height: v.height,
            fps: v.fps,
            freezes: v.freezes,
            freeze_total_ms: v.freeze_total.as_millis() as u32,
        }),
        concealed_percent,
        audio_delay_ms: audio.map_or(0, |a| a.delay.as_millis() as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Figures {
        Figures {
            estimate_kbps: 2_000,
            loss_percent: 0.0,
            rtt_ms: Some(20.0),
            fps: Some(30),
            concealed_percent: 0.0,
        }
    }

    #[test]
    fn a_link_is_as_good_as_its_worst_figure() {
        assert_eq!(grade(&good()), QualityGrade::Good);
        let fair = [
            Figures {
                estimate_kbps: 400,
                ..good()
            },
            Figures {
                loss_percent: 4.0,
                ..good()
            },
            Figures {
                rtt_ms: Some(300.0),
                ..good()
            },
            Figures {
                fps: Some(12),
                ..good()
            },
            Figures {
                concealed_percent: 5.0,
                ..good()
            },
        ];
        for f in fair {
            assert_eq!(grade(&f), QualityGrade::Fair, "{f:?}");
        }
        let poor = [
            Figures {
                estimate_kbps: 100,
                ..good()
            },
            Figures {
                loss_percent: 15.0,
                ..good()
            },
            Figures {
                rtt_ms: Some(800.0),
                ..good()
            },
            Figures {
                fps: Some(3),
                ..good()
            },
            Figures {
                concealed_percent: 20.0,
                ..good()
            },
            // One poor figure among fair ones.
            Figures {
                estimate_kbps: 400,
                loss_percent: 12.0,
                ..good()
            },
        ];
        for f in poor {
            assert_eq!(grade(&f), QualityGrade::Poor, "{f:?}");
        }
        // No video and no round trip yet: graded on the rest.
        let quiet = Figures {
            rtt_ms: None,
            fps: None,
            ..good()
        };
        assert_eq!(grade(&quiet), QualityGrade::Good);
    }

    #[test]
    fn concealment_is_measured_since_the_last_reading() {
        assert_eq!(concealed_share((150, 10), (100, 10)), 0.0);
        assert_eq!(concealed_share((145, 15), (100, 10)), 10.0);
        // Nothing heard since, or too little to say (a peer that muted): nothing concealed.
        assert_eq!(concealed_share((100, 10), (100, 10)), 0.0);
        assert_eq!(concealed_share((110, 20), (100, 10)), 0.0);
        // A reset counter (a new stream) is not a negative share.
        assert_eq!(concealed_share((5, 0), (100, 10)), 0.0);
    }
}
