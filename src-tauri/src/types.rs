//! What crosses the IPC boundary. `ui/src/bindings.ts` is generated from these types (see
//! `bindings.rs`); a test fails when the committed file differs.

use plenum_collab::BoardChange;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Join a room on a signaling server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct JoinRequest {
    /// `ws://host:port` or `wss://...`.
    pub server: String,
    /// The room's name.
    pub room: String,
    /// Our display name.
    pub name: String,
    /// The room's password, if it has one.
    pub password: Option<String>,
    /// The overlay to create the room with (a room that exists keeps its own).
    #[serde(default)]
    pub shape: RoomShape,
    /// What we do in the room: present, view, or take part (the default).
    #[serde(default)]
    pub role: Role,
    /// The access code we give a presenter who asks for one (sent as the credentials
    /// `{"code": ...}`).
    #[serde(default)]
    pub access_code: Option<String>,
    /// As a presenter: the access code everyone who links to us must give (none: all
    /// are let in).
    #[serde(default)]
    pub viewer_code: Option<String>,
}

/// What a peer does in a room. A presenter's viewers see and hear the presenters and
/// not each other, and the presenter sees them all listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes part: links to everyone (the default).
    #[default]
    Both,
    /// Presents: everyone links to us.
    Publisher,
    /// Watches: links to the presenters only.
    Viewer,
}

impl From<Role> for plenum::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Both => plenum::Role::Both,
            Role::Publisher => plenum::Role::Publisher,
            Role::Viewer => plenum::Role::Viewer,
        }
    }
}

impl From<plenum::Role> for Role {
    fn from(role: plenum::Role) -> Self {
        match role {
            plenum::Role::Both => Role::Both,
            plenum::Role::Publisher => Role::Publisher,
            plenum::Role::Viewer => Role::Viewer,
        }
    }
}

/// How a new room links its peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum RoomShape {
    /// Everyone links to everyone (the default).
    #[default]
    Mesh,
    /// A large room: cells of peers joined by bridges.
    Cells,
    /// A broadcast tree under the host (joined rooms: under the room's root).
    Tree,
    /// A relay network: a few neighbours each, messages relayed.
    Relay,
}

/// Host a room on the signaling server inside the app, and join it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct HostRequest {
    /// The room's name.
    pub room: String,
    /// Our display name.
    pub name: String,
    /// A password others must give, if any.
    pub password: Option<String>,
    /// The overlay to create the room with; in a tree the host is its root.
    #[serde(default)]
    pub shape: RoomShape,
    /// `Publisher` to present to the room (its invite then makes viewers).
    #[serde(default)]
    pub role: Role,
    /// As a presenter: the access code viewers must give (none: all are let in).
    #[serde(default)]
    pub viewer_code: Option<String>,
}

/// The room we are in.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Joined {
    /// Ourselves, as our tile shows us.
    pub me: PeerView,
    /// The room's name.
    pub room: String,
    /// The signaling server we joined through.
    pub server: String,
    /// A link others can paste to join: `plenum://join?server=...&room=...`.
    pub invite: String,
    /// The link a browser opens to join with no install (the server's guest page), where
    /// there is one.
    pub web_invite: Option<String>,
    /// Whether the signaling server runs inside this app.
    pub hosting: bool,
    /// What we do in the room.
    pub role: Role,
}

/// A room joined before, for the join screen's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RecentRoom {
    /// The signaling server.
    pub server: String,
    /// The room.
    pub room: String,
}

/// What the app remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Prefs {
    /// The last display name used.
    pub name: String,
    /// The last signaling server used.
    pub server: String,
    /// Rooms joined, most recent first.
    pub recent: Vec<RecentRoom>,
    /// The microphone chosen (`null`: the default).
    pub microphone: Option<String>,
    /// The speaker chosen (`null`: the default).
    pub speaker: Option<String>,
    /// Peers whose safety code the user compared and marked verified (their ids, which
    /// their keys derive).
    pub verified: Vec<String>,
    /// Whether the first run's device check is done (it is shown until then).
    pub checked: bool,
}

