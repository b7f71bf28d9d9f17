//! One WebRTC link to one peer: its peer connection, its data channel, and the writer task
//! that feeds the channel. The only module that touches webrtc-rs.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use plenum_proto::PeerId;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::{IceTransport, RoomConfig};
use crate::outbox::{Outbox, StallWatch, outbox};
use crate::types::LinkPath;

/// Resolving peers' `.local` candidates needs a multicast socket, which a machine without a
/// multicast route (only loopback, or offline) cannot open; webrtc-rs then refuses to create
/// any peer connection. Probed once: without multicast, links go on without mDNS.
fn mdns_mode() -> MulticastDnsMode {
    static MODE: std::sync::OnceLock<MulticastDnsMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match rtc::mdns::MulticastSocket::new().into_std() {
        Ok(_) => MulticastDnsMode::QueryOnly,
        Err(e) => {
            tracing::info!(error = %e, "no multicast on this machine; mDNS candidates off");
            MulticastDnsMode::Disabled
        }
    })
}

/// The data channel's label; one per link carries every named channel.
pub(crate) const DATA_CHANNEL_LABEL: &str = "plenum";
/// SCTP message size both ends announce (webrtc-rs's ceiling, and what browsers announce):
/// an envelope of the largest payload ([`crate::MAX_MESSAGE_BYTES`]) fits.
pub(crate) use crate::types::SCTP_MAX_MESSAGE;
const _: () = assert!(SCTP_MAX_MESSAGE == SctpMaxMessageSize::MAX_MESSAGE_SIZE);
/// Bytes a data channel may hold unsent before its writer waits.
const SEND_BUFFER_LIMIT: usize = 4 * 1024 * 1024;
/// Silence after which a link's ICE state goes `disconnected` (and we restart it).
const ICE_DISCONNECTED: Duration = Duration::from_secs(2);
/// Further silence after which it goes `failed`.
const ICE_FAILED: Duration = Duration::from_secs(10);
/// Keep-alive checks on an idle pair.
const ICE_KEEPALIVE: Duration = Duration::from_millis(500);
/// How long a pair with a peer-reflexive remote candidate waits before it may be nominated.
/// The far side's check often arrives before its candidate does through signaling, so its
/// own host address first shows up as peer-reflexive; webrtc-rs's default (1 s, in case a
/// better candidate follows) then made one join in ten wait a second on an idle loopback.
/// The first pair that works is used at once, as browsers do.
const ICE_PRFLX_WAIT: Duration = Duration::ZERO;
/// How often a connecting agent checks its pairs (RFC 8445's Ta, 50 ms by default there;
/// webrtc-rs paces at 200 ms). A check the far side triggers is answered at once, but our
/// own check of a pair found that way waits for the next pass: one join in a hundred
/// waited one more 200 ms on an idle loopback.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks of one pair before it is given up: the 1.4 s webrtc-rs allows at its own pace.
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// The Opus payload type we offer.
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Opus as every link negotiates it: 48 kHz, in-band FEC, 10 ms minimum packets.
fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The VP8 payload type we offer.
const VP8_PAYLOAD_TYPE: u8 = 96;

/// VP8 with the feedback a browser expects: NACK, PLI, FIR, REMB.
fn vp8_codec() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            feedback("goog-remb", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ],
    }
}

/// The payload type of VP8's retransmissions.
const VP8_RTX_PAYLOAD_TYPE: u8 = 97;

/// Retransmissions of VP8 on a repair SSRC of their own (RFC 4588), as browsers send them:
/// the original stream's sequence numbers, loss and jitter stay its own.
fn vp8_rtx_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
        rtcp_feedback: vec![],
    }
}

/// What a link reports to the room driver. `generation` tells a link from the one it
/// replaced, so that late events of a closed connection are ignored.
#[derive(Debug)]
pub(crate) struct LinkEvent {
    pub(crate) peer: PeerId,
    pub(crate) generation: u64,
    pub(crate) kind: LinkEventKind,
}

pub(crate) enum LinkEventKind {
    Candidate(RTCIceCandidateInit),
    State(RTCPeerConnectionState),
    Channel(Arc<dyn DataChannel>),
    Track(Arc<dyn TrackRemote>),
    /// Candidate gathering finished (TURN allocations included, successful or not).
    GatheringComplete,
    Open,
    Closed,
}

