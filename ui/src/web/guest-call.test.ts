import { describe, expect, it } from "vitest";
import type { PeerView, UiEvent } from "../bindings";
import { Emitter } from "./emitter";
import type { RoomEvents } from "./events";
import { colourOf, GuestCall } from "./guest-call";
import type { Room } from "./room";

const ME = "a".repeat(40);
const ADA = "b".repeat(40);
const BOB = "c".repeat(40);

/** A room that records what the call sends and lets a test play the peers. */
class FakeRoom extends Emitter<RoomEvents> {
  sent: Array<{ channel: string; data: unknown; to?: string }> = [];
  state: unknown = undefined;
  grants = { publish: true, subscribe: true, admin: false };
  peers() {
    return [];
  }
  send(channel: string, data: unknown, to?: string): number {
    this.sent.push({ channel, data, to });
    return 1;
  }
  setState(state: unknown): void {
    this.state = state;
  }
  localTrack(): null {
    return null;
  }
  ping(): Promise<number> {
    return Promise.resolve(1.5);
  }
  async leave(): Promise<void> {}
}

function setup(role: "both" | "viewer" = "both") {
  const room = new FakeRoom();
  const call = new GuestCall(room as unknown as Room, { id: ME, name: "Me" }, "standup", "ws://127.0.0.1:1/", "http://127.0.0.1:1/r/standup", role);
  const events: UiEvent[] = [];
  call.onEvent((e) => events.push(e));
  const roster = (): PeerView[] => {
    const last = events.filter((e) => e.type === "roster").at(-1);
    return last && last.type === "roster" ? last.peers : [];
  };
  const peer = (id: string) => roster().find((p) => p.id === id);
  const link = (id: string, name: string) => {
    room.emit("peer-joined", { peer: id, name, role: "both" });
    room.emit("linked", { peer: id, name, safetyCode: "12345 67890" });
  };
  return { room, call, events, roster, peer, link };
}

