// The call view's engine in a browser: what the app's Rust session does behind IPC, done
// over the guest's own room. It keeps the roster as the view shows it, speaks the chat,
// cursor and whiteboard channels (docs/protocol.md, section 3), publishes the browser's
// microphone, camera and screen, plays and measures the peers' sound, and turns all of it
// into the same events the app sends its view.
import type {
  AudioDevices,
  BoardChange,
  ChatLine,
  CommandError,
  Joined,
  MicState,
  PeerView,
  Point,
  StrokeStart,
  StrokeStarted,
  UiEvent,
  VideoDevices,
  VideoState,
} from "../bindings";
import type { CallApi } from "../ipc";
import { screenTile } from "../tiles";
import { AudioOut } from "./audio-out";
import { BOARD_CHANNEL, BoardState } from "./board-state";
import { CHAT_CHANNEL, chatText, MAX_CHAT_BYTES } from "./chat";
import { cursorEvent, cursorMessage, CURSOR_CHANNEL } from "./cursor";
import type { Lane } from "./media";
import type { Room } from "./room";
import type { Role } from "./signaling";
import type { StreamInfo } from "./streams";

/** How often each linked peer is pinged for the round trip the tiles show. */
const PING_MS = 2_000;
const VERIFIED_KEY = "plenum.verified";

/** A stable colour for a peer, the same the app gives it: a hue from the FNV-1a hash of its id. */
export function colourOf(peer: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(peer)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return `hsl(${hash % 360}, 70%, 45%)`;
}

/** A command the view sent that cannot be done, as the app reports one. */
function refused(message: string, kind: CommandError["kind"] = "device"): CommandError {
  return { kind, message };
}

interface Member {
  view: PeerView;
  /** Its announced streams, by id. */
  streams: Map<string, StreamInfo>;
  /** Its tracks, by lane. */
  tracks: Map<Lane, MediaStreamTrack>;
  /** Whether a link to it was ever up (a later drop is a reconnection). */
  linked: boolean;
}

export class GuestCall implements CallApi {
  readonly joined: Joined;
  private readonly members = new Map<string, Member>();
  private readonly board: BoardState;
  private readonly audio: AudioOut;
  private readonly listeners = new Set<(event: UiEvent) => void>();
  private show: ((tile: string, stream: MediaStream | null) => void) | null = null;
  private readonly off: Array<() => void> = [];
  private readonly pinger: ReturnType<typeof setInterval>;
  private signaling = true;
  private mic: MicState = "off";
  private microphone: string | null = null;
  private speaker: string | null = null;

  constructor(
    private readonly room: Room,
    me: { id: string; name: string },
    roomName: string,
    server: string,
    webInvite: string,
    role: Role = "both",
  ) {
    const view: PeerView = {
      id: me.id,
      name: me.name,
      state: "me",
      rtt_ms: null,
      colour: colourOf(me.id),
      speaking: false,
      muted: null,
      video: false,
      screen: false,
      path: null,
      safety_code: null,
      verified: false,
      role,
      hand: false,
      quality: null,
    };
    const invite = `plenum://join?${new URLSearchParams({ server, room: roomName })}`;
    this.joined = { me: view, room: roomName, server, invite, web_invite: webInvite, hosting: false, role };
    this.board = new BoardState(me.id);
    this.audio = new AudioOut((peer, speaking) => this.update(peer, (v) => (v.speaking = speaking)));
    this.listen();
    for (const peer of room.peers()) {
      this.admit(peer.peer, peer.name, peer.role);
      if (peer.state === "connected") this.update(peer.peer, (v) => ((v.state = "connected"), (v.safety_code = peer.safetyCode)));
    }
    this.pinger = setInterval(() => this.pingAll(), PING_MS);
  }

  /** Hears every event the view should handle. */
  onEvent(listener: (event: UiEvent) => void): () => void {
    this.listeners.add(listener);
    this.roster();
    return () => this.listeners.delete(listener);
  }

  media(show: (tile: string, stream: MediaStream | null) => void): void {
    this.show = show;
    for (const [peer, member] of this.members) for (const [lane, track] of member.tracks) this.showTrack(peer, lane, track);
  }

  // Chat, cursors, whiteboard.

  async sendChat(text: string): Promise<ChatLine> {
    const trimmed = text.trim();
    const bytes = new TextEncoder().encode(trimmed).length;
    if (bytes === 0) throw refused("An empty message is not sent.", "bad_input");
    if (bytes > MAX_CHAT_BYTES) throw refused(`A message holds at most ${MAX_CHAT_BYTES} bytes.`, "bad_input");
    this.room.send(CHAT_CHANNEL, { text: trimmed });
    return { from: this.joined.me.id, name: this.joined.me.name, text: trimmed, at_ms: Date.now(), own: true };
  }

