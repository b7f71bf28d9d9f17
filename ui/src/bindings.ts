// Generated from src-tauri/src/types.rs and plenum-collab by src-tauri/src/bindings.rs.
// Do not edit: run `PLENUM_WRITE_BINDINGS=1 cargo test -p plenum-app --test bindings-match-the-rust-types`.

export type JoinRequest = { 
/**
 * `ws://host:port` or `wss://...`.
 */
server: string, 
/**
 * The room's name.
 */
room: string, 
/**
 * Our display name.
 */
name: string, 
/**
 * The room's password, if it has one.
 */
password: string | null, 
/**
 * The overlay to create the room with (a room that exists keeps its own).
 */
shape: RoomShape, 
/**
 * What we do in the room: present, view, or take part (the default).
 */
role: Role, 
/**
 * The access code we give a presenter who asks for one (sent as the credentials
 * `{"code": ...}`).
 */
access_code: string | null, 
/**
 * As a presenter: the access code everyone who links to us must give (none: all
 * are let in).
 */
viewer_code: string | null, };

export type HostRequest = { 
/**
 * The room's name.
 */
room: string, 
/**
 * Our display name.
 */
name: string, 
/**
 * A password others must give, if any.
 */
password: string | null, 
/**
 * The overlay to create the room with; in a tree the host is its root.
 */
shape: RoomShape, 
/**
 * `Publisher` to present to the room (its invite then makes viewers).
 */
role: Role, 
/**
 * As a presenter: the access code viewers must give (none: all are let in).
 */
viewer_code: string | null, };

export type RoomShape = "mesh" | "cells" | "tree" | "relay";

export type Role = "both" | "publisher" | "viewer";

export type NetworkView = { 
/**
 * Our cell.
 */
cell: number, 
/**
 * How many cells the room has.
 */
cells: number, 
/**
 * Peers in our cell, ourselves included.
 */
cell_size: number, 
/**
 * Our bridge links to other cells.
 */
bridges: Array<NetworkPeer>, 
/**
 * Peers whose cell we know (cell mates, bridge partners, senders of broadcasts).
 */
known: Array<NetworkPeer>, };

export type NetworkPeer = { 
/**
 * Its id.
 */
peer: string, 
/**
 * Its cell.
 */
cell: number, };

export type StagePeer = { 
/**
 * Its id.
 */
peer: string, 
/**
 * Its name, as its raised hand said (`null`: the presenter put on stage a viewer that
 * raised none, and most of a tree is not linked to it).
 */
name: string | null, };

export type Joined = { 
/**
 * Ourselves, as our tile shows us.
 */
me: PeerView, 
/**
 * The room's name.
 */
room: string, 
/**
 * The signaling server we joined through.
 */
server: string, 
/**
 * A link others can paste to join: `plenum://join?server=...&room=...`.
 */
invite: string, 
/**
 * The link a browser opens to join with no install (the server's guest page), where
 * there is one.
 */
web_invite: string | null, 
/**
 * Whether the signaling server runs inside this app.
 */
hosting: boolean, 
/**
 * What we do in the room.
 */
role: Role, };

export type RecentRoom = { 
/**
 * The signaling server.
 */
server: string, 
/**
 * The room.
 */
room: string, };

export type Prefs = { 
/**
 * The last display name used.
 */
name: string, 
/**
 * The last signaling server used.
 */
server: string, 
/**
 * Rooms joined, most recent first.
 */
recent: Array<RecentRoom>, 
/**
 * The microphone chosen (`null`: the default).
 */
microphone: string | null, 
/**
 * The speaker chosen (`null`: the default).
 */
speaker: string | null, 
/**
 * Peers whose safety code the user compared and marked verified (their ids, which
 * their keys derive).
 */
verified: Array<string>, 
/**
 * Whether the first run's device check is done (it is shown until then).
 */
checked: boolean, };

