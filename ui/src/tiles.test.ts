import { describe, expect, it } from "vitest";
import type { PeerView } from "./bindings";
import { gridFor, readPicture, Tiles } from "./tiles";

const peer = (id: string, state: PeerView["state"] = "connected", rtt_ms: number | null = 3.4): PeerView => ({
  id,
  name: `Name ${id}`,
  state,
  rtt_ms,
  colour: "hsl(10, 70%, 45%)",
  speaking: false,
  muted: null,
  video: false,
  screen: false,
  path: null,
  safety_code: null,
  verified: false,
  role: "both",
  hand: false,
  quality: null,
});

describe("tiles", () => {
  it("lays out as square a grid as the count allows", () => {
    expect([1, 2, 3, 4, 5, 7, 9, 10].map((n) => gridFor(n))).toEqual([
      { cols: 1, rows: 1 },
      { cols: 2, rows: 1 },
      { cols: 2, rows: 2 },
      { cols: 2, rows: 2 },
      { cols: 3, rows: 2 },
      { cols: 3, rows: 3 },
      { cols: 3, rows: 3 },
      { cols: 4, rows: 3 },
    ]);
  });

  it("keeps one tile per participant, in roster order, with state and latency", () => {
    const t = new Tiles();
    t.update([peer("me", "me", null), peer("a"), peer("b", "connecting", null)]);
    const ids = () => [...t.element.querySelectorAll<HTMLElement>(".tile")].map((e) => e.dataset.peer);
    expect(ids()).toEqual(["me", "a", "b"]);
    expect(t.element.style.getPropertyValue("--cols")).toBe("2");
    expect(t.element.querySelector(".tile[data-peer='me'] .tile-name")?.textContent).toBe("Name me (you)");
    expect(t.element.querySelector(".tile[data-peer='a'] .tile-rtt")?.textContent).toBe("3 ms");
    expect(t.element.querySelector(".tile[data-peer='b'] .tile-state")?.textContent).toBe("Connecting…");
    // The state's words are in its tooltip too: a narrow tile may hide them.
    expect((t.element.querySelector(".tile[data-peer='b'] .tile-state") as HTMLElement).title).toBe("Connecting…");
    expect((t.element.querySelector(".tile[data-peer='b'] .tile-rtt") as HTMLElement).hidden).toBe(true);
    const name = t.element.querySelector(".tile[data-peer='a'] .tile-name");
    t.update([peer("me", "me", null), peer("a", "connected", 12.6), peer("b", "connecting", null)]);
    expect(t.element.querySelector(".tile[data-peer='a'] .tile-name")).toBe(name);
    expect(t.element.querySelector(".tile[data-peer='a'] .tile-rtt")?.textContent).toBe("13 ms");
    t.update([peer("me", "me", null), peer("b", "reconnecting", null)]);
    expect(ids()).toEqual(["me", "b"]);
    expect(t.element.querySelector(".tile[data-peer='b'] .tile-state")?.textContent).toBe("Reconnecting…");
    expect(t.element.dataset.count).toBe("2");
  });

  it("rings a speaking peer's tile and marks a muted one", () => {
    const t = new Tiles();
    t.update([{ ...peer("a"), speaking: true, muted: false }, { ...peer("b"), muted: true }]);
    const a = t.element.querySelector(".tile[data-peer='a']") as HTMLElement;
    const b = t.element.querySelector(".tile[data-peer='b']") as HTMLElement;
    expect(a.dataset.speaking).toBe("true");
    expect((a.querySelector(".tile-muted") as HTMLElement).hidden).toBe(true);
    expect(b.dataset.speaking).toBe("false");
    expect(b.dataset.muted).toBe("true");
    expect((b.querySelector(".tile-muted") as HTMLElement).hidden).toBe(false);
    t.update([{ ...peer("a"), speaking: false, muted: null, video: false }, { ...peer("b"), muted: false }]);
    expect(a.dataset.speaking).toBe("false");
    expect((b.querySelector(".tile-muted") as HTMLElement).hidden).toBe(true);
  });
});

