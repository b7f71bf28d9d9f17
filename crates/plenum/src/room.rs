//! The public room API: a clonable [`Room`] handle and a [`RoomEvents`] stream.

use std::time::Duration;

use bytes::Bytes;
use plenum_proto::{ChannelName, NameError, PeerId, RoomName};
use tokio::sync::{mpsc, oneshot};

use crate::config::RoomConfig;
use crate::driver::{Command, Driver};
pub use crate::events::RoomEvents;
use crate::types::{
    JoinError, LinkState, MAX_MESSAGE_BYTES, PeerInfo, PingError, PresentError, PublishError,
    RoomClosed, SendError, Target, TreeSendError, TreeTarget,
};

const COMMAND_QUEUE: usize = 256;

/// A handle to a joined room. Clones share the room. The room runs until [`leave`](Self::leave)
/// is called or every handle and the [`RoomEvents`] are dropped; dropping leaves abruptly
/// (peers notice through signaling), `leave` says goodbye first.
#[derive(Debug, Clone)]
pub struct Room {
    me: PeerId,
    grants: plenum_proto::token::Grants,
    publish_without_grant: bool,
    room: RoomName,
    commands: mpsc::Sender<Command>,
    audio: mpsc::Sender<crate::audio::AudioCmd>,
    video: crate::video::VideoHandle,
    /// Stream numbering and our current streams (shared by clones of the handle).
    next_stream: std::sync::Arc<std::sync::Mutex<Streams>>,
    /// Whether room messages flow (a host room's host is linked; always in other rooms).
    synced: tokio::sync::watch::Receiver<bool>,
}

/// Our published streams: at most one audio, one camera and one screen.
#[derive(Debug, Default)]
struct Streams {
    next: u64,
    audio: Option<String>,
    video: Option<String>,
    screen: Option<String>,
}

impl Streams {
    /// The slot for streams named `{prefix}-N`: `audio`, `video` (the camera) or `screen`.
    fn slot(&mut self, prefix: &str) -> &mut Option<String> {
        match prefix {
            "video" => &mut self.video,
            "screen" => &mut self.screen,
            _ => &mut self.audio,
        }
    }
}

/// A named channel of a room.
#[derive(Debug, Clone)]
pub struct Channel {
    room: Room,
    name: ChannelName,
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &ChannelName {
        &self.name
    }

    /// Sends `data` to `to`. Peers whose link is not open yet get it when it opens.
    pub async fn send(&self, data: impl Into<Bytes>, to: Target) -> Result<(), SendError> {
        self.room.send(&self.name, data.into(), to).await
    }
}

impl Room {
    /// Joins the room: connects to signaling, waits for the welcome, starts linking peers.
    pub async fn join(config: RoomConfig) -> Result<(Room, RoomEvents), JoinError> {
        let (signal, welcome) = crate::session::connect(&config).await?;
        let publish_without_grant = config.publish_without_grant;
        let me = welcome.me.clone();
        let grants = welcome.grants;
        let roster_len = welcome.peers.len();
        let (events_tx, events_rx) = crate::events::channel();
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let room = config.room.clone();
        tracing::info!(room = %room, peer = me.short(), peers = roster_len, "joined");
        let opus = crate::audio::opus_config(config.audio_bitrate_kbps);
        let tree = std::sync::Arc::new(crate::tree_media::TreeMedia::default());
        let cells = std::sync::Arc::new(crate::cell_stage::CellStage::new(me.clone()));
        let (audio, audio_thread) = crate::audio::spawn(
            events_tx.clone(),
            config.voice_processing,
            opus,
            std::sync::Arc::clone(&tree),
            std::sync::Arc::clone(&cells),
        );
        let (video, video_thread) =
            crate::video::spawn(events_tx.clone(), config.video_bitrate_kbps, (tree, cells));
        let driver = Driver::new(
            config,
            signal,
            welcome,
            commands_rx,
            events_tx,
            (audio.clone(), video.clone()),
            vec![audio_thread, video_thread],
        );
        let synced = driver.synced();
        tokio::spawn(driver.run());
        let room = Room {
            synced,
            me,
            grants,
            publish_without_grant,
            room,
            commands,
            audio: audio.cmds,
            video,
            next_stream: Default::default(),
        };
        Ok((room, events_rx))
    }