impl std::fmt::Debug for LinkEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Candidate(c) => f.debug_tuple("Candidate").field(&c.candidate).finish(),
            Self::State(s) => f.debug_tuple("State").field(s).finish(),
            Self::Channel(_) => f.write_str("Channel"),
            Self::Track(_) => f.write_str("Track"),
            Self::GatheringComplete => f.write_str("GatheringComplete"),
            Self::Open => f.write_str("Open"),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

/// A message that arrived on a link's data channel.
#[derive(Debug)]
pub(crate) struct LinkData {
    pub(crate) peer: PeerId,
    pub(crate) generation: u64,
    pub(crate) bytes: BytesMut,
}

/// Forwards webrtc-rs callbacks into the room driver's channel, and does nothing else.
#[derive(Clone)]
struct Forwarder {
    peer: PeerId,
    generation: u64,
    events: mpsc::Sender<LinkEvent>,
}

impl Forwarder {
    async fn forward(&self, kind: LinkEventKind) {
        let event = LinkEvent {
            peer: self.peer.clone(),
            generation: self.generation,
            kind,
        };
        // The driver is gone only when the room is closing; nothing to tell then.
        let _ = self.events.send(event).await;
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forwarder {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                tracing::debug!(candidate = %init.candidate, "local candidate");
                self.forward(LinkEventKind::Candidate(init)).await;
            }
            Err(e) => tracing::debug!(error = %e, "unserialisable local candidate"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.forward(LinkEventKind::GatheringComplete).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.forward(LinkEventKind::State(state)).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.forward(LinkEventKind::Track(track)).await;
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        self.forward(LinkEventKind::Channel(channel)).await;
    }
}

/// A link's WebRTC side.
pub(crate) struct Link {
    pub(crate) generation: u64,
    pub(crate) pc: Arc<dyn PeerConnection>,
    /// What waits for the link's writer task, once the channel exists.
    pub(crate) writer: Option<Outbox>,
    /// Whether the writer makes progress.
    pub(crate) stall: StallWatch,
    /// The path of the selected candidate pair, once connected.
    pub(crate) path: Option<crate::types::LinkPath>,
    /// Local candidates gathered so far.
    pub(crate) candidates: usize,
    /// The media section our candidates belong to (everything is bundled on the first):
    /// its `a=mid`, from our last local description.
    pub(crate) bundle_mid: Option<String>,
    /// The track ids of the peer's video sections, in the order of its last description.
    pub(crate) remote_video: Vec<String>,
    /// Our Opus track on this link and its sender.
    pub(crate) audio: Option<LinkTrack>,
    /// Our VP8 track for the camera on this link and its sender.
    pub(crate) video: Option<LinkTrack>,
    /// Our VP8 track for a shared screen.
    pub(crate) screen: Option<LinkTrack>,
    /// Whether the link carries the stage's voice too (a tree room's links).
    pub(crate) carries_stage: bool,
    /// Our Opus track for the stage (see `tree_media.rs`).
    pub(crate) stage: Option<LinkTrack>,
    /// Whether the link carries a cells room's stage: one Opus track per seat.
    pub(crate) carries_seats: bool,
    /// Our Opus tracks for the seats, in seat order, then our VP8 tracks for the presenter's
    /// camera and screen (see `cell_stage.rs`).
    pub(crate) seats: Vec<LinkTrack>,
    /// Whether the link's media came up (its tracks went to the media tasks once).
    pub(crate) opened: bool,
    /// The readers of the peer's tracks: aborted when the link closes.
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Tracks the peer offered beyond [`crate::driver`]'s bound, left unread.
    pub(crate) refused_tracks: u32,
    /// What the link's chain learns of its path: the estimate, the round trip, its queue.
    pub(crate) stats: Arc<crate::congestion::LinkStats>,
}

/// The label of a cells room's seat tracks, followed by the seat's number (`seat0`); their
/// ids are `{label}-{peer id}`.
pub(crate) const SEAT_LABEL: &str = "seat";

/// The labels of a cells room's presenter tracks: its camera's and its screen's (VP8).
pub(crate) const PRESENTER_LABELS: [&str; 2] = ["pcamera", "pscreen"];

/// The stage lane a track carries, from its id, in a cells room: a seat's voice
/// (`seat2-...`: 2), or the presenter's camera or screen (the lanes after the seats).
pub(crate) fn seat_of(track_id: &str) -> Option<usize> {
    let (label, _) = track_id.split_once('-')?;
    if let Some(i) = PRESENTER_LABELS.iter().position(|l| *l == label) {
        return Some(plenum_overlay::STAGE_SEATS + i);
    }
    let seat: usize = label.strip_prefix(SEAT_LABEL)?.parse().ok()?;
    (seat < plenum_overlay::STAGE_SEATS).then_some(seat)
}

/// The `a=mid` of a description's first media section, the one a bundle's candidates
/// belong to.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

/// The track id (`a=msid`'s second word) of each video section of a description, in order;
/// empty for a section without one.
pub(crate) fn video_track_ids(sdp: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
            if in_video {
                ids.push(String::new());
            }
        } else if in_video
            && let Some(msid) = line.strip_prefix("a=msid:")
            && let (Some(last), Some(track)) = (ids.last_mut(), msid.split_whitespace().nth(1))
        {
            *last = track.to_owned();
        }
    }
    ids
}

