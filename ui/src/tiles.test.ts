import { describe, expect, it } from "vitest";
import type { PeerView } from "./bindings";
import { gridFor, Tiles } from "./tiles";

const peer = (id: string, state: PeerView["state"] = "connected", rtt_ms: number | null = 3.4): PeerView => ({
  id,
  name: `Name ${id}`,
  state,
  rtt_ms,
  colour: "hsl(10, 70%, 45%)",
  speaking: false,
  muted: null,
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
    t.update([{ ...peer("a"), speaking: false, muted: null }, { ...peer("b"), muted: false }]);
    expect(a.dataset.speaking).toBe("false");
    expect((b.querySelector(".tile-muted") as HTMLElement).hidden).toBe(true);
  });
});
