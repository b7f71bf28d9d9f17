// A room as a browser guest sees it: join through the signaling server, link to every peer
// of a mesh room, exchange channel messages, publish a microphone and a camera, leave.
//
//   const room = new Room();
//   room.on("message", ({ from, channel, data }) => ...);
//   await room.join({ server: "ws://host:port/", room: "standup", name: "Ada" });
//   room.send("chat", { text: "hello" });
import { Delivered } from "./broadcast";
import { controlEnvelope, dataEnvelope, encodeEnvelope, type Envelope, Kind } from "./envelope";
import { Emitter } from "./emitter";
import type { RoomEvents } from "./events";
import { type Identity, loadIdentity } from "./identity";
import { captureTrack, type Lane, type LocalTracks } from "./media";
import { Peer, type PeerContext } from "./peer";
import { type CellPlan, type Grants, type IceServer, type JoinRequest, type Role, type RosterEntry, type ServerFrame, Signaling, SignalingError, type Welcome } from "./signaling";
import type { Announcement, StreamInfo } from "./streams";

export interface JoinOptions extends JoinRequest {
  /** The signaling server's WebSocket URL. */
  server: string;
  /** Our identity; the one kept in this browser if absent. */
  identity?: Identity;
  /** Presented with every offer and answer (an access code: `{"code": C}`); never sent to
   * the server. */
  credentials?: unknown;
}

/** A peer as the page lists it. */
export interface PeerView {
  peer: string;
  name: string;
  state: "connecting" | "connected";
  safetyCode: string | null;
  role: Role;
}

/** How often every open link hears from us. */
const HEARTBEAT_MS = 1_000;

export class Room extends Emitter<RoomEvents> {
  private signaling: Signaling | null = null;
  private identity: Identity | null = null;
  private readonly members = new Map<string, Peer>();
  private credentials: unknown = undefined;
  private iceServers: IceServer[] = [];
  private readonly tracks: LocalTracks = {};
  private readonly published = new Map<Lane, StreamInfo>();
  private streamCount = 0;
  /** How we joined, to join again when the server connection drops. */
  private request: ({ server: string } & JoinRequest) | null = null;
  private resume: string | null = null;
  private reconnecting = false;
  private leaving = false;
  /** Our shared state; `undefined` until set. */
  private state: unknown = undefined;
  /** Our descriptions' counter: from the clock in microseconds, so it grows across reloads. */
  private seq = Date.now() * 1000;
  private messageId = 0n;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  /** When our heartbeat last ran, and since when it has run on time: a page that was
   * frozen (a stopped or suspended tab) does not take its own stall for its peers' silence. */
  private lastTick = 0;
  private awakeSince = 0;

  /** The epoch of the last cells room plan we followed. */
  private planEpoch = 0;
  /** The cells room's broadcasts delivered. */
  private readonly delivered = new Delivered();

  /** How we take part (the join's `role`). */
  role: Role = "both";
  /** Viewers a viewer does not link to (viewers watch the publishers only), by id. */
  private readonly watchers = new Map<string, string>();

  /** What the server lets us do in the room. */
  grants: Grants = { publish: true, subscribe: true, admin: false };

  /** Our peer id, once joined. */
  get me(): string | null {
    return this.identity?.id ?? null;
  }

  /** Joins; resolves with our peer id once the server let us in. */
  async join(options: JoinOptions): Promise<string> {
    const { server, identity, credentials, ...request } = options;
    this.identity = identity ?? (await loadIdentity());
    this.credentials = credentials;
    const { signaling, welcome } = await this.connect(server, request);
    if (welcome.topology && !["mesh", "cells"].includes(welcome.topology.kind)) {
      signaling.leave();
      throw new SignalingError("unsupported_topology", `a ${welcome.topology.kind} room needs the Plenum app`, true);
    }
    this.request = { server, ...request };
    this.role = request.role ?? "both";
    this.welcomed(signaling, welcome);
    this.heartbeat = setInterval(() => this.tick(), HEARTBEAT_MS);
    this.emit("joined", { peer: welcome.peer, room: welcome.room });
    for (const entry of welcome.peers) this.admit(entry, true);
    return welcome.peer;
  }

