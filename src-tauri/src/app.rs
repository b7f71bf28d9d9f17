//! The app's state and what each command does, free of Tauri so tests call it directly.

use std::path::PathBuf;

use plenum::Invite;
use plenum_collab::{BoardChange, Point, Stroke};
use tokio::sync::{Mutex, mpsc};
use tracing::warn;

use crate::args::Args;
use crate::host::Hosted;
use crate::prefs;
use crate::session::Session;
use crate::types::{
    AudioDevice, AudioDevices, MicState, TileSize, VideoChoice, VideoDevices, VideoState,
};
use crate::types::{
    ChatLine, CommandError, ErrorKind, HostRequest, InviteView, JoinRequest, Joined, Prefs,
    StrokeStart, StrokeStarted, UiEvent,
};
use crate::video::VideoTiles;

/// Everything the commands share: one call at a time, and the embedded server once started.
#[derive(Debug)]
pub struct App {
    args: Args,
    prefs_path: PathBuf,
    /// Our key pair, kept in the config directory: the same peer id in every room and run.
    identity: plenum::Identity,
    /// Peers the user verified (kept in the prefs).
    verified: crate::session::Verified,
    ui: mpsc::Sender<UiEvent>,
    session: Mutex<Option<Session>>,
    hosted: Mutex<Option<Hosted>>,
    /// Peers' newest pictures and the tile sizes, shared with the video pump.
    pub video: VideoTiles,
    /// The device check, while it runs (before a call).
    check: std::sync::Arc<std::sync::Mutex<crate::devices::DeviceCheck>>,
}