export type InviteView = { 
/**
 * The signaling server.
 */
server: string, 
/**
 * The room.
 */
room: string, 
/**
 * The role to join as (a presenter's invite: `viewer`).
 */
role: Role, 
/**
 * Whether the presenter asks for an access code.
 */
access_code: boolean, };

export type AboutInfo = { 
/**
 * The app's name.
 */
name: string, 
/**
 * Its version.
 */
version: string, 
/**
 * Its licence (an SPDX expression).
 */
licence: string, 
/**
 * How it was installed: `deb`, `appimage`, or `null` for a build run from a checkout.
 */
package: string | null, };

export type DeviceReport = { microphone: string | null, camera: string | null, speaker: string | null, };

export type UpdateView = { 
/**
 * The version running.
 */
current: string, 
/**
 * The manifest's address.
 */
server: string, 
/**
 * A newer version, when there is one.
 */
available: UpdateInfo | null, 
/**
 * Why nothing is offered (up to date, or the server offers an older version).
 */
note: string | null, };

export type UpdateInfo = { 
/**
 * Its version.
 */
version: string, 
/**
 * Its release notes.
 */
notes: string, 
/**
 * When it was published.
 */
date: string | null, };

export type PeerState = "me" | "connecting" | "connected" | "reconnecting" | "in_room" | "presenting" | "on_stage" | "refused";

export type PeerView = { 
/**
 * Its peer id.
 */
id: string, 
/**
 * Its display name.
 */
name: string, 
/**
 * Its link.
 */
state: PeerState, 
/**
 * Round-trip time of the last ping, in milliseconds.
 */
rtt_ms: number | null, 
/**
 * Its colour (cursor, avatar), the same on every peer: `hsl(H 70% 50%)`.
 */
colour: string, 
/**
 * Whether it is speaking now.
 */
speaking: boolean, 
/**
 * Its microphone: `null` when it publishes no audio, else whether it is muted.
 */
muted: boolean | null, 
/**
 * Whether it publishes video (its pictures come through the video channel).
 */
video: boolean, 
/**
 * Whether it shares a screen (its pictures come to the tile `ID/screen`).
 */
screen: boolean, 
/**
 * The link's path once connected: `host`, `srflx` or `relay`.
 */
path: string | null, 
/**
 * The safety code of our two keys (the same on both sides; compare it aloud), once
 * the peer has proven its key.
 */
safety_code: string | null, 
/**
 * Whether the user marked this peer verified (now or in an earlier call).
 */
verified: boolean, 
/**
 * What it does in the room.
 */
role: Role, 
/**
 * Whether its hand is raised (its shared state says `"hand": true`).
 */
hand: boolean, 
/**
 * How its link is doing, once connected (refreshed every second).
 */
quality: LinkQuality | null, };

export type QualityGrade = "good" | "fair" | "poor";

export type LinkQuality = { 
/**
 * The indicator: the worst of what follows.
 */
grade: QualityGrade, 
/**
 * What we may send it (our estimate of the path), kbit/s.
 */
estimate_kbps: number, 
/**
 * What we send it and receive from it, kbit/s.
 */
send_kbps: number, receive_kbps: number, 
/**
 * What our data channel sends it (the whiteboard, chat, files), kbit/s: it shares the
 * path with our media, which give it part of the estimate while it has something to send.
 */
data_kbps: number, 
/**
 * The share of our packets lost on the way to it, percent.
 */
loss_percent: number, 
/**
 * The size our camera goes to it at (the layer its path affords).
 */
sending: [number, number] | null, 
/**
 * Its camera as we receive it.
 */
video: ReceivedVideo | null, 
/**
 * The share of its audio made up by concealment over the last second, percent.
 */
concealed_percent: number, 
/**
 * The delay our jitter buffer holds for its audio, ms.
 */
audio_delay_ms: number, };

export type ReceivedVideo = { width: number, height: number, 
/**
 * Pictures over the last second.
 */
fps: number, 
/**
 * Pauses long enough to be seen, and their total, since the call began.
 */
freezes: number, freeze_total_ms: number, };