  async sendCursor(at: [number, number] | null): Promise<null> {
    this.room.send(CURSOR_CHANNEL, cursorMessage(at));
    return null;
  }

  async boardBegin(start: StrokeStart): Promise<StrokeStarted> {
    const { seq, msg, change } = this.board.begin(start.tool, start.colour, start.width, start.points);
    this.room.send(BOARD_CHANNEL, msg);
    return { seq, change };
  }

  async boardPoints(seq: number, points: Point[]): Promise<BoardChange> {
    const { msg, change } = this.board.extend(seq, points);
    this.room.send(BOARD_CHANNEL, msg);
    return change;
  }

  async boardEnd(seq: number): Promise<BoardChange> {
    const { msg, change } = this.board.end(seq);
    this.room.send(BOARD_CHANNEL, msg);
    return change;
  }

  async boardUndo(): Promise<BoardChange | null> {
    const undone = this.board.undo();
    if (!undone) return null;
    this.room.send(BOARD_CHANNEL, undone.msg);
    return undone.change;
  }

  async boardClear(): Promise<BoardChange> {
    const { msg, change } = this.board.clear();
    this.room.send(BOARD_CHANNEL, msg);
    return change;
  }

  // Presence.

  async raiseHand(raised: boolean): Promise<boolean> {
    this.room.setState({ hand: raised });
    this.update(this.joined.me.id, (v) => (v.hand = raised));
    return raised;
  }

  async setVerified(peer: string, verified: boolean): Promise<null> {
    const ids = new Set(this.verifiedIds());
    if (verified) ids.add(peer);
    else ids.delete(peer);
    try {
      localStorage.setItem(VERIFIED_KEY, JSON.stringify([...ids]));
    } catch {
      // Storage refused (a private window): verified for this page only.
    }
    this.update(peer, (v) => (v.verified = verified));
    return null;
  }

  // Media.

  async setMic(on: boolean): Promise<MicState> {
    if (this.room.localTrack("audio")) {
      this.room.mute("audio", !on);
      this.mic = on ? "on" : "muted";
    } else if (on) {
      try {
        const track = await this.room.publishMicrophone(this.microphone ?? undefined);
        this.audio.measure(track);
        this.mic = "on";
      } catch (e) {
        throw refused(mediaError("microphone", e));
      }
    }
    this.update(this.joined.me.id, (v) => (v.muted = this.mic === "off" ? null : this.mic === "muted"));
    return this.mic;
  }

  async micLevel(): Promise<number | null> {
    return this.audio.micLevel();
  }

  async audioDevices(): Promise<AudioDevices> {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const list = (kind: MediaDeviceKind) =>
      devices
        .filter((d) => d.kind === kind && d.deviceId && d.deviceId !== "default")
        .map((d, i) => ({ id: d.deviceId, name: d.label || `${kind === "audioinput" ? "Microphone" : "Speaker"} ${i + 1}`, default: false }));
    return { microphones: list("audioinput"), speakers: list("audiooutput"), microphone: this.microphone, speaker: this.speaker };
  }

  async setDevices(microphone: string | null, speaker: string | null): Promise<MicState | null> {
    if (speaker !== this.speaker) {
      try {
        await this.audio.setSink(speaker);
        this.speaker = speaker;
      } catch (e) {
        throw refused(mediaError("speaker", e));
      }
    }
    if (microphone !== this.microphone) {
      this.microphone = microphone;
      try {
        await this.room.switchDevice("audio", microphone ?? undefined);
      } catch (e) {
        throw refused(mediaError("microphone", e));
      }
      this.audio.measure(this.room.localTrack("audio"));
    }
    return this.mic;
  }

  async videoDevices(): Promise<VideoDevices> {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cameras = devices
      .filter((d) => d.kind === "videoinput" && d.deviceId)
      .map((d, i) => ({ id: d.deviceId, name: d.label || `Camera ${i + 1}` }));
    // The browser asks which screen, window or tab itself.
    const screens = "getDisplayMedia" in navigator.mediaDevices ? [{ id: "browser", name: "A screen, window or tab (your browser asks)" }] : [];
    return { cameras, screens };
  }

  async setCamera(camera: string | null): Promise<VideoState> {
    const me = this.joined.me.id;
    if (camera === null) {
      await this.room.unpublish("camera");
    } else {
      const deviceId = camera === "default" ? undefined : camera;
      try {
        if (this.room.localTrack("camera")) await this.room.switchDevice("camera", deviceId);
        else await this.room.publishCamera(deviceId);
      } catch (e) {
        throw refused(mediaError("camera", e));
      }
    }
    this.showOwn(me, this.room.localTrack("camera"));
    return this.videoState();
  }