    /// Resolves once room messages flow: at once in a room without a host; in a host room
    /// when we are linked to the host and in step with it (or are the host). Messages sent
    /// before are queued, not lost.
    pub async fn wait_to_sync(&self) -> Result<(), RoomClosed> {
        let mut synced = self.synced.clone();
        synced
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| RoomClosed)
    }

    /// Whether room messages flow now (see [`wait_to_sync`](Self::wait_to_sync)).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    async fn audio(&self, cmd: crate::audio::AudioCmd) -> Result<(), RoomClosed> {
        self.audio.send(cmd).await.map_err(|_| RoomClosed)
    }

    /// Publishes audio from `source` to every peer (replacing what we published before), or
    /// stops publishing with `None`. Every link carries an Opus track from the start, so this
    /// never renegotiates.
    pub async fn set_audio_source(
        &self,
        source: Option<Box<dyn plenum_media::AudioSource>>,
    ) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Source(source)).await
    }

    /// Mutes or unmutes what we publish: while muted nothing is sent.
    pub async fn set_audio_muted(&self, muted: bool) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Muted(muted)).await
    }

    /// At a tree room's root (the presenter): whose voice the stage carries to every peer
    /// of the room (a viewer whose raised hand the presenter accepted), `None` for nobody.
    /// The word goes down the tree, and each peer reports it ([`RoomEvent::Stage`]): the
    /// one named sends its audio on the stage instead of to its own links, the others pass
    /// the stage on along the tree and play it as that peer's voice. Any other peer gets
    /// [`TreeSendError::NotRoot`]; a room that is not a tree, [`TreeSendError::NotATree`].
    pub async fn set_stage(&self, speaker: Option<PeerId>) -> Result<(), TreeSendError> {
        self.tree_command(|reply| Command::Stage { speaker, reply })
            .await
    }

    /// In a tree room: raises (or lowers) our hand. The word goes up the tree to the root,
    /// which reports it ([`RoomEvent::Hand`]) and may put us on stage. The root itself has
    /// no one to raise it to ([`TreeSendError::NoParent`]), nor has a peer between parents.
    pub async fn raise_hand(&self, raised: bool) -> Result<(), TreeSendError> {
        self.tree_command(|reply| Command::Hand { raised, reply })
            .await
    }

    /// In a cells room: presents (or stops). The server names one presenter at a time
    /// (another that asks waits for it to stop) and tells every member
    /// ([`RoomEvent::Seats`]); the presenter's camera and screen then reach every cell,
    /// passed on by the peers between without decoding, and its voice holds a seat.
    /// Sharing a screen asks for it too, until the screen stops. Any other room:
    /// [`PresentError::NotCells`].
    pub async fn present(&self, on: bool) -> Result<(), PresentError> {
        let (reply, result) = oneshot::channel();
        let command = Command::Present { on, reply };
        if self.commands.send(command).await.is_err() {
            return Err(PresentError::Closed);
        }
        result.await.map_err(|_| PresentError::Closed)?
    }

    /// Sends a tree command and waits for its answer.
    async fn tree_command(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), TreeSendError>>) -> Command,
    ) -> Result<(), TreeSendError> {
        let (reply, result) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(TreeSendError::Closed);
        }
        result.await.map_err(|_| TreeSendError::Closed)?
    }

    /// Turns echo cancellation and noise suppression for microphones on or off, at once.
    pub async fn set_voice_processing(
        &self,
        config: plenum_media::ProcessingConfig,
    ) -> Result<(), RoomClosed> {
        self.audio(crate::audio::AudioCmd::Processing(config)).await
    }

    /// Where the mix of every peer we hear goes, 20 ms at a time (`None`: nowhere). Returns
    /// once the previous sink is dropped, so a recording it wrote is complete.
    pub async fn set_audio_sink(
        &self,
        sink: Option<Box<dyn plenum_media::AudioSink>>,
    ) -> Result<(), RoomClosed> {
        let (done, replaced) = oneshot::channel();
        self.audio(crate::audio::AudioCmd::Sink(sink, done)).await?;
        replaced.await.map_err(|_| RoomClosed)
    }

    async fn announce(
        &self,
        announcement: plenum_proto::StreamAnnouncement,
    ) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::Stream(announcement))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Publishes an audio stream from `source` with the application's `metadata` (replacing
    /// the audio stream published before, if any); peers get [`RoomEvent::StreamAdded`].
    pub async fn add_stream(
        &self,
        source: Box<dyn plenum_media::AudioSource>,
        metadata: serde_json::Value,
    ) -> Result<String, PublishError> {
        self.may_publish()?;
        let stream = self.new_stream("audio").await?;
        self.set_audio_muted(false).await?;
        self.set_audio_source(Some(source)).await?;
        self.announce_added(&stream, "audio", metadata).await?;
        Ok(stream)
    }

    /// Publishes a video stream from `source` with the application's `metadata`; peers get
    /// [`RoomEvent::StreamAdded`] with kind `video`, then pictures in their video sink. A
    /// camera-like source replaces the camera stream published before, a screen source
    /// (`content()` is `Screen`) the shared screen, so that both can go out side by side; a
    /// screen's metadata gets `"type": "screen"` unless it names a type itself.
    pub async fn add_video_stream(
        &self,
        source: Box<dyn plenum_media::VideoSource>,
        mut metadata: serde_json::Value,
    ) -> Result<String, PublishError> {
        self.may_publish()?;
        let lane = source.content();
        let prefix = match lane {
            plenum_media::Content::Screen => {
                if let Some(object) = metadata.as_object_mut() {
                    object.entry("type").or_insert_with(|| "screen".into());
                } else if metadata.is_null() {
                    metadata = serde_json::json!({"type": "screen"});
                }
                "screen"
            }
            plenum_media::Content::Camera => "video",
        };
        let stream = self.new_stream(prefix).await?;
        self.video_source(lane, Some(source)).await?;
        self.announce_added(&stream, "video", metadata).await?;
        Ok(stream)
    }

    fn may_publish(&self) -> Result<(), PublishError> {
        if self.grants.publish || self.publish_without_grant {
            Ok(())
        } else {
            Err(PublishError::NotPermitted)
        }
    }

    /// What our token grants (everything on a server without tokens).
    pub fn grants(&self) -> plenum_proto::token::Grants {
        self.grants
    }

    /// Where pictures from every peer's video go (`None`: nowhere).
    pub fn set_video_sink(&self, sink: Option<Box<dyn plenum_media::VideoSink>>) {
        if let Ok(mut slot) = self.video.sink.lock() {
            *slot = sink;
        }
    }

    async fn video_source(
        &self,
        lane: plenum_media::Content,
        source: Option<Box<dyn plenum_media::VideoSource>>,
    ) -> Result<(), RoomClosed> {
        self.video
            .cmds
            .send(crate::video::VideoCmd::Source(lane, source))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Numbers a new stream `{prefix}-N`, removing the one in that slot published before.
    async fn new_stream(&self, prefix: &str) -> Result<String, RoomClosed> {
        let old = {
            let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
            streams.slot(prefix).take()
        };
        if let Some(old) = old {
            self.remove_stream(&old).await?;
        }
        let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
        streams.next += 1;
        let stream = format!("{prefix}-{}", streams.next);
        *streams.slot(prefix) = Some(stream.clone());
        Ok(stream)
    }

    async fn announce_added(
        &self,
        stream: &str,
        kind: &str,
        metadata: serde_json::Value,
    ) -> Result<(), RoomClosed> {
        self.announce(plenum_proto::StreamAnnouncement::Add {
            stream: stream.to_owned(),
            kind: kind.into(),
            metadata,
            muted: false,
        })
        .await
    }

    /// Stops publishing a stream; peers get [`RoomEvent::StreamRemoved`].
    pub async fn remove_stream(&self, stream: &str) -> Result<(), RoomClosed> {
        let prefix = stream.split_once('-').map_or("", |(prefix, _)| prefix);
        {
            let mut streams = self.next_stream.lock().map_err(|_| RoomClosed)?;
            let slot = streams.slot(prefix);
            if slot.as_deref() == Some(stream) {
                *slot = None;
            }
        }
        match prefix {
            "video" => {
                self.video_source(plenum_media::Content::Camera, None)
                    .await?
            }
            "screen" => {
                self.video_source(plenum_media::Content::Screen, None)
                    .await?
            }
            _ => self.set_audio_source(None).await?,
        }
        self.announce(plenum_proto::StreamAnnouncement::Remove {
            stream: stream.into(),
        })
        .await
    }

    /// Mutes or unmutes a stream without renegotiating; peers get [`RoomEvent::StreamMuted`].
    pub async fn set_stream_muted(&self, stream: &str, muted: bool) -> Result<(), RoomClosed> {
        self.set_audio_muted(muted).await?;
        self.announce(plenum_proto::StreamAnnouncement::Muted {
            stream: stream.into(),
            muted,
        })
        .await
    }

    /// The level of what our audio source captures now, in dBFS (also while muted; -inf
    /// without a source): for an input level meter.
    pub async fn audio_level(&self) -> Result<f32, RoomClosed> {
        let (reply, level) = oneshot::channel();
        self.audio(crate::audio::AudioCmd::Level(reply)).await?;
        level.await.map_err(|_| RoomClosed)
    }

    /// Our published audio stream, if any.
    pub fn audio_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.audio.clone())
    }

    /// Our published camera stream, if any.
    pub fn video_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.video.clone())
    }

    /// Our shared screen's stream, if any.
    pub fn screen_stream(&self) -> Option<String> {
        self.next_stream.lock().ok().and_then(|n| n.screen.clone())
    }

    /// Our peer id.
    pub fn id(&self) -> &PeerId {
        &self.me
    }

    /// The room's name.
    pub fn name(&self) -> &RoomName {
        &self.room
    }

    /// A named channel: UTF-8, 1 to 12 bytes.
    pub fn channel(&self, name: &str) -> Result<Channel, NameError> {
        Ok(Channel {
            room: self.clone(),
            name: ChannelName::new(name)?,
        })
    }

    /// Sends `data` on `channel` to `to`.
    pub async fn send(
        &self,
        channel: &ChannelName,
        data: Bytes,
        to: Target,
    ) -> Result<(), SendError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(SendError::TooLarge(data.len()));
        }
        let (reply, result) = oneshot::channel();
        let command = Command::Send {
            channel: channel.clone(),
            data,
            to,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| SendError::Closed)?;
        // Backpressure per link: a peer whose link holds much unsent makes this sender
        // wait, and nobody else.
        for outbox in result.await.map_err(|_| SendError::Closed)?? {
            outbox.writable().await;
        }
        Ok(())
    }

    /// Writes `bytes` as they are on the link to `peer` (nothing if it is not open), as a
    /// broken or hostile client could: for tests of the other side's checks.
    #[doc(hidden)]
    pub async fn send_raw(&self, peer: PeerId, bytes: impl Into<Bytes>) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::Raw {
                peer,
                bytes: bytes.into(),
            })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Broadcasts `data` to every peer of the room, whatever the topology: each peer gets
    /// it once ([`RoomEvent::MeshMessage`], in a tree room [`RoomEvent::TreeMessage`]). In
    /// a cellular room it travels over the overlay, forwarded cell to cell; in a tree along
    /// its edges; in a full mesh it goes straight to every link.
    pub async fn mesh_send(&self, data: impl Into<Bytes>) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::MeshSend(data.into()))
            .await
            .map_err(|_| RoomClosed)
    }

    /// Shares a small JSON state (audio on, hand raised...) with every linked peer, and
    /// with every peer whose link opens later ([`RoomEvent::State`] on their side). With
    /// `merge`, an object's keys are set over the current state's; otherwise it replaces it.
    pub async fn set_state(&self, state: serde_json::Value, merge: bool) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::SetState { state, merge })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Sends `data` to tree neighbours, one hop: the parent, every child, or one of them
    /// ([`RoomEvent::TreeMessage`] with `hops` 1 on their side). Tree broadcasts are
    /// [`mesh_send`](Self::mesh_send).
    pub async fn tree_send(
        &self,
        to: TreeTarget,
        data: impl Into<Bytes>,
    ) -> Result<(), TreeSendError> {
        let data = data.into();
        self.tree_command(|reply| Command::TreeSend { to, data, reply })
            .await
    }

    /// Sends `data` to `to` through the relay network: directly if it is a neighbour,
    /// relayed hop by hop if not ([`RoomEvent::RelayMessage`] on its side). A target not
    /// reached within its retries comes back as [`RoomError::Unreachable`].
    pub async fn relay_send(
        &self,
        to: PeerId,
        data: impl Into<Bytes>,
    ) -> Result<(), plenum_overlay::RelaySendError> {
        let (reply, result) = oneshot::channel();
        let command = Command::RelaySend {
            to,
            data: data.into(),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(plenum_overlay::RelaySendError::Closed);
        }
        result
            .await
            .map_err(|_| plenum_overlay::RelaySendError::Closed)?
    }

    /// Forms a direct link to `peer` in a relay network, its negotiation carried over the
    /// network (no server needed); `link_up` tells when it is open.
    pub async fn connect(&self, peer: PeerId) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::RelayLink { peer, up: true })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Closes the direct link to `peer` in a relay network.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), RoomClosed> {
        self.commands
            .send(Command::RelayLink { peer, up: false })
            .await
            .map_err(|_| RoomClosed)
    }

    /// Our direct links and the state of each. In a large room they are the few peers the
    /// overlay links us to, not the room's members.
    pub async fn links(&self) -> Result<Vec<(PeerId, LinkState)>, RoomClosed> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Links { reply })
            .await
            .map_err(|_| RoomClosed)?;
        result.await.map_err(|_| RoomClosed)
    }

    /// The call's figures: per link (its estimate, what it sends and receives, round trip,
    /// loss, the picture size it carries) and per video stream we receive (frame rate,
    /// size, freezes).
    pub async fn stats(&self) -> Result<crate::CallStats, RoomClosed> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Stats { reply })
            .await
            .map_err(|_| RoomClosed)?;
        result.await.map_err(|_| RoomClosed)
    }

    /// The peers of the room with the state of each link.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, RoomClosed> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Peers { reply })
            .await
            .map_err(|_| RoomClosed)?;
        result.await.map_err(|_| RoomClosed)
    }

    /// Measures the round trip to `peer` over its link (5 s timeout).
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, PingError> {
        let timeout = Duration::from_secs(5);
        let (reply, result) = oneshot::channel();
        let command = Command::Ping {
            peer: peer.clone(),
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| PingError::Closed)?;
        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(PingError::Closed),
            Err(_) => Err(PingError::Timeout(timeout)),
        }
    }

    /// Says goodbye to every peer and to the server, closes every link, and ends the room.
    pub async fn leave(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}