export type ChatLine = { 
/**
 * The sender's peer id.
 */
from: string, 
/**
 * The sender's display name.
 */
name: string, 
/**
 * The text; the view shows it as text, never as markup.
 */
text: string, 
/**
 * When it was sent (ours) or arrived (others'), in milliseconds since the Unix epoch.
 */
at_ms: number, 
/**
 * Whether we sent it.
 */
own: boolean, };

export type StrokeStart = { 
/**
 * Pen or eraser.
 */
tool: Tool, 
/**
 * `#rrggbb`.
 */
colour: string, 
/**
 * Width in thousandths of the board's width.
 */
width: number, 
/**
 * The first points.
 */
points: Array<Point>, };

export type StrokeStarted = { 
/**
 * Our number for it, for `board_points` and `board_end`.
 */
seq: number, 
/**
 * The change to show.
 */
change: BoardChange, };

export type UiEvent = { "type": "invited", 
/**
 * The room it names, with our remembered name.
 */
request: JoinRequest, } | { "type": "roster", 
/**
 * The participants.
 */
peers: Array<PeerView>, } | { "type": "chat", 
/**
 * The message.
 */
line: ChatLine, } | { "type": "cursor", 
/**
 * Whose.
 */
peer: string, 
/**
 * From the left.
 */
x: number, 
/**
 * From the top.
 */
y: number, } | { "type": "cursor_gone", 
/**
 * Whose.
 */
peer: string, } | { "type": "board", 
/**
 * The changes, in order.
 */
changes: Array<BoardChange>, } | { "type": "status", 
/**
 * Whether we are connected to the signaling server.
 */
signaling: boolean, 
/**
 * Names of peers whose link is being re-established.
 */
reconnecting: Array<string>, } | { "type": "ignored", 
/**
 * From whom.
 */
peer: string, 
/**
 * Which channel.
 */
channel: string, 
/**
 * Why.
 */
reason: string, } | { "type": "video_error", 
/**
 * A sentence for the user, naming the cause.
 */
message: string, } | { "type": "audio_error", 
/**
 * `microphone` or `speaker`.
 */
device: string, 
/**
 * A sentence for the user, naming the device.
 */
message: string, } | { "type": "network", 
/**
 * Where we sit.
 */
view: NetworkView, } | { "type": "tree", 
/**
 * Our parent (none for the root, or before we are placed).
 */
parent: string | null, 
/**
 * Our children.
 */
children: Array<string>, 
/**
 * Our depth (the root's is 0), once known.
 */
depth: number | null, 
/**
 * Whether we are the root.
 */
is_root: boolean, 
/**
 * The root (the presenter), once known.
 */
root: string | null, 
/**
 * How many are in the tree below us, us included (at the root: everyone).
 */
subtree: number, } | { "type": "stage", 
/**
 * The peer whose voice reaches every viewer, if any.
 */
speaker: StagePeer | null, 
/**
 * At the root: the viewers whose hand is up (the presenter may invite one to speak).
 */
hands: Array<StagePeer>, } | { "type": "room_presenter", 
/**
 * Its name, when it is another.
 */
name: string | null, 
/**
 * Whether it is us.
 */
you: boolean, } | { "type": "relay", 
/**
 * The peers we link to directly.
 */
neighbours: Array<string>, } | { "type": "not_verified", 
/**
 * The presenter's name.
 */
name: string, 
/**
 * What it said.
 */
reason: string, } | { "type": "closed", 
/**
 * Why, if not because we left.
 */
reason: string | null, };

export type ErrorKind = "bad_input" | "not_in_room" | "already_in_room" | "unreachable" | "refused" | "host_failed" | "send_failed" | "device" | "update";

export type CommandError = { 
/**
 * What kind of failure.
 */
kind: ErrorKind, 
/**
 * A sentence for the user.
 */
message: string, };