describe("GuestCall", () => {
  it("colours a peer as the app does", () => {
    // FNV-1a of forty "a": 181 degrees, the app's colour_of.
    expect(colourOf(ME)).toBe("hsl(181, 70%, 45%)");
  });

  it("shows us first, then each peer as it links, with its safety code", () => {
    const { roster, peer, link, room } = setup();
    expect(roster().map((p) => p.state)).toEqual(["me"]);
    room.emit("peer-joined", { peer: ADA, name: "Ada", role: "both" });
    expect(peer(ADA)?.state).toBe("connecting");
    link(ADA, "Ada");
    expect(peer(ADA)).toMatchObject({ name: "Ada", state: "connected", safety_code: "12345 67890", colour: colourOf(ADA) });
    room.emit("unlinked", { peer: ADA });
    expect(peer(ADA)?.state).toBe("reconnecting");
    room.emit("peer-left", { peer: ADA });
    expect(peer(ADA)).toBeUndefined();
  });

  it("says which peer refused our access code, as the app does", () => {
    const { room, events } = setup("viewer");
    room.emit("peer-joined", { peer: ADA, name: "Ada", role: "publisher" });
    room.emit("error", { code: "not_verified", message: "refused by the peer: not verified", peer: ADA, fatal: false });
    expect(events.filter((e) => e.type === "not_verified")).toEqual([{ type: "not_verified", name: "Ada", reason: "refused by the peer: not verified" }]);
  });

  it("turns the collaboration channels into the view's events and refuses what is not valid", () => {
    const { events, link, room } = setup();
    link(ADA, "Ada");
    room.emit("message", { from: ADA, channel: "chat", data: { text: "  hi  " } });
    room.emit("message", { from: ADA, channel: "cursor", data: { t: "at", x: 0.5, y: 0.25 } });
    room.emit("message", { from: ADA, channel: "cursor", data: { t: "gone" } });
    room.emit("message", { from: ADA, channel: "cursor", data: { t: "at", x: 2, y: 0 } });
    room.emit("message", { from: ADA, channel: "chat", data: { text: 5 } });
    room.emit("message", { from: ADA, channel: "board", data: { t: "begin", seq: 0, clock: 1, tool: "pen", colour: "#e11d48", width: 6, points: [[0.1, 0.1]] } });
    room.emit("message", { from: ADA, channel: "board", data: { t: "begin", seq: 1, clock: 1, tool: "crayon", colour: "#e11d48", width: 6, points: [] } });
    const seen = events.filter((e) => e.type !== "roster" && e.type !== "status");
    expect(seen.map((e) => e.type)).toEqual(["chat", "cursor", "cursor_gone", "ignored", "ignored", "board", "ignored"]);
    expect(seen[0]).toMatchObject({ type: "chat", line: { from: ADA, name: "Ada", text: "hi", own: false } });
    expect(seen[1]).toEqual({ type: "cursor", peer: ADA, x: 0.5, y: 0.25 });
    expect(seen[3]).toMatchObject({ type: "ignored", peer: ADA, channel: "cursor" });
  });

  it("sends our strokes, cursor and chat on their channels, and hands our board to a newcomer", async () => {
    const { call, room, link } = setup();
    const started = await call.boardBegin({ tool: "pen", colour: "#2563eb", width: 4, points: [[0.1, 0.2]] });
    await call.boardPoints(started.seq, [[0.3, 0.4]]);
    await call.boardEnd(started.seq);
    await call.sendCursor([0.123456, 0.5]);
    const line = await call.sendChat(" hello ");
    expect(line).toMatchObject({ from: ME, text: "hello", own: true });
    await expect(call.sendChat("   ")).rejects.toMatchObject({ kind: "bad_input" });
    expect(room.sent.map((s) => [s.channel, (s.data as { t?: string }).t ?? null])).toEqual([
      ["board", "begin"],
      ["board", "points"],
      ["board", "end"],
      ["cursor", "at"],
      ["chat", null],
    ]);
    expect(room.sent[3].data).toEqual({ t: "at", x: 0.1235, y: 0.5 });
    room.sent = [];
    link(BOB, "Bob");
    expect(room.sent).toHaveLength(1);
    expect(room.sent[0]).toMatchObject({ channel: "board", to: BOB, data: { t: "sync" } });
    const sync = room.sent[0].data as { strokes: Array<{ author: string; points: unknown[]; done: boolean }> };
    expect(sync.strokes).toEqual([expect.objectContaining({ author: ME, done: true, points: [[0.1, 0.2], [0.3, 0.4]] })]);
  });

  it("shares a raised hand and shows the peers' hands, microphones, cameras and screens", async () => {
    const { call, room, peer, link } = setup();
    expect(await call.raiseHand(true)).toBe(true);
    expect(room.state).toEqual({ hand: true });
    expect(peer(ME)?.hand).toBe(true);
    link(ADA, "Ada");
    room.emit("state", { peer: ADA, state: { hand: true } });
    expect(peer(ADA)?.hand).toBe(true);
    room.emit("state", { peer: ADA, state: { hand: "yes" } });
    expect(peer(ADA)?.hand).toBe(false);
    expect(peer(ADA)?.muted).toBeNull();
    room.emit("stream-added", { peer: ADA, stream: "audio-1", kind: "audio", metadata: {}, muted: false });
    room.emit("stream-added", { peer: ADA, stream: "video-2", kind: "video", metadata: { type: "camera" }, muted: false });
    room.emit("stream-added", { peer: ADA, stream: "video-3", kind: "video", metadata: { type: "screen" }, muted: false });
    expect(peer(ADA)).toMatchObject({ muted: false, video: true, screen: true });
    room.emit("stream-muted", { peer: ADA, stream: "audio-1", muted: true });
    room.emit("stream-removed", { peer: ADA, stream: "video-3" });
    expect(peer(ADA)).toMatchObject({ muted: true, video: true, screen: false });
  });

  it("as a viewer, lists other viewers as in the room, not linking", () => {
    const { call, room, peer } = setup("viewer");
    expect(call.joined.role).toBe("viewer");
    room.emit("peer-joined", { peer: ADA, name: "Ada", role: "publisher" });
    room.emit("peer-joined", { peer: BOB, name: "Bob", role: "viewer" });
    expect(peer(ADA)).toMatchObject({ state: "connecting", role: "publisher" });
    expect(peer(BOB)).toMatchObject({ state: "in_room", role: "viewer" });
  });

  it("ends the call on a fatal error and says when the server is lost", () => {
    const { events, room } = setup();
    room.emit("error", { code: "signaling_lost", message: "closed", fatal: false });
    expect(events.at(-1)).toEqual({ type: "status", signaling: false, reconnecting: [] });
    room.emit("signaling-back", {});
    expect(events.at(-1)).toEqual({ type: "status", signaling: true, reconnecting: [] });
    room.emit("error", { code: "room_full", message: "the room is full", fatal: true });
    expect(events.at(-1)).toEqual({ type: "closed", reason: "the room is full" });
  });
});