/// What the device check found: a sentence for each device that is missing or would not
/// open (`null`: it works).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, TS)]
pub struct DeviceReport {
    pub microphone: Option<String>,
    pub camera: Option<String>,
    pub speaker: Option<String>,
}

/// What the About dialog shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AboutInfo {
    /// The app's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its licence (an SPDX expression).
    pub licence: String,
    /// How it was installed: `deb`, `appimage`, or `null` for a build run from a checkout.
    pub package: Option<String>,
}

/// What the update server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct UpdateView {
    /// The version running.
    pub current: String,
    /// The manifest's address.
    pub server: String,
    /// A newer version, when there is one.
    pub available: Option<UpdateInfo>,
    /// Why nothing is offered (up to date, or the server offers an older version).
    pub note: Option<String>,
}

/// A newer version the update server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct UpdateInfo {
    /// Its version.
    pub version: String,
    /// Its release notes.
    pub notes: String,
    /// When it was published.
    pub date: Option<String>,
}

/// A signaling server and room read from an invite link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct InviteView {
    /// The signaling server.
    pub server: String,
    /// The room.
    pub room: String,
    /// The role to join as (a presenter's invite: `viewer`).
    pub role: Role,
    /// Whether the presenter asks for an access code.
    pub access_code: bool,
}

/// The state of a participant, as its tile shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Ourselves.
    Me,
    /// Known from the server; the link is being set up.
    Connecting,
    /// The link is open.
    Connected,
    /// The link was lost and is being re-established.
    Reconnecting,
    /// In the room, and never linked to us: both of us are viewers.
    InRoom,
    /// A tree room's presenter (its root), or a cells room's in another cell, not linked
    /// to us: its media comes down the tree, or across the cells.
    Presenting,
    /// A cells room's speaker in another cell, seated on the stage: its voice crosses the
    /// cells.
    OnStage,
    /// Not linked: one of us refused the other's access code.
    Refused,
}

/// One participant.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct PeerView {
    /// Its peer id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its link.
    pub state: PeerState,
    /// Round-trip time of the last ping, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Its colour (cursor, avatar), the same on every peer: `hsl(H 70% 50%)`.
    pub colour: String,
    /// Whether it is speaking now.
    pub speaking: bool,
    /// Its microphone: `null` when it publishes no audio, else whether it is muted.
    pub muted: Option<bool>,
    /// Whether it publishes video (its pictures come through the video channel).
    pub video: bool,
    /// Whether it shares a screen (its pictures come to the tile `ID/screen`).
    pub screen: bool,
    /// The link's path once connected: `host`, `srflx` or `relay`.
    pub path: Option<String>,
    /// The safety code of our two keys (the same on both sides; compare it aloud), once
    /// the peer has proven its key.
    pub safety_code: Option<String>,
    /// Whether the user marked this peer verified (now or in an earlier call).
    pub verified: bool,
    /// What it does in the room.
    pub role: Role,
    /// Whether its hand is raised (its shared state says `"hand": true`).
    pub hand: bool,
    /// How its link is doing, once connected (refreshed every second).
    pub quality: Option<LinkQuality>,
}

/// What a tile's connection indicator shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum QualityGrade {
    Good,
    Fair,
    Poor,
}

/// A connected peer's link, from the call's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct LinkQuality {
    /// The indicator: the worst of what follows.
    pub grade: QualityGrade,
    /// What we may send it (our estimate of the path), kbit/s.
    pub estimate_kbps: u32,
    /// What we send it and receive from it, kbit/s.
    pub send_kbps: u32,
    pub receive_kbps: u32,
    /// What our data channel sends it (the whiteboard, chat, files), kbit/s: it shares the
    /// path with our media, which give it part of the estimate while it has something to send.
    pub data_kbps: u32,
    /// The share of our packets lost on the way to it, percent.
    pub loss_percent: f32,
    /// The size our camera goes to it at (the layer its path affords).
    pub sending: Option<(u32, u32)>,
    /// Its camera as we receive it.
    pub video: Option<ReceivedVideo>,
    /// The share of its audio made up by concealment over the last second, percent.
    pub concealed_percent: f32,
    /// The delay our jitter buffer holds for its audio, ms.
    pub audio_delay_ms: u32,
}

