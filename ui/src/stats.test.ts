import { describe, expect, it } from "vitest";
import type { LinkQuality, PeerView } from "./bindings";
import { rate, rows, StatsPanel, summary } from "./stats";
import { Tiles } from "./tiles";

const quality = (over: Partial<LinkQuality> = {}): LinkQuality => ({
  grade: "good",
  estimate_kbps: 1850,
  send_kbps: 1420,
  receive_kbps: 610,
  data_kbps: 0,
  loss_percent: 0.4,
  sending: [1280, 720],
  video: { width: 640, height: 360, fps: 30, freezes: 0, freeze_total_ms: 0 },
  concealed_percent: 0,
  audio_delay_ms: 60,
  ...over,
});

const peer = (id: string, q: LinkQuality | null, state: PeerView["state"] = "connected"): PeerView => ({
  id,
  name: `Name ${id}`,
  state,
  rtt_ms: 12.3,
  colour: "hsl(10, 70%, 45%)",
  speaking: false,
  muted: null,
  video: true,
  screen: false,
  path: "host",
  safety_code: null,
  verified: false,
  role: "both",
  hand: false,
  quality: q,
});

describe("call statistics", () => {
  it("reads rates as people do", () => {
    expect(rate(640)).toBe("640 kbit/s");
    expect(rate(1850)).toBe("1.9 Mbit/s");
  });

  it("sums a link up for its tile's tooltip", () => {
    expect(summary(quality(), 12.3)).toBe("Good connection · path 1.9 Mbit/s · 0.4 % lost · 12 ms · receiving 360p at 30 fps");
    expect(summary(quality({ grade: "poor", video: null }), null)).toBe("Poor connection · path 1.9 Mbit/s · 0.4 % lost");
  });

  it("lists a peer's figures, the pictures both ways included", () => {
    const table = new Map(rows(peer("a", quality({ video: { width: 640, height: 360, fps: 24, freezes: 2, freeze_total_ms: 1300 } }))));
    expect(table.get("Your camera to them")).toBe("1280×720");
    expect(table.get("Their camera")).toBe("640×360, 24 fps");
    expect(table.get("Freezes")).toBe("2 (1.3 s)");
    expect(table.get("Round trip")).toBe("12 ms");
    expect(table.has("Data sent")).toBe(false);
    expect(new Map(rows(peer("a", quality({ data_kbps: 320 })))).get("Data sent")).toBe("320 kbit/s");
    expect(rows(peer("b", null))).toEqual([]);
  });

  it("shows one card per measured peer, graded", () => {
    const panel = new StatsPanel();
    expect(panel.element.querySelector(".stats-empty")).not.toBeNull();
    panel.update([peer("me", null, "me"), peer("a", quality()), peer("b", quality({ grade: "fair" })), peer("c", null, "connecting")]);
    const cards = [...panel.element.querySelectorAll<HTMLElement>(".stats-card")];
    expect(cards.map((c) => [c.dataset.peer, c.dataset.grade])).toEqual([
      ["a", "good"],
      ["b", "fair"],
    ]);
  });

  it("lights a tile's indicator by its link's grade and hides it without one", () => {
    const tiles = new Tiles();
    tiles.update([peer("me", null, "me"), peer("a", quality({ grade: "poor" })), peer("b", null)]);
    const indicator = (id: string) => tiles.element.querySelector<HTMLElement>(`[data-peer="${id}"] .tile-quality`);
    expect(indicator("a")?.hidden).toBe(false);
    expect(indicator("a")?.dataset.grade).toBe("poor");
    expect(indicator("a")?.title).toContain("Poor connection");
    expect(indicator("b")?.hidden).toBe(true);
    expect(indicator("me")?.hidden).toBe(true);
  });
});