describe("picture packets", () => {
  const packet = (peer: string, width: number, height: number, extra = 0): ArrayBuffer => {
    const id = new TextEncoder().encode(peer);
    const bytes = new Uint8Array(2 + id.length + 4 + width * height * 4 + extra);
    bytes[0] = 1;
    bytes[1] = id.length;
    bytes.set(id, 2);
    new DataView(bytes.buffer).setUint16(2 + id.length, width, true);
    new DataView(bytes.buffer).setUint16(4 + id.length, height, true);
    bytes.fill(200, 6 + id.length);
    return bytes.buffer;
  };

  it("reads the peer, the size and the pixels", () => {
    const picture = readPicture(packet("ada1", 4, 2));
    expect(picture?.peer).toBe("ada1");
    expect([picture?.width, picture?.height]).toEqual([4, 2]);
    expect(picture?.rgba.length).toBe(32);
    expect(picture?.rgba[31]).toBe(200);
  });

  it("refuses what is not a whole packet", () => {
    expect(readPicture(new ArrayBuffer(3))).toBeNull();
    expect(readPicture(packet("ada1", 4, 2, 1))).toBeNull();
    const wrongVersion = new Uint8Array(packet("ada1", 1, 1));
    wrongVersion[0] = 2;
    expect(readPicture(wrongVersion.buffer)).toBeNull();
  });

  it("shows video instead of the avatar for peers that publish it", () => {
    const tiles = new Tiles();
    tiles.update([{ ...peer("a"), video: true }, peer("b")]);
    const a = tiles.element.querySelector<HTMLElement>(".tile[data-peer='a']");
    expect(a?.dataset.video).toBe("true");
    expect(a?.querySelector("canvas.tile-video")).not.toBeNull();
    expect(tiles.element.querySelector<HTMLElement>(".tile[data-peer='b']")?.dataset.video).toBe("false");
  });
});

describe("shared screens", () => {
  it("get a tile of their own, shown large until the user picks the grid, and leave with the share", () => {
    const tiles = new Tiles();
    const keys = () => [...tiles.element.querySelectorAll<HTMLElement>(".tile")].map((e) => e.dataset.peer);
    tiles.update([peer("me", "me", null), { ...peer("a"), video: true }]);
    expect(tiles.element.dataset.layout).toBe("grid");
    tiles.update([peer("me", "me", null), { ...peer("a"), video: true, screen: true }]);
    expect(keys()).toEqual(["a/screen", "me", "a"]);
    expect(tiles.element.dataset.layout).toBe("presenter");
    const screen = tiles.element.querySelector<HTMLElement>(".tile[data-peer='a/screen']")!;
    expect(screen.dataset.video).toBe("true");
    expect(screen.querySelector(".tile-name")?.textContent).toBe("Name a: screen");
    tiles.setLayout("grid");
    expect(tiles.element.dataset.layout).toBe("grid");
    tiles.setLayout("presenter");
    expect(tiles.element.dataset.layout).toBe("presenter");
    // Its pictures are sized and drawn apart from the camera's.
    expect(tiles.videoSizes().map((s) => s.peer).sort()).toEqual(["a", "a/screen"]);
    tiles.update([peer("me", "me", null), { ...peer("a"), video: true }]);
    expect(keys()).toEqual(["me", "a"]);
    expect(tiles.element.dataset.layout).toBe("grid");
  });

  it("mirrors our own camera, and nothing else", () => {
    const tiles = new Tiles();
    tiles.update([{ ...peer("me", "me", null), video: true, screen: true }, { ...peer("a"), video: true }]);
    const mirrored = (key: string) => tiles.element.querySelector<HTMLElement>(`.tile[data-peer='${key}']`)?.dataset.mirrored;
    expect([mirrored("me"), mirrored("me/screen"), mirrored("a")]).toEqual(["true", "false", "false"]);
  });

  it("marks relayed links and shows the safety button once a peer proved its key", () => {
    const t = new Tiles();
    t.update([peer("me", "me", null), { ...peer("a"), path: "relay", safety_code: "12345 67890 11111 22222", verified: true }, peer("b")]);
    const part = (id: string, css: string) => t.element.querySelector(`.tile[data-peer='${id}'] ${css}`) as HTMLElement;
    expect(part("a", ".tile-path").hidden).toBe(false);
    expect(part("a", ".tile-bar").title).toBe("Relayed through a TURN server");
    expect(part("b", ".tile-bar").title).toBe("");
    expect(part("b", ".tile-path").hidden).toBe(true);
    expect(part("a", ".tile-safety").hidden).toBe(false);
    expect(part("a", ".tile-safety").dataset.verified).toBe("true");
    expect(part("b", ".tile-safety").hidden).toBe(true);
    t.update([peer("me", "me", null), { ...peer("a"), path: "host", safety_code: "12345 67890 11111 22222", verified: false }]);
    expect(part("a", ".tile-path").hidden).toBe(true);
    expect(part("a", ".tile-safety").dataset.verified).toBe("false");
    expect(part("a", ".tile-bar").title).toBe("Direct link");
  });
});