/// A received picture stream's figures.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ReceivedVideo {
    pub width: u32,
    pub height: u32,
    /// Pictures over the last second.
    pub fps: u32,
    /// Pauses long enough to be seen, and their total, since the call began.
    pub freezes: u32,
    pub freeze_total_ms: u32,
}

/// The size a tile's video is shown at, in device pixels.
#[derive(Debug, Clone, PartialEq, Deserialize, TS)]
pub struct TileSize {
    /// The peer whose tile it is.
    pub peer: String,
    pub width: u32,
    pub height: u32,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ChatLine {
    /// The sender's peer id.
    pub from: String,
    /// The sender's display name.
    pub name: String,
    /// The text; the view shows it as text, never as markup.
    pub text: String,
    /// When it was sent (ours) or arrived (others'), in milliseconds since the Unix epoch.
    pub at_ms: f64,
    /// Whether we sent it.
    pub own: bool,
}

/// A stroke to start, as the view draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct StrokeStart {
    /// Pen or eraser.
    pub tool: plenum_collab::Tool,
    /// `#rrggbb`.
    pub colour: String,
    /// Width in thousandths of the board's width.
    pub width: f32,
    /// The first points.
    pub points: Vec<plenum_collab::Point>,
}

/// A stroke we started, and how the board changed.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StrokeStarted {
    /// Our number for it, for `board_points` and `board_end`.
    pub seq: u32,
    /// The change to show.
    pub change: BoardChange,
}

/// Something that happened in the call, pushed to the view as the `plenum` event.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiEvent {
    /// An invite link was opened (clicked in a browser or a chat) while the app runs.
    Invited {
        /// The room it names, with our remembered name.
        request: JoinRequest,
    },
    /// Everyone in the room (ourselves first), whenever a state or a latency changes.
    Roster {
        /// The participants.
        peers: Vec<PeerView>,
    },
    /// A chat message from a peer.
    Chat {
        /// The message.
        line: ChatLine,
    },
    /// A peer's pointer is at (`x`, `y`), fractions of the shared area.
    Cursor {
        /// Whose.
        peer: String,
        /// From the left.
        x: f32,
        /// From the top.
        y: f32,
    },
    /// A peer's pointer left the shared area, or the peer left.
    CursorGone {
        /// Whose.
        peer: String,
    },
    /// The whiteboard changed.
    Board {
        /// The changes, in order.
        changes: Vec<BoardChange>,
    },
    /// The connection to the signaling server, and the peers being reconnected.
    Status {
        /// Whether we are connected to the signaling server.
        signaling: bool,
        /// Names of peers whose link is being re-established.
        reconnecting: Vec<String>,
    },
    /// A peer sent something we could not use (it was ignored).
    Ignored {
        /// From whom.
        peer: String,
        /// Which channel.
        channel: String,
        /// Why.
        reason: String,
    },
    /// Our camera or shared screen failed (unplugged, closed); the call goes on without it.
    VideoError {
        /// A sentence for the user, naming the cause.
        message: String,
    },
    /// An audio device failed or could not be opened; the call goes on without it.
    AudioError {
        /// `microphone` or `speaker`.
        device: String,
        /// A sentence for the user, naming the device.
        message: String,
    },
    /// Our place in a large room's overlay changed, for the network panel.
    Network {
        /// Where we sit.
        view: NetworkView,
    },
    /// Our place in a tree room changed, for the network panel.
    Tree {
        /// Our parent (none for the root, or before we are placed).
        parent: Option<String>,
        /// Our children.
        children: Vec<String>,
        /// Our depth (the root's is 0), once known.
        depth: Option<u32>,
        /// Whether we are the root.
        is_root: bool,
        /// The root (the presenter), once known.
        root: Option<String>,
        /// How many are in the tree below us, us included (at the root: everyone).
        subtree: u32,
    },
    /// In a tree room (a presentation to a large audience): who is on stage, and at the
    /// root (the presenter) the raised hands waiting, oldest first.
    Stage {
        /// The peer whose voice reaches every viewer, if any.
        speaker: Option<StagePeer>,
        /// At the root: the viewers whose hand is up (the presenter may invite one to speak).
        hands: Vec<StagePeer>,
    },
    /// In a large (cells) room: who presents to every cell, if anyone (its camera and
    /// screen reach the whole room; anyone else's stay in their cell).
    RoomPresenter {
        /// Its name, when it is another.
        name: Option<String>,
        /// Whether it is us.
        you: bool,
    },
    /// Our direct neighbours in a relay room changed, for the network panel.
    Relay {
        /// The peers we link to directly.
        neighbours: Vec<String>,
    },
    /// A presenter did not accept our access code (or we gave none): no link to it.
    NotVerified {
        /// The presenter's name.
        name: String,
        /// What it said.
        reason: String,
    },
    /// The room ended.
    Closed {
        /// Why, if not because we left.
        reason: Option<String>,
    },
}