  private connect(server: string, request: JoinRequest) {
    return Signaling.connect(server, this.identity as Identity, request, {
      frame: (frame) => this.onFrame(frame),
      lost: (e) => {
        this.signaling = null;
        this.emit("error", { code: e.code, message: e.message, fatal: e.fatal });
        this.reconnect();
      },
    });
  }

  private welcomed(signaling: Signaling, welcome: Welcome): void {
    this.signaling = signaling;
    this.iceServers = welcome.ice_servers ?? [];
    if (welcome.grants) this.grants = welcome.grants;
    this.resume = welcome.resume ?? null;
  }

  /** The server connection dropped: joins again with our last `resume` (the others see
   * nothing if the server still holds our session), waiting 0.25 s doubling to 5 s, each a
   * random 50-100 % of that, until it is back or we leave. Our links carry on meanwhile. */
  private reconnect(): void {
    const request = this.request;
    if (!request || this.reconnecting || this.leaving) return;
    this.reconnecting = true;
    let wait = 250;
    const attempt = async () => {
      if (this.leaving) return;
      const { server, ...join } = request;
      try {
        const { signaling, welcome } = await this.connect(server, { ...join, ...(this.resume ? { resume: this.resume } : {}) });
        if (this.leaving) return signaling.leave();
        this.reconnecting = false;
        this.welcomed(signaling, welcome);
        this.emit("signaling-back", {});
        // A server that restarted knows no session: its welcome lists who is in the room.
        for (const entry of welcome.peers) this.admit(entry, true);
      } catch (e) {
        const fatal = e instanceof SignalingError && e.fatal && e.code !== "join_failed";
        if (fatal) {
          this.reconnecting = false;
          return this.emit("error", { code: (e as SignalingError).code, message: (e as SignalingError).message, fatal: true });
        }
        wait = Math.min(wait * 2, 5_000);
        setTimeout(attempt, wait * (0.5 + Math.random() / 2));
      }
    };
    setTimeout(attempt, wait * (0.5 + Math.random() / 2));
  }

  /** The peers of the room and our links to them. */
  peers(): PeerView[] {
    return [...this.members.values()].map((p) => ({
      peer: p.id,
      name: p.name,
      state: p.connected ? "connected" : "connecting",
      safetyCode: p.safetyCode,
      role: p.role,
    }));
  }

  /** Sends `data` as JSON text on `channel`, to `to` or to every linked peer; how many it reached. */
  send(channel: string, data: unknown, to?: string): number {
    const bytes = encodeEnvelope(dataEnvelope(channel, this.nextId(), new TextEncoder().encode(JSON.stringify(data))));
    const targets = to === undefined ? [...this.members.values()] : [this.member(to)];
    return targets.filter((peer) => peer.send(bytes)).length;
  }

  /** The round trip to `peer` over our link, in milliseconds. */
  ping(peer: string): Promise<number> {
    return this.member(peer).ping();
  }

  /** Sends our microphone to every peer; the track. */
  publishMicrophone(deviceId?: string): Promise<MediaStreamTrack> {
    return this.publish("audio", { kind: "audio", metadata: {} }, deviceId);
  }

  /** Sends our camera to every peer; the track. */
  publishCamera(deviceId?: string): Promise<MediaStreamTrack> {
    return this.publish("camera", { kind: "video", metadata: { type: "camera" } }, deviceId);
  }

  /** Sends a screen, window or tab the user picks to every peer; the track. Sharing ends
   * (and `local-ended` says so) when the user stops it in the browser's own controls. */
  publishScreen(): Promise<MediaStreamTrack> {
    return this.publish("screen", { kind: "video", metadata: { type: "screen" } });
  }