/// A link's outgoing media track (Opus or VP8).
#[derive(Clone)]
pub(crate) struct LinkTrack {
    pub(crate) track: Arc<TrackLocalStaticSample>,
    pub(crate) sender: Arc<dyn RtpSender>,
    pub(crate) ssrc: u32,
    pub(crate) mime: &'static str,
}

impl LinkTrack {
    /// The payload type negotiated for our track (known once the link is up).
    pub(crate) async fn payload_type(&self) -> Option<u8> {
        let params = self.sender.get_parameters().await.ok()?;
        let codecs = &params.rtp_parameters.codecs;
        codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(self.mime))
            .or_else(|| codecs.first())
            .map(|c| c.payload_type)
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Creates the peer connection (not yet negotiating).
    pub(crate) async fn new(
        config: &RoomConfig,
        peer: &PeerId,
        generation: u64,
        events: mpsc::Sender<LinkEvent>,
        keyframes: mpsc::Sender<crate::video::KeyframeRequest>,
    ) -> webrtc::error::Result<Self> {
        let ice_servers = config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        let stats = Arc::new(crate::congestion::LinkStats::default());
        let settings = SettingEngineBuilder::new()
            .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(SCTP_MAX_MESSAGE))
            // The data channel shares the path with the media (see `congestion`).
            .with_sctp_send_pace(stats.data_pace())
            // A silent path is noticed within ICE_DISCONNECTED and restarted then, well
            // before the room's heartbeat (6 s) gives the link up.
            .with_ice_timeouts(
                Some(ICE_DISCONNECTED),
                Some(ICE_FAILED),
                Some(ICE_KEEPALIVE),
            )
            .with_prflx_acceptance_min_wait(Some(ICE_PRFLX_WAIT))
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR))
            // An ICE restart gathers afresh on today's addresses (the old ones may be gone).
            .with_discard_local_candidates_during_ice_restart(true)
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(mdns_mode())
            .build();
        let handler = Forwarder {
            peer: peer.clone(),
            generation,
            events,
        };
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )?;
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8_codec(),
                payload_type: VP8_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )?;
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8_rtx_codec(),
                payload_type: VP8_RTX_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )?;
        // Codecs first: the chain adds the feedback its interceptors need to those registered.
        let registry = crate::congestion::chain(&mut media, &stats)?.with(
            Slot::from(FEEDBACK_TAP_SLOT),
            FeedbackTap::new(peer.clone(), keyframes, Arc::clone(&stats)),
        );
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .with_ice_transport_policy(match config.ice_transport {
                        IceTransport::All => RTCIceTransportPolicy::All,
                        IceTransport::Relay => RTCIceTransportPolicy::Relay,
                    })
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(config.udp_bind.clone())
            .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
            .build()
            .await?;
        Ok(Self {
            generation,
            pc: Arc::new(pc),
            writer: None,
            stall: StallWatch::default(),
            path: None,
            candidates: 0,
            bundle_mid: None,
            remote_video: Vec::new(),
            audio: None,
            video: None,
            screen: None,
            carries_stage: false,
            stage: None,
            carries_seats: false,
            seats: Vec::new(),
            opened: false,
            tasks: Vec::new(),
            refused_tracks: 0,
            stats,
        })
    }

    /// Adds our Opus track and the two VP8 tracks (camera, screen), send and receive, once
    /// per connection: sharing a screen later needs no renegotiation.
    async fn add_media(&mut self, me: &PeerId) -> webrtc::error::Result<()> {
        if self.audio.is_none() {
            self.audio = Some(self.add_track(me, "audio").await?);
        }
        if self.video.is_none() {
            self.video = Some(self.add_track(me, "video").await?);
        }
        if self.screen.is_none() {
            self.screen = Some(self.add_track(me, "screen").await?);
        }
        if self.carries_stage && self.stage.is_none() {
            self.stage = Some(self.add_track(me, "stage").await?);
        }
        if self.carries_seats && self.seats.is_empty() {
            for seat in 0..plenum_overlay::STAGE_SEATS {
                let track = self.add_track(me, &format!("{SEAT_LABEL}{seat}")).await?;
                self.seats.push(track);
            }
            for label in PRESENTER_LABELS {
                self.seats.push(self.add_track(me, label).await?);
            }
        }
        Ok(())
    }

    /// Adds one of our tracks: `label` is `audio`, `video` (the camera) or `screen`; the far
    /// side tells them apart by section (see [`Link::lane_of`]); the ids, `{label}-{peer id}`,
    /// differ between the two ends, as webrtc-rs needs.
    async fn add_track(&self, me: &PeerId, label: &str) -> webrtc::error::Result<LinkTrack> {
        let (ssrc, repair_ssrc) = {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            (rng.random::<u32>(), rng.random::<u32>())
        };
        let (kind, codec, mime) = match label {
            "audio" | "stage" => (RtpCodecKind::Audio, opus_codec(), MIME_TYPE_OPUS),
            seat if seat.starts_with(SEAT_LABEL) => {
                (RtpCodecKind::Audio, opus_codec(), MIME_TYPE_OPUS)
            }
            _ => (RtpCodecKind::Video, vp8_codec(), MIME_TYPE_VP8),
        };
        // Track ids differ between the two ends: webrtc-rs routes feedback by track id.
        let id = format!("{label}-{me}");
        let track = Arc::new(TrackLocalStaticSample::new(
            crate::clock::now(),
            MediaStreamTrack::new(
                me.as_str().to_owned(),
                id,
                label.to_owned(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        rtx: (kind == RtpCodecKind::Video)
                            .then_some(RTCRtpRtxParameters { ssrc: repair_ssrc }),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            ),
        )?);
        let sender = self
            .pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await?;
        Ok(LinkTrack {
            track,
            sender,
            ssrc,
            mime,
        })
    }

    /// Creates our data channel and an offer; returns the offer's SDP.
    pub(crate) async fn offer(
        &mut self,
        me: &PeerId,
        peer: &PeerId,
        data: mpsc::Sender<LinkData>,
        events: mpsc::Sender<LinkEvent>,
    ) -> webrtc::error::Result<String> {
        let init = RTCDataChannelInit {
            ordered: true,
            ..Default::default()
        };
        let channel = self
            .pc
            .create_data_channel(DATA_CHANNEL_LABEL, Some(init))
            .await?;
        self.attach(peer, channel, data, events);
        self.add_media(me).await?;
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        self.bundle_mid = first_mid(&sdp);
        Ok(sdp)
    }

    /// An offer with new ICE credentials on this same connection: media and data keep
    /// their DTLS and SCTP state, only the path is found again.
    pub(crate) async fn restart_offer(&mut self) -> webrtc::error::Result<String> {
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        self.bundle_mid = first_mid(&sdp);
        Ok(sdp)
    }

    /// Applies a remote offer (a first one, or a restart of this connection) and returns
    /// our answer's SDP.
    pub(crate) async fn answer(
        &mut self,
        me: &PeerId,
        sdp: String,
    ) -> webrtc::error::Result<String> {
        let video = video_track_ids(&sdp);
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        self.remote_video = video;
        // After the offer: the tracks take the offer's transceivers.
        self.add_media(me).await?;
        let answer = self.pc.create_answer(None).await?;
        let sdp = answer.sdp.clone();
        self.pc.set_local_description(answer).await?;
        self.bundle_mid = first_mid(&sdp);
        Ok(sdp)
    }

    /// Applies the remote answer to our offer.
    pub(crate) async fn accept_answer(&mut self, sdp: String) -> webrtc::error::Result<()> {
        let video = video_track_ids(&sdp);
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        self.remote_video = video;
        Ok(())
    }

    /// Which of our lanes a track of the peer's carries: the second video section is the
    /// screen, the first the camera (a browser cannot choose its track ids, so the section
    /// decides); a track in neither (an older peer's) by its id's prefix.
    pub(crate) fn lane_of(&self, track_id: &str) -> plenum_media::Content {
        match self.remote_video.iter().position(|id| id == track_id) {
            Some(1) => plenum_media::Content::Screen,
            Some(_) => plenum_media::Content::Camera,
            None if track_id.starts_with("screen-") => plenum_media::Content::Screen,
            None => plenum_media::Content::Camera,
        }
    }

    /// A remote candidate (the core held it until the remote description was set).
    pub(crate) async fn add_candidate(&self, candidate: RTCIceCandidateInit) {
        if let Err(e) = self.pc.add_ice_candidate(candidate).await {
            tracing::debug!(error = %e, "remote candidate refused");
        }
    }

    /// Starts the reader and writer tasks of a data channel.
    pub(crate) fn attach(
        &mut self,
        peer: &PeerId,
        channel: Arc<dyn DataChannel>,
        data: mpsc::Sender<LinkData>,
        events: mpsc::Sender<LinkEvent>,
    ) {
        let (writer, queue) = outbox();
        if let Some(old) = self.writer.replace(writer) {
            old.close();
        }
        self.stall = StallWatch::default();
        let generation = self.generation;
        let reader_channel = channel.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            while let Some(event) = reader_channel.poll().await {
                let kind = match event {
                    DataChannelEvent::OnMessage(message) => {
                        let item = LinkData {
                            peer: peer.clone(),
                            generation,
                            bytes: message.data,
                        };
                        if data.send(item).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    DataChannelEvent::OnOpen => LinkEventKind::Open,
                    DataChannelEvent::OnClose => LinkEventKind::Closed,
                    _ => continue,
                };
                let closed = matches!(kind, LinkEventKind::Closed);
                if events
                    .send(LinkEvent {
                        peer: peer.clone(),
                        generation,
                        kind,
                    })
                    .await
                    .is_err()
                    || closed
                {
                    return;
                }
            }
        });
        // Waits for the data channel, so the driver never does; ends (and closes the
        // outbox) with the channel.
        tokio::spawn(async move {
            use webrtc::error::Error;
            while let Some(bytes) = queue.pop().await {
                match channel.send(BytesMut::from(bytes)).await {
                    Ok(()) => {}
                    Err(e @ (Error::ErrDataChannelClosed | Error::ErrStreamClosed)) => {
                        tracing::debug!(error = %e, "data channel closed; writer ends");
                        return;
                    }
                    // One message the channel refuses (too large, say) is that message's
                    // loss, not the link's.
                    Err(e) => tracing::warn!(error = %e, "data channel refused a message"),
                }
            }
        });
    }

    /// The path of the selected candidate pair: the less direct of the two ends.
    pub(crate) async fn selected_path(&self) -> Option<LinkPath> {
        let sctp = self.pc.sctp().await?;
        let pair = sctp
            .transport()
            .ice_transport()
            .get_selected_candidate_pair()
            .await
            .ok()??;
        Some(path_of(pair.local().typ, pair.remote().typ))
    }

    /// Closes the connection in the background (close waits for the DTLS close_notify).
    pub(crate) fn close(self) {
        if let Some(writer) = &self.writer {
            writer.close();
        }
        for task in &self.tasks {
            task.abort();
        }
        let pc = self.pc;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
        });
    }
}

