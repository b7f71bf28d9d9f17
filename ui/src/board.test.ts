import { describe, expect, it, vi } from "vitest";
import type { Stroke } from "./bindings";
import { BoardModel, BoardView, strokeKey } from "./board";

const stroke = (author: string, seq: number, clock: number, points: [number, number][] = [[0.1, 0.1]]): Stroke => ({
  author,
  seq,
  clock,
  tool: "pen",
  colour: "#000000",
  width: 3,
  points,
  done: false,
});

describe("BoardModel", () => {
  it("orders strokes by clock, then author, then seq, whatever the arrival order", () => {
    const m = new BoardModel();
    for (const s of [stroke("b", 0, 2), stroke("a", 1, 2), stroke("c", 0, 1), stroke("a", 0, 2)]) {
      m.apply({ kind: "stroke", stroke: s });
    }
    expect(m.ordered().map((s) => strokeKey(s))).toEqual(["c/0", "a/0", "a/1", "b/0"]);
  });

  it("appends points from their index and removes strokes", () => {
    const m = new BoardModel();
    m.apply({ kind: "stroke", stroke: stroke("a", 0, 1, [[0, 0]]) });
    m.apply({ kind: "points", id: { author: "a", seq: 0 }, from: 1, points: [[0.5, 0.5]], done: false });
    m.apply({ kind: "points", id: { author: "a", seq: 0 }, from: 2, points: [], done: true });
    expect(m.ordered()[0].points).toEqual([[0, 0], [0.5, 0.5]]);
    expect(m.ordered()[0].done).toBe(true);
    m.apply({ kind: "points", id: { author: "zz", seq: 9 }, from: 0, points: [[1, 1]], done: true });
    expect(m.size).toBe(1);
    m.apply({ kind: "removed", ids: [{ author: "a", seq: 0 }] });
    expect(m.size).toBe(0);
  });
});

describe("BoardView input", () => {
  function view() {
    const calls: string[] = [];
    let release: () => void = () => {};
    const actions = {
      begin: vi.fn(async () => {
        calls.push("begin");
        return 7;
      }),
      points: vi.fn(async (_seq: number, pts: [number, number][]) => {
        calls.push(`points:${pts.length}`);
        await new Promise<void>((r) => (release = r));
      }),
      end: vi.fn(async () => void calls.push("end")),
      pointer: vi.fn(),
    };
    const v = new BoardView(new BoardModel(), actions);
    v.surface.getBoundingClientRect = () => ({ left: 0, top: 0, width: 200, height: 100, right: 200, bottom: 100, x: 0, y: 0, toJSON() {} });
    const ev = (type: string, x: number, y: number) => {
      const e = new MouseEvent(type, { clientX: x, clientY: y, button: 0 });
      Object.defineProperty(e, "pointerId", { value: 1 });
      v.surface.dispatchEvent(e);
    };
    return { v, actions, calls, ev, release: () => release() };
  }

  it("sends a stroke as begin, coalesced points, then end, in order", async () => {
    const { actions, calls, ev, release } = view();
    ev("pointerdown", 20, 10);
    await Promise.resolve();
    ev("pointermove", 40, 20);
    await vi.waitFor(() => expect(calls).toEqual(["begin", "points:1"]));
    ev("pointermove", 60, 30);
    ev("pointermove", 80, 40);
    ev("pointerup", 100, 50);
    release();
    await vi.waitFor(() => expect(calls).toEqual(["begin", "points:1", "points:3"]));
    release();
    await vi.waitFor(() => expect(calls).toEqual(["begin", "points:1", "points:3", "end"]));
    expect(actions.begin).toHaveBeenCalledWith("pen", "#1f2937", 5, [[0.1, 0.1]]);
    expect(actions.points.mock.calls[1][1]).toEqual([[0.3, 0.3], [0.4, 0.4], [0.5, 0.5]]);
    expect(actions.pointer).toHaveBeenCalledWith([0.2, 0.2]);
  });

  it("clamps positions to the board", () => {
    const { v } = view();
    expect(v.at({ clientX: -50, clientY: 500 })).toEqual([0, 1]);
  });
});