impl App {
    /// The app state; events for the view go to `ui`, prefs live in `config_dir`.
    pub fn new(args: Args, config_dir: PathBuf, ui: mpsc::Sender<UiEvent>) -> Self {
        let key_path = config_dir.join("identity.key");
        let identity = plenum::Identity::load_or_create(&key_path).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "identity not kept; this run uses a fresh one");
            plenum::Identity::generate()
        });
        let prefs_path = prefs::path_in(&config_dir);
        let verified = prefs::load(&prefs_path).verified.into_iter().collect();
        Self {
            args,
            identity,
            verified: std::sync::Arc::new(std::sync::RwLock::new(verified)),
            prefs_path,
            ui,
            session: Mutex::new(None),
            hosted: Mutex::new(None),
            video: VideoTiles::default(),
            check: Default::default(),
        }
    }

    /// What the app remembers.
    pub fn prefs(&self) -> Prefs {
        prefs::load(&self.prefs_path)
    }

    /// The room the command line asked for, if any; without `--name`, as the name we last
    /// used (asked for once, then remembered).
    pub fn launch_request(&self) -> Result<Option<JoinRequest>, CommandError> {
        Ok(self.args.request()?.map(|req| self.named(req)))
    }

    /// The room an invite link opened while the app runs names, as our remembered name.
    pub fn invited(&self, link: &str) -> Result<JoinRequest, CommandError> {
        let args = Args {
            invite: Some(link.to_owned()),
            ..Args::default()
        };
        match args.request()? {
            Some(req) => Ok(self.named(req)),
            None => Err(CommandError::bad_input("not an invite link")),
        }
    }

    /// Sends an event to the view (dropped, with a log line, when the view is far behind).
    pub fn notify(&self, event: UiEvent) {
        if let Err(e) = self.ui.try_send(event) {
            warn!(error = %e, "event for the view dropped");
        }
    }

    fn named(&self, mut req: JoinRequest) -> JoinRequest {
        if req.name.trim().is_empty() {
            req.name = self.prefs().name;
        }
        req
    }

    /// Reads an invite link.
    pub fn read_invite(&self, link: &str) -> Result<InviteView, CommandError> {
        let invite = Invite::parse(link).map_err(CommandError::bad_input)?;
        Ok(InviteView {
            server: invite.server,
            room: invite.room.as_str().to_owned(),
            role: invite.role.map(Into::into).unwrap_or_default(),
            access_code: invite.credentials,
        })
    }

    /// Joins a room.
    pub async fn join(&self, req: JoinRequest) -> Result<Joined, CommandError> {
        let joined = self.join_as(&req, None).await?;
        let mut prefs = self.prefs();
        prefs::remember(&mut prefs, &joined.me.name, req.server.trim(), &joined.room);
        if let Err(e) = prefs::save(&self.prefs_path, &prefs) {
            warn!(error = %e, "prefs not saved");
        }
        Ok(joined)
    }

    /// Starts the embedded signaling server (once; later calls reuse it) and joins a room
    /// on it.
    pub async fn host(&self, req: HostRequest) -> Result<Joined, CommandError> {
        let (local, public) = {
            let mut hosted = self.hosted.lock().await;
            if hosted.is_none() {
                *hosted = Some(Hosted::start(self.args.host_bind).await?);
            }
            // Just set above if it was empty.
            let hosted = hosted
                .as_ref()
                .ok_or_else(|| CommandError::new(ErrorKind::HostFailed, "no server"))?;
            (hosted.local_url(), hosted.public_url().to_owned())
        };
        let join = JoinRequest {
            server: local,
            room: req.room,
            name: req.name,
            password: req.password,
            shape: req.shape,
            role: req.role,
            access_code: None,
            viewer_code: req.viewer_code,
        };
        let joined = self.join_as(&join, Some(&public)).await?;
        let mut prefs = self.prefs();
        prefs.name = joined.me.name.clone();
        prefs.checked = true;
        if let Err(e) = prefs::save(&self.prefs_path, &prefs) {
            warn!(error = %e, "prefs not saved");
        }
        Ok(joined)
    }

    async fn join_as(
        &self,
        req: &JoinRequest,
        public: Option<&str>,
    ) -> Result<Joined, CommandError> {
        // The call opens the devices the check held.
        self.device_check_stop().await;
        if req.name.trim().is_empty() {
            return Err(CommandError::bad_input("Enter your name."));
        }
        if req.room.trim().is_empty() {
            return Err(CommandError::bad_input("Enter a room name."));
        }
        let mut session = self.session.lock().await;
        if session.is_some() {
            return Err(CommandError::new(
                ErrorKind::AlreadyInRoom,
                "already in a room; leave it first",
            ));
        }
        let prefs = self.prefs();
        let devices = (prefs.microphone, prefs.speaker);
        let joined = Session::join(
            req,
            public,
            devices,
            self.ui.clone(),
            self.video.clone(),
            (&self.identity, self.verified.clone()),
        )
        .await?;
        let info = joined.joined().clone();
        *session = Some(joined);
        Ok(info)
    }

    /// Leaves the room, if in one.
    pub async fn leave(&self) {
        let session = self.session.lock().await.take();
        if let Some(session) = session {
            session.leave().await;
        }
        self.video.clear();
    }

    /// The sizes the view shows each peer's video at.
    pub fn video_sizes(&self, sizes: Vec<TileSize>) {
        self.video
            .set_sizes(sizes.into_iter().map(|s| (s.peer, s.width, s.height)));
    }

    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&Session) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let session = self.session.lock().await;
        f(session.as_ref().ok_or_else(CommandError::not_in_room)?).await
    }

    /// Raises or lowers our hand; returns whether it is raised.
    pub async fn raise_hand(&self, raised: bool) -> Result<bool, CommandError> {
        self.with(async |s| s.raise_hand(raised).await).await
    }

    /// At a tree room's root: puts a viewer on stage (`None`: nobody).
    pub async fn set_stage(&self, peer: Option<String>) -> Result<(), CommandError> {
        self.with(async |s| s.set_stage(peer).await).await
    }

    /// Sends a chat message.
    pub async fn send_chat(&self, text: String) -> Result<ChatLine, CommandError> {
        self.with(async |s| s.chat(text).await).await
    }

    /// Our pointer moved over the shared area (`None`: it left).
    pub async fn send_cursor(&self, at: Option<(f32, f32)>) -> Result<(), CommandError> {
        self.with(async |s| s.cursor(at).await).await
    }

    /// Starts a stroke.
    pub async fn board_begin(&self, start: StrokeStart) -> Result<StrokeStarted, CommandError> {
        self.with(async |s| s.board_begin(start).await).await
    }

    /// Extends our stroke.
    pub async fn board_points(
        &self,
        seq: u32,
        points: Vec<Point>,
    ) -> Result<BoardChange, CommandError> {
        self.with(async |s| s.board_points(seq, points).await).await
    }

    /// Ends our stroke.
    pub async fn board_end(&self, seq: u32) -> Result<BoardChange, CommandError> {
        self.with(async |s| s.board_end(seq).await).await
    }

    /// Undoes our latest stroke.
    pub async fn board_undo(&self) -> Result<Option<BoardChange>, CommandError> {
        self.with(async |s| s.board_undo().await).await
    }

    /// Clears the board for everyone.
    pub async fn board_clear(&self) -> Result<BoardChange, CommandError> {
        self.with(async |s| s.board_clear().await).await
    }

    /// Turns our microphone on or off (muted).
    pub async fn set_mic(&self, on: bool) -> Result<MicState, CommandError> {
        self.with(async |s| s.set_mic(on).await).await
    }

    /// The level our microphone captures now, dBFS (-inf when it is off).
    pub async fn mic_level(&self) -> Result<f32, CommandError> {
        self.with(async |s| s.mic_level().await).await
    }

    /// The microphones and speakers to choose from, and the choice.
    pub fn audio_devices(&self) -> AudioDevices {
        let list = plenum_media::device::list();
        let conv = |ds: Vec<plenum_media::DeviceInfo>| {
            ds.into_iter()
                .map(|d| AudioDevice {
                    id: d.id,
                    name: d.name,
                    default: d.default,
                })
                .collect()
        };
        let prefs = self.prefs();
        AudioDevices {
            microphones: conv(list.inputs),
            speakers: conv(list.outputs),
            microphone: prefs.microphone,
            speaker: prefs.speaker,
        }
    }

    /// Ends the device check and remembers that it was done, with the name others see us
    /// by when given (the first run asks for it once).
    pub async fn device_check_done(&self, name: Option<&str>) -> Result<(), CommandError> {
        let mut prefs = self.prefs();
        if let Some(name) = name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(CommandError::bad_input(
                    "Enter your name (at most 64 characters).",
                ));
            }
            prefs.name = name.to_owned();
        }
        prefs.checked = true;
        prefs::save(&self.prefs_path, &prefs)
            .map_err(|e| CommandError::bad_input(format!("not saved: {e}")))?;
        self.device_check_stop().await;
        Ok(())
    }

    /// Starts (or restarts) the device check on `microphone` and `camera` (a camera id,
    /// `default` or `testsrc`; `None`: none); the preview goes to the `preview` tile.
    pub async fn device_check(
        &self,
        microphone: Option<String>,
        camera: Option<String>,
    ) -> Result<crate::types::DeviceReport, CommandError> {
        if self.session.lock().await.is_some() {
            return Err(CommandError::new(
                ErrorKind::AlreadyInRoom,
                "the device check runs before a call; the call's settings choose devices",
            ));
        }
        let speakers = plenum_media::device::list().outputs.len();
        let (check, tiles) = (std::sync::Arc::clone(&self.check), self.video.clone());
        tokio::task::spawn_blocking(move || {
            let mut check = check
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            check.start(microphone, camera, speakers, &tiles)
        })
        .await
        .map_err(|e| CommandError::new(ErrorKind::Device, e))
    }

    /// The checked microphone's level, dBFS (`-inf` when none is read).
    pub fn device_check_level(&self) -> f32 {
        self.check
            .lock()
            .map(|c| c.level())
            .unwrap_or(f32::NEG_INFINITY)
    }

    /// Ends the device check (its devices close).
    pub async fn device_check_stop(&self) {
        let check = std::sync::Arc::clone(&self.check);
        // Joining the device threads blocks for up to a frame.
        let _ = tokio::task::spawn_blocking(move || {
            check
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .stop();
        })
        .await;
        self.video.forget(crate::devices::PREVIEW_TILE);
    }

    /// Plays the test sound on `speaker` (`None`: the default).
    pub async fn play_test_sound(&self, speaker: Option<String>) -> Result<(), CommandError> {
        tokio::task::spawn_blocking(move || crate::devices::play_test_sound(speaker.as_deref()))
            .await
            .map_err(|e| CommandError::new(ErrorKind::Device, e))?
    }

    /// Chooses the microphone and speaker (remembered; applied at once in a call).
    pub async fn set_devices(
        &self,
        microphone: Option<String>,
        speaker: Option<String>,
    ) -> Result<Option<MicState>, CommandError> {
        let mut prefs = self.prefs();
        prefs.microphone = microphone.clone();
        prefs.speaker = speaker.clone();
        if let Err(e) = prefs::save(&self.prefs_path, &prefs) {
            warn!(error = %e, "prefs not saved");
        }
        let session = self.session.lock().await;
        match session.as_ref() {
            Some(s) => s.set_devices(microphone, speaker).await.map(Some),
            None => Ok(None),
        }
    }

    /// Cameras (and the test pattern) and screens to choose from.
    pub fn video_devices(&self) -> VideoDevices {
        let choice = |id: String, name: String| VideoChoice { id, name };
        let mut cameras: Vec<VideoChoice> = plenum_media::camera::cameras()
            .into_iter()
            .map(|c| choice(c.index.to_string(), c.name))
            .collect();
        cameras.push(choice(
            crate::session::TEST_PATTERN.to_owned(),
            "Test pattern".to_owned(),
        ));
        let screens = plenum_media::screen::screens()
            .unwrap_or_default()
            .into_iter()
            .map(|s| match s.kind {
                "window" => choice(format!("window:{}", s.id), format!("Window: {}", s.name)),
                _ => choice(
                    s.name.clone(),
                    format!("Screen {} ({}x{})", s.name, s.width, s.height),
                ),
            })
            .collect();
        VideoDevices { cameras, screens }
    }

    /// Turns our camera on (a camera id, `default` or `testsrc`) or off (`None`).
    pub async fn set_camera(&self, camera: Option<String>) -> Result<VideoState, CommandError> {
        self.with(async |s| s.set_camera(camera).await).await
    }

    /// Shares a screen or window, or stops (`None`).
    pub async fn share_screen(&self, target: Option<String>) -> Result<VideoState, CommandError> {
        self.with(async |s| s.share_screen(target).await).await
    }

    /// Marks a peer verified (its safety code compared aloud) or not; remembered.
    pub async fn set_verified(&self, peer: String, verified: bool) -> Result<(), CommandError> {
        if plenum::PeerId::new(peer.as_str()).is_err() {
            return Err(CommandError::bad_input(format!(
                "{peer:?} is not a peer id"
            )));
        }
        let ids: Vec<String> = {
            let mut set = self
                .verified
                .write()
                .map_err(|_| CommandError::bad_input("verified peers unavailable"))?;
            if verified {
                set.insert(peer);
            } else {
                set.remove(&peer);
            }
            set.iter().cloned().collect()
        };
        let mut prefs = self.prefs();
        prefs.verified = ids;
        if let Err(e) = prefs::save(&self.prefs_path, &prefs) {
            warn!(error = %e, "prefs not saved");
        }
        if let Some(session) = self.session.lock().await.as_ref() {
            session.refresh().await;
        }
        Ok(())
    }

    /// The board in drawing order.
    pub async fn board_snapshot(&self) -> Result<Vec<Stroke>, CommandError> {
        self.with(async |s| s.board_snapshot().await).await
    }
}
