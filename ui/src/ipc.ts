// Typed calls into the Rust side. Every command name is checked against `Command` from the
// generated bindings, and every argument and result against the generated types.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AboutInfo,
  AudioDevices,
  BoardChange,
  ChatLine,
  Command,
  CommandError,
  DeviceReport,
  HostRequest,
  InviteView,
  JoinRequest,
  Joined,
  MicState,
  Point,
  Prefs,
  SocketInfo,
  Stroke,
  StrokeStart,
  StrokeStarted,
  TileSize,
  UiEvent,
  UpdateView,
  VideoDevices,
  VideoState,
} from "./bindings";
import { EVENT } from "./bindings";

function call<T>(cmd: Command, args?: Record<string, unknown>): Promise<T> {
  return invoke<T>(cmd, args);
}

export const api = {
  prefs: () => call<Prefs>("prefs"),
  launchRequest: () => call<JoinRequest | null>("launch_request"),
  readInvite: (link: string) => call<InviteView>("read_invite", { link }),
  host: (req: HostRequest) => call<Joined>("host", { req }),
  join: (req: JoinRequest) => call<Joined>("join", { req }),
  leave: () => call<null>("leave"),
  sendChat: (text: string) => call<ChatLine>("send_chat", { text }),
  /** Raises (`true`) or lowers our hand; resolves with whether it is raised. */
  raiseHand: (raised: boolean) => call<boolean>("raise_hand", { raised }),
  /** At a tree room's root (the presenter): puts a viewer on stage (`null`: nobody). */
  setStage: (peer: string | null) => call<null>("set_stage", { peer }),
  sendCursor: (at: [number, number] | null) => call<null>("send_cursor", { at }),
  boardBegin: (start: StrokeStart) => call<StrokeStarted>("board_begin", { start }),
  boardPoints: (seq: number, points: Point[]) => call<BoardChange>("board_points", { seq, points }),
  boardEnd: (seq: number) => call<BoardChange>("board_end", { seq }),
  boardUndo: () => call<BoardChange | null>("board_undo"),
  boardClear: () => call<BoardChange>("board_clear"),
  boardSnapshot: () => call<Stroke[]>("board_snapshot"),
  setMic: (on: boolean) => call<MicState>("set_mic", { on }),
  audioDevices: () => call<AudioDevices>("audio_devices"),
  micLevel: () => call<number | null>("mic_level"),
  setDevices: (microphone: string | null, speaker: string | null) =>
    call<MicState | null>("set_devices", { microphone, speaker }),
  videoSizes: (sizes: TileSize[]) => call<null>("video_sizes", { sizes }),
  videoDevices: () => call<VideoDevices>("video_devices"),
  pictureSocket: () => call<SocketInfo>("picture_socket"),
  /** Has the app send `count` packets of `bytes` over `transport`; resolves with how many it sent. */
  transportProbe: (transport: "channel" | "socket", count: number, bytes: number, onData: (buffer: ArrayBuffer) => void) => {
    const channel = new Channel<ArrayBuffer>();
    channel.onmessage = onData;
    return call<number>("transport_probe", { transport, count, bytes, onData: channel });
  },
  /** A camera id, `default` or `testsrc` turns the camera on; `null` turns it off. */
  setCamera: (camera: string | null) => call<VideoState>("set_camera", { camera }),
  /** A monitor or `window:ID` starts sharing; `null` stops. */
  shareScreen: (target: string | null) => call<VideoState>("share_screen", { target }),
  setVerified: (peer: string, verified: boolean) => call<null>("set_verified", { peer, verified }),
  about: () => call<AboutInfo>("about"),
  checkUpdate: () => call<UpdateView>("check_update"),
  /** Installs the offered update and restarts into it: resolves only if it fails. */
  installUpdate: () => call<null>("install_update"),
  /** Ends the device check; the first run also gives our name. */
  deviceCheckDone: (name: string | null) => call<null>("device_check_done", { name }),
  /** Opens the microphone and camera (`default`, an id or `testsrc`; `null`: none) for the device check. */
  deviceCheck: (microphone: string | null, camera: string | null) => call<DeviceReport>("device_check", { microphone, camera }),
  deviceCheckLevel: () => call<number | null>("device_check_level"),
  deviceCheckStop: () => call<null>("device_check_stop"),
  playTestSound: (speaker: string | null) => call<null>("play_test_sound", { speaker }),
  /** Pictures arrive as raw bytes on a channel, never as JSON events. */
  videoSubscribe: (onPicture: (buffer: ArrayBuffer) => void) => {
    const channel = new Channel<ArrayBuffer>();
    channel.onmessage = onPicture;
    return call<null>("video_subscribe", { onFrame: channel });
  },
};

export type Api = typeof api;

/** What the call view needs from the engine under it: the app's (over IPC) or a browser
 * guest's own (over the browser's WebRTC). */
export type CallApi = Pick<
  Api,
  | "sendChat"
  | "raiseHand"
  | "sendCursor"
  | "boardBegin"
  | "boardPoints"
  | "boardEnd"
  | "boardUndo"
  | "boardClear"
  | "setMic"
  | "audioDevices"
  | "micLevel"
  | "setDevices"
  | "videoSizes"
  | "videoDevices"
  | "setCamera"
  | "shareScreen"
  | "setVerified"
  | "leave"
> & {
  /** Tree rooms' stage (the app's engine has them; a browser guest joins meshes only). */
  setStage?: Api["setStage"];
  /** Pictures as raw bytes, drawn on canvases (the app decodes them). */
  videoSubscribe?: Api["videoSubscribe"];
  pictureSocket?: Api["pictureSocket"];
  /** Media as the browser's own streams (a browser decodes them): `show` puts a stream on a
   * tile (a peer id, or `ID/screen`), `null` takes it off. */
  media?: (show: (tile: string, stream: MediaStream | null) => void) => void;
};

export function onEvent(handler: (event: UiEvent) => void): Promise<UnlistenFn> {
  return listen<UiEvent>(EVENT, (e) => handler(e.payload));
}

/** The sentence to show for a failed command. */
export function errorText(error: unknown): string {
  if (error && typeof error === "object" && "message" in error) {
    return String((error as CommandError).message);
  }
  return String(error);
}