/// A viewer of a tree room, on stage or with a hand up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct StagePeer {
    /// Its id.
    pub peer: String,
    /// Its name, as its raised hand said (`null`: the presenter put on stage a viewer that
    /// raised none, and most of a tree is not linked to it).
    pub name: Option<String>,
}

/// Where we sit in a large (cellular) room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NetworkView {
    /// Our cell.
    pub cell: u32,
    /// How many cells the room has.
    pub cells: u32,
    /// Peers in our cell, ourselves included.
    pub cell_size: u32,
    /// Our bridge links to other cells.
    pub bridges: Vec<NetworkPeer>,
    /// Peers whose cell we know (cell mates, bridge partners, senders of broadcasts).
    pub known: Vec<NetworkPeer>,
}

/// A peer and its cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NetworkPeer {
    /// Its id.
    pub peer: String,
    /// Its cell.
    pub cell: u32,
}

/// Audio devices to choose from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AudioDevices {
    /// Microphones.
    pub microphones: Vec<AudioDevice>,
    /// Speakers.
    pub speakers: Vec<AudioDevice>,
    /// The microphone chosen (`null`: the default).
    pub microphone: Option<String>,
    /// The speaker chosen (`null`: the default).
    pub speaker: Option<String>,
}

/// Where the view opens the picture socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SocketInfo {
    /// `ws://127.0.0.1:PORT/pictures`.
    pub url: String,
    /// This run's token, sent as `?token=...`.
    pub token: String,
}

/// Cameras and screens to choose from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct VideoDevices {
    /// Cameras, then `testsrc` (a moving test pattern, to try video without a camera).
    pub cameras: Vec<VideoChoice>,
    /// Monitors, then windows; empty without a display.
    pub screens: Vec<VideoChoice>,
}

/// A camera, monitor or window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct VideoChoice {
    /// What to pass to `set_camera` or `share_screen`.
    pub id: String,
    /// What to show.
    pub name: String,
}

/// What we publish as video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct VideoState {
    /// Our camera is on.
    pub camera: bool,
    /// We share a screen.
    pub screen: bool,
}

/// One audio device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AudioDevice {
    /// Its id, to choose it by.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it is the system default.
    pub default: bool,
}

/// Our microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MicState {
    /// Not publishing audio.
    Off,
    /// Publishing.
    On,
    /// Publishing, muted.
    Muted,
}

/// The kind of a [`CommandError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A value given to the command is invalid (a name, a URL, a point).
    BadInput,
    /// Not in a room.
    NotInRoom,
    /// Already in a room.
    AlreadyInRoom,
    /// The signaling server could not be reached or did not answer.
    Unreachable,
    /// The server refused the join (wrong password, room full, ...).
    Refused,
    /// The embedded signaling server could not start.
    HostFailed,
    /// The engine could not send.
    SendFailed,
    /// An audio device could not be opened.
    Device,
    /// An update could not be checked for or installed.
    Update,
}

/// Why a command failed; the view shows `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A sentence for the user.
    pub message: String,
}

impl CommandError {
    pub(crate) fn new(kind: ErrorKind, message: impl ToString) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }

    pub(crate) fn bad_input(message: impl ToString) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    pub(crate) fn not_in_room() -> Self {
        Self::new(ErrorKind::NotInRoom, "not in a room")
    }
}