  async shareScreen(target: string | null): Promise<VideoState> {
    if (target === null) await this.room.unpublish("screen");
    else {
      try {
        await this.room.publishScreen();
      } catch (e) {
        throw refused(mediaError("screen", e));
      }
    }
    this.showOwn(screenTile(this.joined.me.id), this.room.localTrack("screen"));
    return this.videoState();
  }

  /** The browser decodes at the size it shows: nothing to ask for. */
  async videoSizes(): Promise<null> {
    return null;
  }

  async leave(): Promise<null> {
    this.close();
    await this.room.leave();
    return null;
  }

  // The room's events.

  private listen(): void {
    const room = this.room;
    this.off.push(
      room.on("peer-joined", ({ peer, name, role }) => this.admit(peer, name, role)),
      room.on("peer-left", ({ peer }) => this.dismiss(peer)),
      room.on("linked", ({ peer, safetyCode }) => {
        const member = this.members.get(peer);
        if (!member) return;
        member.linked = true;
        this.update(peer, (v) => {
          v.state = "connected";
          v.safety_code = safetyCode;
          v.verified = safetyCode !== null && this.verifiedIds().includes(peer);
        });
        for (const msg of this.board.syncMessages()) room.send(BOARD_CHANNEL, msg, peer);
        this.status();
      }),
      room.on("unlinked", ({ peer }) => {
        this.update(peer, (v) => {
          v.state = "reconnecting";
          v.rtt_ms = null;
          v.speaking = false;
        });
        this.status();
      }),
      room.on("message", ({ from, channel, data }) => this.message(from, channel, data)),
      room.on("stream-added", ({ peer, ...info }) => this.streams(peer, (s) => s.set(info.stream, info))),
      room.on("stream-removed", ({ peer, stream }) => this.streams(peer, (s) => s.delete(stream))),
      room.on("stream-muted", ({ peer, stream, muted }) =>
        this.streams(peer, (s) => {
          const info = s.get(stream);
          if (info) info.muted = muted;
        }),
      ),
      room.on("track", ({ peer, lane, track }) => {
        const member = this.members.get(peer);
        if (!member) return;
        member.tracks.set(lane, track);
        this.showTrack(peer, lane, track);
      }),
      room.on("state", ({ peer, state }) => {
        const hand = typeof state === "object" && state !== null && (state as { hand?: unknown }).hand === true;
        this.update(peer, (v) => (v.hand = hand));
      }),
      room.on("signaling-back", () => {
        this.signaling = true;
        this.status();
      }),
      room.on("local-ended", ({ lane }) => {
        if (lane === "screen") this.showOwn(screenTile(this.joined.me.id), null);
        if (lane === "camera") this.showOwn(this.joined.me.id, null);
        if (lane === "audio") {
          this.mic = "off";
          this.audio.measure(null);
          this.emit({ type: "audio_error", device: "microphone", message: "The microphone stopped." });
          this.update(this.joined.me.id, (v) => (v.muted = null));
        } else {
          this.emit({ type: "video_error", message: lane === "screen" ? "Screen sharing ended." : "The camera stopped." });
        }
      }),
      room.on("error", ({ code, message, peer, fatal }) => {
        if (fatal) {
          this.close();
          this.emit({ type: "closed", reason: message });
        } else if (code === "signaling_lost") {
          this.signaling = false;
          this.status();
        } else if (peer && code === "malformed_message") {
          this.emit({ type: "ignored", peer, channel: "", reason: message });
        } else if (peer && code === "not_verified") {
          const name = this.members.get(peer)?.view.name ?? peer.slice(0, 8);
          this.emit({ type: "not_verified", name, reason: message });
        } else {
          console.warn(`${code}: ${message}`);
        }
      }),
    );
  }

  private message(from: string, channel: string, data: unknown): void {
    const member = this.members.get(from);
    if (!member) return;
    const ignored = (reason: string) => this.emit({ type: "ignored", peer: from, channel, reason });
    switch (channel) {
      case CHAT_CHANNEL: {
        const text = chatText(data);
        if (text === null) return ignored("not a chat message");
        return this.emit({ type: "chat", line: { from, name: member.view.name, text, at_ms: Date.now(), own: false } });
      }
      case CURSOR_CHANNEL: {
        const event = cursorEvent(from, data);
        return event ? this.emit(event) : ignored("not a cursor message");
      }
      case BOARD_CHANNEL: {
        try {
          const changes = this.board.handle(from, data);
          if (changes.length > 0) this.emit({ type: "board", changes });
        } catch (e) {
          ignored(e instanceof Error ? e.message : String(e));
        }
        return;
      }
    }
  }