export type AudioDevices = { 
/**
 * Microphones.
 */
microphones: Array<AudioDevice>, 
/**
 * Speakers.
 */
speakers: Array<AudioDevice>, 
/**
 * The microphone chosen (`null`: the default).
 */
microphone: string | null, 
/**
 * The speaker chosen (`null`: the default).
 */
speaker: string | null, };

export type AudioDevice = { 
/**
 * Its id, to choose it by.
 */
id: string, 
/**
 * Its name.
 */
name: string, 
/**
 * Whether it is the system default.
 */
default: boolean, };

export type VideoDevices = { 
/**
 * Cameras, then `testsrc` (a moving test pattern, to try video without a camera).
 */
cameras: Array<VideoChoice>, 
/**
 * Monitors, then windows; empty without a display.
 */
screens: Array<VideoChoice>, };

export type VideoChoice = { 
/**
 * What to pass to `set_camera` or `share_screen`.
 */
id: string, 
/**
 * What to show.
 */
name: string, };

export type VideoState = { 
/**
 * Our camera is on.
 */
camera: boolean, 
/**
 * We share a screen.
 */
screen: boolean, };

export type SocketInfo = { 
/**
 * `ws://127.0.0.1:PORT/pictures`.
 */
url: string, 
/**
 * This run's token, sent as `?token=...`.
 */
token: string, };

export type MicState = "off" | "on" | "muted";

export type TileSize = { 
/**
 * The peer whose tile it is.
 */
peer: string, width: number, height: number, };

export type Point = [number, number];

export type Tool = "pen" | "eraser";

export type StrokeId = { 
/**
 * The peer that drew it.
 */
author: string, 
/**
 * Its number among the author's strokes.
 */
seq: number, };

export type ClearMark = { 
/**
 * The clearing peer's clock when it cleared.
 */
clock: number, 
/**
 * The peer that cleared.
 */
author: string, };

export type Stroke = { 
/**
 * Its Lamport clock; strokes are drawn in `(clock, author, seq)` order.
 */
clock: number, 
/**
 * Pen or eraser.
 */
tool: Tool, 
/**
 * Ink colour (ignored by the eraser).
 */
colour: string, 
/**
 * Width in thousandths of the board's width.
 */
width: number, 
/**
 * The points so far.
 */
points: Array<Point>, 
/**
 * Whether the author lifted the pen.
 */
done: boolean, 
/**
 * The peer that drew it.
 */
author: string, 
/**
 * Its number among the author's strokes.
 */
seq: number, };

export type BoardChange = { "kind": "stroke", 
/**
 * The whole stroke.
 */
stroke: Stroke, } | { "kind": "points", 
/**
 * Which stroke.
 */
id: StrokeId, 
/**
 * Index of the first new point.
 */
from: number, 
/**
 * The new points.
 */
points: Array<Point>, 
/**
 * Whether the stroke is now finished.
 */
done: boolean, } | { "kind": "removed", 
/**
 * Which.
 */
ids: Array<StrokeId>, };

/** The commands the view may invoke. */
export type Command =
  | "prefs"
  | "launch_request"
  | "read_invite"
  | "host"
  | "join"
  | "leave"
  | "send_chat"
  | "raise_hand"
  | "set_stage"
  | "send_cursor"
  | "board_begin"
  | "board_points"
  | "board_end"
  | "board_undo"
  | "board_clear"
  | "board_snapshot"
  | "set_mic"
  | "audio_devices"
  | "set_devices"
  | "mic_level"
  | "video_sizes"
  | "video_subscribe"
  | "video_devices"
  | "set_camera"
  | "share_screen"
  | "set_verified"
  | "picture_socket"
  | "transport_probe"
  | "about"
  | "check_update"
  | "install_update"
  | "device_check_done"
  | "device_check"
  | "device_check_level"
  | "device_check_stop"
  | "play_test_sound";

/** The event carrying `UiEvent`s. */
export const EVENT = "plenum";