/// A pair's path: relayed if either end is, reflexive if either end is, else host.
fn path_of(local: RTCIceCandidateType, remote: RTCIceCandidateType) -> LinkPath {
    let rank = |t: RTCIceCandidateType| match t {
        RTCIceCandidateType::Relay => 2,
        RTCIceCandidateType::Srflx | RTCIceCandidateType::Prflx => 1,
        _ => 0,
    };
    match rank(local).max(rank(remote)) {
        2 => LinkPath::Relay,
        1 => LinkPath::Srflx,
        _ => LinkPath::Host,
    }
}

/// Where the feedback tap sits in the interceptor chain: after the defaults (closest to the
/// network come first), before the terminus.
const FEEDBACK_TAP_SLOT: usize = 12_500;

/// Watches inbound RTCP for what the peer asks of our media: picture-loss and full-intra
/// requests (the video task is told, by peer and SSRC, to send a keyframe), and the most it
/// takes (REMB: a forwarder's narrowest path below it; the link's figures keep it, and our
/// media plan on it). Everything passes through unchanged.
struct FeedbackTap {
    peer: PeerId,
    keyframes: mpsc::Sender<crate::video::KeyframeRequest>,
    stats: Arc<crate::congestion::LinkStats>,
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

impl FeedbackTap {
    fn new(
        peer: PeerId,
        keyframes: mpsc::Sender<crate::video::KeyframeRequest>,
        stats: Arc<crate::congestion::LinkStats>,
    ) -> Self {
        Self {
            peer,
            keyframes,
            stats,
            read: std::collections::VecDeque::new(),
            write: std::collections::VecDeque::new(),
        }
    }
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for FeedbackTap
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            let rembs = packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>())
                .filter(|remb| remb.bitrate.is_finite() && remb.bitrate >= 0.0);
            for remb in rembs {
                self.stats
                    .set_cap(remb.bitrate as u64, &remb.ssrcs, msg.now);
            }
            let asked = packets.iter().flat_map(|p| {
                let any = p.as_any();
                let pli = any
                    .downcast_ref::<PictureLossIndication>()
                    .map(|p| p.media_ssrc);
                let fir = any
                    .downcast_ref::<FullIntraRequest>()
                    .into_iter()
                    .flat_map(|f| f.fir.iter().map(|e| e.ssrc));
                pli.into_iter().chain(fir)
            });
            for ssrc in asked {
                // A full queue already holds requests: the keyframe they cause answers this.
                if self.keyframes.try_send((self.peer.clone(), ssrc)).is_err() {
                    tracing::trace!("keyframe request already pending");
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn candidates_name_the_first_media_section() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=group:BUNDLE 0 1 2\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        assert_eq!(super::first_mid(sdp).as_deref(), Some("0"));
        let data_only = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n";
        assert_eq!(super::first_mid(data_only).as_deref(), Some("data"));
        assert_eq!(super::first_mid("v=0\r\n"), None);
    }

    #[test]
    fn stage_tracks_are_told_by_their_ids() {
        use plenum_overlay::STAGE_SEATS;
        let id = "0123456789abcdef";
        assert_eq!(super::seat_of(&format!("seat0-{id}")), Some(0));
        assert_eq!(super::seat_of(&format!("seat3-{id}")), Some(3));
        assert_eq!(super::seat_of(&format!("pcamera-{id}")), Some(STAGE_SEATS));
        assert_eq!(
            super::seat_of(&format!("pscreen-{id}")),
            Some(STAGE_SEATS + 1)
        );
        // A seat past the stage, our own lanes, a browser's ids: none.
        for other in ["seat4-", "seat-", "audio-", "video-", "screen-", "6f1e", ""] {
            assert_eq!(super::seat_of(&format!("{other}{id}")), None, "{other}");
        }
    }

    #[test]
    fn video_sections_name_their_tracks_in_order() {
        // A browser's offer: ids it chose, the camera's section first, then the screen's.
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:s a1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:- 6f1e\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:s 9c2d\r\n";
        assert_eq!(super::video_track_ids(sdp), ["6f1e", "", "9c2d"]);
    }

    #[test]
    fn the_feedback_tap_asks_for_keyframes_and_keeps_the_peers_cap() {
        use rtc::interceptor::{AttributedPacket, Packet, TaggedPacket};
        use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        use rtc::sansio::Protocol;
        let peer = plenum_proto::PeerId::new("peer0000").expect("a peer id");
        let (keyframes, mut asked) = tokio::sync::mpsc::channel(4);
        let stats = std::sync::Arc::new(crate::congestion::LinkStats::default());
        let mut tap = super::FeedbackTap::new(peer.clone(), keyframes, stats.clone());
        let now = crate::clock::now();
        let remb = |bitrate: f32| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate,
                ssrcs: vec![7],
            })
        };
        let pli = Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: 7,
        });
        let read = |tap: &mut super::FeedbackTap, packets: Vec<Box<dyn rtc::rtcp::Packet>>| {
            tap.handle_read(TaggedPacket {
                now,
                transport: Default::default(),
                message: AttributedPacket::new(Packet::Rtcp(packets)),
            })
            .expect("read");
            tap.poll_read().expect("passed on");
        };
        read(&mut tap, vec![pli, remb(350_000.0)]);
        assert_eq!(asked.try_recv().ok(), Some((peer, 7)));
        assert_eq!(stats.cap(now), Some(350_000));
        assert_eq!(stats.fitted_estimate_for(7, now), 350_000);
        // A nonsense rate is no word at all: the cap told before stands.
        read(&mut tap, vec![remb(f32::NAN), remb(-1.0)]);
        assert_eq!(stats.cap(now), Some(350_000));
        // Two in one packet: the lesser holds.
        read(&mut tap, vec![remb(900_000.0), remb(200_000.0)]);
        assert_eq!(stats.cap(now), Some(200_000));
        // It lapses unless told again.
        assert_eq!(stats.cap(now + crate::congestion::CAP_HOLDS), None);
        assert_eq!(
            stats.fitted_estimate_for(7, now + crate::congestion::CAP_HOLDS),
            stats.media_estimate()
        );
    }
}