  private admit(peer: string, name: string, role: Role): void {
    if (this.members.has(peer) || peer === this.joined.me.id) return;
    // A viewer is not linked to another viewer: both are in the room, watching.
    const state = this.joined.role === "viewer" && role === "viewer" ? "in_room" : "connecting";
    this.members.set(peer, {
      view: { ...this.joined.me, id: peer, name, state, role, colour: colourOf(peer), muted: null, hand: false, verified: false },
      streams: new Map(),
      tracks: new Map(),
      linked: false,
    });
    this.roster();
  }

  private dismiss(peer: string): void {
    const member = this.members.get(peer);
    if (!member) return;
    this.members.delete(peer);
    this.audio.stop(peer);
    this.show?.(peer, null);
    this.show?.(screenTile(peer), null);
    this.roster();
    this.status();
  }

  /** Changes a peer's announced streams, then what the roster says of them. */
  private streams(peer: string, change: (streams: Map<string, StreamInfo>) => void): void {
    const member = this.members.get(peer);
    if (!member) return;
    change(member.streams);
    const infos = [...member.streams.values()];
    const audio = infos.find((s) => s.kind === "audio");
    const screen = infos.some((s) => s.kind === "video" && isScreen(s));
    const camera = infos.some((s) => s.kind === "video" && !isScreen(s) && !s.muted);
    this.update(peer, (v) => {
      v.muted = audio ? audio.muted : null;
      v.video = camera;
      v.screen = screen;
    });
  }

  private showTrack(peer: string, lane: Lane, track: MediaStreamTrack): void {
    if (lane === "audio") return this.audio.play(peer, track);
    this.show?.(lane === "screen" ? screenTile(peer) : peer, new MediaStream([track]));
  }

  /** Our own camera or screen on its tile. */
  private showOwn(tile: string, track: MediaStreamTrack | null): void {
    const me = this.joined.me.id;
    this.update(me, (v) => {
      v.video = this.room.localTrack("camera") !== null;
      v.screen = this.room.localTrack("screen") !== null;
    });
    this.show?.(tile, track ? new MediaStream([track]) : null);
  }

  private videoState(): VideoState {
    return { camera: this.room.localTrack("camera") !== null, screen: this.room.localTrack("screen") !== null };
  }

  private pingAll(): void {
    for (const [peer, member] of this.members) {
      if (member.view.state !== "connected") continue;
      this.room.ping(peer).then(
        (rtt) => this.update(peer, (v) => (v.rtt_ms = rtt)),
        () => {},
      );
    }
  }

  private verifiedIds(): string[] {
    try {
      const ids: unknown = JSON.parse(localStorage.getItem(VERIFIED_KEY) ?? "[]");
      return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
    } catch {
      return [];
    }
  }

  /** Changes what the roster shows of `peer` (or of us), and shows it. */
  private update(peer: string, change: (view: PeerView) => void): void {
    const view = peer === this.joined.me.id ? this.joined.me : this.members.get(peer)?.view;
    if (!view) return;
    change(view);
    this.roster();
  }

  private roster(): void {
    this.emit({ type: "roster", peers: [{ ...this.joined.me }, ...[...this.members.values()].map((m) => ({ ...m.view }))] });
  }

  private status(): void {
    const reconnecting = [...this.members.values()].filter((m) => m.view.state === "reconnecting").map((m) => m.view.name);
    this.emit({ type: "status", signaling: this.signaling, reconnecting });
  }

  private emit(event: UiEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private close(): void {
    clearInterval(this.pinger);
    for (const off of this.off) off();
    this.audio.close();
  }
}

function isScreen(info: StreamInfo): boolean {
  const metadata = info.metadata as { type?: unknown } | null;
  return typeof metadata === "object" && metadata !== null && metadata.type === "screen";
}

/** A sentence for a device the browser would not give. */
function mediaError(device: string, e: unknown): string {
  const name = e instanceof DOMException ? e.name : "";
  if (name === "NotAllowedError") return `The browser was not allowed to use the ${device}. Allow it in the address bar and try again.`;
  if (name === "NotFoundError" || name === "OverconstrainedError") return `No ${device} was found.`;
  if (name === "NotReadableError") return `The ${device} is in use by another program or could not be opened.`;
  return `The ${device} could not be used: ${e instanceof Error ? e.message : String(e)}`;
}