  /** Our track on `lane`, if we publish one. */
  localTrack(lane: Lane): MediaStreamTrack | null {
    return this.tracks[lane] ?? null;
  }

  /** Stops publishing `lane`: the track ends and every peer hears the stream is gone. */
  async unpublish(lane: Lane): Promise<void> {
    const track = this.tracks[lane];
    const info = this.published.get(lane);
    if (!track || !info) return;
    delete this.tracks[lane];
    this.published.delete(lane);
    track.stop();
    const removal = encodeEnvelope(this.streamEnvelope({ op: "remove", stream: info.stream }));
    for (const peer of this.members.values()) peer.send(removal);
    await Promise.all([...this.members.values()].map((peer) => peer.setTrack(lane, null)));
  }

  /** Mutes or unmutes what we publish on `lane` (a muted track sends silence or black),
   * and tells every peer. */
  mute(lane: Lane, muted: boolean): void {
    const track = this.tracks[lane];
    const info = this.published.get(lane);
    if (!track || !info || info.muted === muted) return;
    track.enabled = !muted;
    info.muted = muted;
    const note = encodeEnvelope(this.streamEnvelope({ op: "muted", stream: info.stream, muted }));
    for (const peer of this.members.values()) peer.send(note);
  }

  /** Moves what we publish on `lane` to another device, with no new stream. */
  async switchDevice(lane: "audio" | "camera", deviceId?: string): Promise<void> {
    const old = this.tracks[lane];
    const info = this.published.get(lane);
    if (!old || !info) return;
    const track = await captureTrack(lane, deviceId);
    track.enabled = !info.muted;
    this.tracks[lane] = track;
    this.watchEnd(lane, track);
    await Promise.all([...this.members.values()].map((peer) => peer.setTrack(lane, track)));
    old.stop();
  }

  /** Our shared state (a JSON value every peer sees, such as a raised hand): sent now and to
   * every link that opens later. */
  setState(state: unknown): void {
    this.state = state;
    const bytes = encodeEnvelope(this.stateEnvelope(state));
    for (const peer of this.members.values()) peer.send(bytes);
  }

  /** Says goodbye on every link, leaves the room and closes everything; every peer is
   * reported left. The goodbyes and the leave go out at once (a page being closed has no
   * time to wait); the links close once their goodbyes have left. */
  async leave(): Promise<void> {
    this.leaving = true;
    clearInterval(this.heartbeat);
    const peers = [...this.members.values()];
    this.members.clear();
    const byes = peers.map((peer) => peer.bye());
    this.signaling?.leave();
    this.signaling = null;
    for (const peer of peers) this.emit("peer-left", { peer: peer.id });
    await Promise.all(byes);
    for (const peer of peers) peer.close();
    for (const track of Object.values(this.tracks)) track.stop();
  }

  private member(id: string): Peer {
    const peer = this.members.get(id);
    if (!peer) throw new Error(`no peer ${id} in the room`);
    return peer;
  }

  private async publish(lane: Lane, stream: { kind: string; metadata: unknown }, deviceId?: string): Promise<MediaStreamTrack> {
    const had = this.tracks[lane];
    if (had) return had;
    if (!this.grants.publish) throw new Error("the room's token lets us watch, not publish");
    if (this.role === "viewer") throw new Error("a viewer watches: it does not publish");
    const track = await captureTrack(lane, deviceId);
    if (!this.signaling) {
      track.stop();
      throw new Error("not in a room");
    }
    this.tracks[lane] = track;
    this.watchEnd(lane, track);
    const info = { stream: `${stream.kind}-${++this.streamCount}`, ...stream, muted: false };
    this.published.set(lane, info);
    const announcement = encodeEnvelope(this.streamEnvelope({ op: "add", ...info }));
    await Promise.all([...this.members.values()].map((peer) => peer.setTrack(lane, track)));
    for (const peer of this.members.values()) peer.send(announcement);
    return track;
  }

