//! What the audio and video tasks share: a link's outgoing track, ready to write to, and
//! writing one encoded frame to every link.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plenum_proto::PeerId;
use rtc::media::Sample;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

/// A link's outgoing track with what writing to it needs.
pub(crate) struct TrackSender {
    pub(crate) track: Arc<TrackLocalStaticSample>,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
}

impl std::fmt::Debug for TrackSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrackSender(pt {})", self.payload_type)
    }
}

/// Writes one encoded frame (`what`: for the log) to every link's track; a link that cannot
/// take it misses that frame, the others do not wait.
pub(crate) async fn send_to_all<'a>(
    senders: impl IntoIterator<Item = (&'a PeerId, &'a TrackSender)>,
    data: Bytes,
    duration: Duration,
    now: Instant,
    what: &'static str,
) {
    for (peer, sender) in senders {
        let sample = Sample {
            data: data.clone(),
            duration,
            ..Sample::new(now)
        };
        if let Err(e) = sender
            .track
            .sample_writer(sender.ssrc, sender.payload_type)
            .write_sample(&sample)
            .await
        {
            tracing::trace!(peer = peer.short(), error = %e, "{what} frame not sent");
        }
    }
}