  /** A track that ends on its own (the user stopped sharing in the browser's controls, a
   * device went away) is no longer published. */
  private watchEnd(lane: Lane, track: MediaStreamTrack): void {
    track.addEventListener("ended", () => {
      if (this.tracks[lane] !== track) return;
      void this.unpublish(lane);
      this.emit("local-ended", { lane });
    });
  }

  private streamEnvelope(announcement: Announcement): Envelope {
    return controlEnvelope(Kind.Stream, 0n, new TextEncoder().encode(JSON.stringify(announcement)));
  }

  private stateEnvelope(state: unknown): Envelope {
    return controlEnvelope(Kind.State, 0n, new TextEncoder().encode(JSON.stringify(state)));
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "peer_joined":
        return this.admit(frame, false);
      case "peer_left":
        return this.dismiss(frame.peer);
      case "signal":
        return this.members.get(frame.from)?.signal(frame.payload);
      case "cell":
        return this.follow(frame.plan);
      case "stage":
        // Empty while we are in the room (it is held in one cell, a full mesh).
        return;
      case "ice_servers":
        this.iceServers = frame.ice_servers;
        return;
      case "error":
        return this.emit("error", { code: frame.code, message: frame.message, fatal: frame.fatal });
    }
  }

  /** A peer of the room: linked at once if we are the newcomer, else when it offers. */
  private admit(entry: RosterEntry, newcomer: boolean): void {
    const me = this.identity;
    if (!me || this.members.has(entry.peer) || this.watchers.has(entry.peer) || entry.peer === me.id) return;
    const role = entry.role ?? "both";
    this.emit("peer-joined", { peer: entry.peer, name: entry.name, role });
    if (this.role === "viewer" && role === "viewer") {
      this.watchers.set(entry.peer, entry.name);
      return;
    }
    const peer = new Peer(this.context, me, entry);
    this.members.set(entry.peer, peer);
    peer.start(newcomer);
  }

  /** A cells room's plan: we link to exactly its members (the smaller id offers, as both
   * ends compute alike) and drop whoever it no longer names. An older plan is ignored. */
  private follow(plan: CellPlan): void {
    const me = this.identity?.id;
    if (!me || plan.epoch < this.planEpoch) return;
    this.planEpoch = plan.epoch;
    const named = new Set(plan.members.map((m) => m.peer));
    for (const id of [...this.members.keys(), ...this.watchers.keys()]) if (!named.has(id)) this.dismiss(id);
    for (const entry of plan.members) this.admit(entry, me < entry.peer);
  }

  private dismiss(id: string): void {
    if (this.watchers.delete(id)) return this.emit("peer-left", { peer: id });
    const peer = this.members.get(id);
    if (!peer) return;
    this.members.delete(id);
    peer.close();
    this.emit("peer-left", { peer: id });
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastTick > 2 * HEARTBEAT_MS) this.awakeSince = now;
    this.lastTick = now;
    for (const peer of this.members.values()) peer.tick(now, this.awakeSince);
  }

  private nextId(): bigint {
    this.messageId += 1n;
    return this.messageId;
  }

  /** What the peers need from the room. */
  private readonly context: PeerContext = {
    events: this,
    rtcConfig: () => ({ iceServers: this.iceServers, bundlePolicy: "max-bundle" }),
    tracks: () => this.tracks,
    nextSeq: () => ++this.seq,
    credentials: () => this.credentials,
    signal: (to, payload) => this.signaling?.signal(to, payload),
    nextId: () => this.nextId(),
    announcements: () => [
      ...[...this.published.values()].map((info) => this.streamEnvelope({ op: "add", ...info })),
      ...(this.state === undefined ? [] : [this.stateEnvelope(this.state)]),
    ],
    bye: (peer) => this.dismiss(peer),
    firstBroadcast: (origin, id) => this.delivered.first(origin, id),
  };
}
