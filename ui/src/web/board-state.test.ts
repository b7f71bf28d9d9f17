import { describe, expect, it } from "vitest";
import type { BoardChange, Point } from "../bindings";
import { BoardModel } from "../board";
import {
  BoardError,
  type BoardErrorKind,
  type BoardMsg,
  BoardState,
  MAX_POINTS_PER_MSG,
  MAX_POINTS_PER_STROKE,
  MAX_STROKES,
  parseBoardMsg,
} from "./board-state";

const RED = "#FF0000";
const pts = (n: number): Point[] => Array.from({ length: n }, (_, i): Point => [i / 10_000, 0.5]);

/** What a board shows: its strokes in order, by id, clock, point count and whether done. */
const picture = (b: BoardState) => b.strokes().map((s) => [s.author, s.seq, s.clock, s.points.length, s.done]);

/** `msg` as it travels: JSON text and back. */
const wire = (msg: BoardMsg): unknown => JSON.parse(JSON.stringify(msg));

function refusal(f: () => unknown): BoardErrorKind {
  try {
    f();
  } catch (e) {
    if (e instanceof BoardError) return e.kind;
    throw e;
  }
  throw new Error("not refused");
}

describe("BoardState", () => {
  it("sends a stroke that is drawn the same on the other side", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    const m1 = a.begin("pen", RED, 3, pts(2)).msg;
    const m2 = a.extend(0, pts(3)).msg;
    const m3 = a.end(0).msg;
    for (const m of [m1, m2, m3]) b.handle("a", wire(m));
    expect(picture(b)).toEqual(picture(a));
    const [s] = b.strokes();
    expect(s.points).toHaveLength(5);
    expect(s.done).toBe(true);
    expect(s.colour).toBe("#ff0000");
  });

  it("orders concurrent strokes the same everywhere", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    const ma = a.begin("pen", RED, 3, pts(1)).msg;
    const mb = b.begin("eraser", RED, 9, pts(1)).msg;
    a.handle("b", mb);
    b.handle("a", ma);
    expect(picture(a)).toEqual(picture(b));
    // Same clock: the author breaks the tie.
    expect(a.strokes().map((s) => s.author)).toEqual(["a", "b"]);
    // A stroke begun after seeing both comes after both.
    b.handle("a", a.begin("pen", RED, 3, pts(1)).msg);
    expect(picture(a)).toEqual(picture(b));
    expect(a.strokes().at(-1)?.clock).toBe(2);
  });

  it("takes back only its own strokes", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    b.handle("a", a.begin("pen", RED, 3, pts(1)).msg);
    expect(b.undo()).toBeNull();
    a.handle("b", b.begin("pen", RED, 3, pts(1)).msg);
    const undo = a.undo();
    expect(undo?.change).toEqual({ kind: "removed", ids: [{ author: "a", seq: 0 }] });
    b.handle("a", undo?.msg);
    expect(picture(a)).toEqual(picture(b));
    expect(a.strokes().map((s) => s.author)).toEqual(["b"]);
    // `undo` names no author: from b it names b's stroke 0.
    expect(a.handle("b", { t: "undo", seq: 0 })).toHaveLength(1);
    expect(a.size).toBe(0);
    expect(a.undo()).toBeNull();
  });

  it("clears what came before the clear and keeps later strokes", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    for (let i = 0; i < 3; i++) b.handle("a", a.begin("pen", RED, 3, pts(1)).msg);
    const clear = b.clear();
    expect(clear.change).toMatchObject({ kind: "removed", ids: [{ seq: 0 }, { seq: 1 }, { seq: 2 }] });
    expect(clear.msg).toEqual({ t: "clear", clock: 4 });
    // a draws twice before seeing the clear: clock 4 (author "a" < "b", covered) and 5.
    const late = a.begin("pen", RED, 3, pts(1)).msg;
    const later = a.begin("pen", RED, 3, pts(1)).msg;
    expect(a.handle("b", clear.msg).length).toBe(1);
    b.handle("a", late);
    b.handle("a", later);
    expect(picture(a)).toEqual(picture(b));
    expect(picture(a)).toEqual([["a", 4, 5, 1, false]]);
    expect(a.cleared).toEqual({ clock: 4, author: "b" });
  });

  it("gives a late joiner the board in sync messages under the budget", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    for (let i = 0; i < 50; i++) {
      b.handle("a", a.begin("pen", RED, 3, pts(400)).msg);
      if (i % 10 === 0) b.handle("a", a.undo()?.msg);
    }
    const late = new BoardState("c");
    const msgs = a.syncMessages(64 * 1024);
    expect(msgs.length).toBeGreaterThan(1);
    for (const m of msgs) expect(JSON.stringify(m).length).toBeLessThan(100 * 1024);
    // Only the last message carries the removed ids.
    expect(msgs.slice(0, -1).every((m) => m.t === "sync" && m.removed.length === 0)).toBe(true);
    // Both peers answer; merging twice changes nothing.
    for (const m of [...msgs, ...b.syncMessages(64 * 1024)]) late.handle("a", wire(m));
    expect(picture(late)).toEqual(picture(a));
    expect(late.size).toBe(45);
    // Its next stroke is ordered after everything it received.
    a.handle("c", late.begin("pen", RED, 3, pts(1)).msg);
    expect(a.strokes().at(-1)?.author).toBe("c");
  });

  it("syncs an empty board as one empty message", () => {
    expect(new BoardState("a").syncMessages(1000)).toEqual([{ t: "sync", strokes: [], removed: [], cleared: null }]);
  });

  it("sends a stroke larger than the budget alone", () => {
    const a = new BoardState("a");
    for (let i = 0; i < 3; i++) a.begin("pen", RED, 3, pts(100));
    const msgs = a.syncMessages(10);
    expect(msgs.map((m) => (m.t === "sync" ? m.strokes.length : -1))).toEqual([1, 1, 1]);
  });

  it("merges syncs as a union: idempotent and commutative", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    a.begin("pen", RED, 3, pts(2));
    a.extend(0, pts(4));
    b.begin("eraser", "#00ff00", 10, pts(1));
    b.begin("pen", RED, 3, pts(1));
    b.begin("pen", RED, 3, pts(1));
    b.undo();
    a.clear();
    a.extend(a.begin("pen", RED, 3, pts(1)).seq, pts(3));
    const [x, y] = [new BoardState("x"), new BoardState("y")];
    for (const m of [...a.syncMessages(), ...b.syncMessages(), ...a.syncMessages()]) x.handle("a", wire(m));
    for (const m of [...b.syncMessages(), ...b.syncMessages(), ...a.syncMessages()]) y.handle("b", wire(m));
    expect(picture(x)).toEqual(picture(y));
    // b's stroke 0 (clock 1) went with a's clear at (2, "a"); its stroke 1 at (2, "b") stays.
    expect(picture(x)).toEqual([["b", 1, 2, 1, false], ["a", 1, 3, 4, false]]);
    expect(x.syncMessages()).toEqual(y.syncMessages());
    // Merging again shows nothing new.
    for (const m of [...a.syncMessages(), ...b.syncMessages()]) expect(x.handle("a", m)).toEqual([]);
    // A sync's longer copy of a stroke adds only the points past those held.
    const partial = new BoardState("p");
    const [mine] = a.strokes().filter((s) => s.author === "a");
    partial.handle("a", { t: "sync", strokes: [{ ...mine, points: mine.points.slice(0, 1) }], removed: [], cleared: null });
    expect(partial.handle("a", { t: "sync", strokes: [{ ...mine, done: true }], removed: [], cleared: null })).toEqual([
      { kind: "points", id: { author: "a", seq: 1 }, from: 1, points: mine.points.slice(1), done: true },
    ]);
  });

  it("skips points already held and drops those past what is held", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    b.handle("a", a.begin("pen", RED, 3, pts(3)).msg);
    // A gap: points from index 5 when 3 are held.
    expect(b.handle("a", { t: "points", seq: 0, from: 5, points: pts(2) })).toEqual([]);
    // An overlap: from 1, four points, of which the first two are held.
    const four = pts(4).map(([x]): Point => [x, 0.25]);
    expect(b.handle("a", { t: "points", seq: 0, from: 1, points: four })).toEqual([
      { kind: "points", id: { author: "a", seq: 0 }, from: 3, points: four.slice(2), done: false },
    ]);
    expect(b.handle("a", { t: "points", seq: 0, from: 0, points: pts(2) })).toEqual([]);
    expect(b.handle("a", { t: "end", seq: 0 })).toEqual([{ kind: "points", id: { author: "a", seq: 0 }, from: 5, points: [], done: true }]);
    expect(b.handle("a", { t: "end", seq: 0 })).toEqual([]);
    // Points for a stroke never seen, or sent by another peer, are dropped.
    expect(b.handle("q", { t: "points", seq: 0, from: 5, points: pts(1) })).toEqual([]);
  });

  it("keeps to the limits", () => {
    const a = new BoardState("a");
    a.begin("pen", RED, 1, pts(1));
    for (let i = 0; i < 20; i++) a.extend(0, pts(MAX_POINTS_PER_MSG));
    expect(a.strokes()[0].points).toHaveLength(MAX_POINTS_PER_STROKE);
    expect(a.extend(0, pts(1)).msg).toEqual({ t: "points", seq: 0, from: MAX_POINTS_PER_STROKE, points: [] });
    // A peer's points are cut there too.
    const b = new BoardState("b");
    b.handle("a", { t: "begin", seq: 0, clock: 1, tool: "pen", colour: RED, width: 1, points: [] });
    for (let from = 0; from < MAX_POINTS_PER_STROKE + 1024; from += 512) b.handle("a", { t: "points", seq: 0, from, points: pts(512) });
    expect(b.strokes()[0].points).toHaveLength(MAX_POINTS_PER_STROKE);
    expect(refusal(() => b.handle("a", { t: "sync", strokes: [{ ...b.strokes()[0], seq: 1, points: pts(MAX_POINTS_PER_STROKE + 1) }], removed: [], cleared: null }))).toBe("too_many_points");

    const full = new BoardState("f");
    for (let i = 0; i < MAX_STROKES; i++) full.begin("pen", RED, 1, []);
    expect(refusal(() => full.begin("pen", RED, 1, []))).toBe("full");
    expect(refusal(() => full.handle("a", { t: "begin", seq: 0, clock: 1, tool: "pen", colour: RED, width: 1, points: [] }))).toBe("full");
  });

  it("validates local operations", () => {
    const a = new BoardState("a");
    expect(refusal(() => a.begin("pen", RED, 101, pts(1)))).toBe("bad_width");
    expect(refusal(() => a.begin("pen", RED, 0.4, pts(1)))).toBe("bad_width");
    expect(refusal(() => a.begin("pen", RED, 3, pts(MAX_POINTS_PER_MSG + 1)))).toBe("too_many_points");
    expect(refusal(() => a.begin("pen", RED, 3, [[Number.NaN, 0]]))).toBe("point_out_of_range");
    for (const c of ["#12345", "123456", "#12345g", "#1234567"]) expect(refusal(() => a.begin("pen", c, 3, pts(1)))).toBe("bad_colour");
    expect(refusal(() => a.extend(0, pts(1)))).toBe("no_such_stroke");
    expect(() => a.end(0)).toThrow("no stroke 0 in progress");
    a.begin("pen", RED, 0.5, pts(1));
    a.end(0);
    expect(refusal(() => a.extend(0, pts(1)))).toBe("no_such_stroke");
    expect(a.size).toBe(1);
  });

  it("refuses bad messages and changes nothing", () => {
    const b = new BoardState("b");
    b.handle("a", new BoardState("a").begin("pen", RED, 3, pts(1)).msg);
    const before = picture(b);
    const badJson = [
      undefined,
      "",
      "{",
      '{"t":"scribble"}',
      '{"t":"begin","seq":1}',
      '{"t":"end","seq":-1}',
      '{"t":"end","seq":1,"extra":true}',
      '{"t":"begin","seq":1,"clock":1,"tool":"laser","colour":"#000000","width":2,"points":[]}',
      '{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"black","width":2,"points":[]}',
      '{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[[0.1]]}',
      '{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[[0.1,"x"]]}',
      '{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[[0.1,0.2,0.3]]}',
      '{"t":"end","seq":4294967296}',
      '{"t":"clear","clock":1.5}',
      '{"seq":1}',
      '{"t":7}',
      '["end"]',
      '["end",1,2]',
      "[]",
      "null",
      "42",
      '{"t":"sync","strokes":[],"removed":[{"author":"a b","seq":0}],"cleared":null}',
      '{"t":"sync","strokes":[["a",0,1,"pen","#000000",2,[],true]],"removed":[],"cleared":null}',
      '{"t":"sync","strokes":[],"removed":[],"cleared":{"clock":1}}',
      '{"t":"sync","strokes":[{"author":"a","seq":0,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[]}],"removed":[]}',
    ];
    for (const text of badJson) {
      let data: unknown = text;
      try {
        data = text === undefined ? undefined : JSON.parse(text);
      } catch {
        // Not JSON: the raw text arrives.
      }
      expect(refusal(() => parseBoardMsg(data)), text).toBe("malformed");
      expect(refusal(() => b.handle("x", data)), text).toBe("malformed");
    }
    const begin = (width: number, points: Point[]) => ({ t: "begin", seq: 7, clock: 1, tool: "pen", colour: RED, width, points });
    expect(refusal(() => b.handle("x", begin(0, pts(1))))).toBe("bad_width");
    expect(refusal(() => b.handle("x", begin(3, [[1.5, 0]])))).toBe("point_out_of_range");
    expect(refusal(() => b.handle("x", begin(3, [[-0.1, 0]])))).toBe("point_out_of_range");
    expect(refusal(() => b.handle("x", begin(3, pts(MAX_POINTS_PER_MSG + 1))))).toBe("too_many_points");
    const badSync = {
      t: "sync",
      strokes: [{ author: "z", seq: 0, clock: 9, tool: "pen", colour: RED, width: 3, points: [[0.1, 0.1], [2, 0]], done: true }],
      removed: [{ author: "a", seq: 0 }],
      cleared: null,
    };
    expect(refusal(() => b.handle("x", badSync))).toBe("point_out_of_range");
    expect(picture(b)).toEqual(before);
  });

  it("refuses a begin or sync that reuses a stroke id with another clock", () => {
    const b = new BoardState("b");
    b.handle("a", new BoardState("a").begin("pen", RED, 3, pts(1)).msg);
    const before = picture(b);
    const forged = { t: "begin", seq: 0, clock: 99, tool: "pen", colour: RED, width: 3, points: [] };
    expect(refusal(() => b.handle("a", forged))).toBe("malformed");
    expect(() => b.handle("a", forged)).toThrow("not a board message: stroke 0 changed its clock");
    const sync = { t: "sync", strokes: [{ ...forged, author: "a", done: true }], removed: [], cleared: null };
    expect(refusal(() => b.handle("x", sync))).toBe("malformed");
    expect(picture(b)).toEqual(before);
    // The same clock merges.
    expect(b.handle("a", { ...forged, clock: 1, points: pts(2) })).toHaveLength(1);
  });

  it("keeps a Lamport clock", () => {
    const a = new BoardState("a");
    const begin = (clock: number, seq = 0) => ({ t: "begin", seq, clock, tool: "pen", colour: RED, width: 3, points: [] });
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(1);
    a.handle("b", begin(10));
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(11);
    // A clear, and a sync's strokes and clear mark, move it past theirs.
    a.handle("c", { t: "clear", clock: 20 });
    expect(a.clear().msg.clock).toBe(21);
    a.handle("d", { t: "sync", strokes: [], removed: [], cleared: { clock: 30, author: "d" } });
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(31);
    a.handle("d", { t: "sync", strokes: [{ ...begin(40), author: "e", done: false }], removed: [], cleared: null });
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(41);
    // Even a stroke already cleared or taken back does.
    a.handle("f", { t: "undo", seq: 0 });
    a.handle("f", begin(50));
    a.handle("g", begin(1));
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(51);
    // Points, ends and undos do not.
    a.handle("e", { t: "points", seq: 0, from: 0, points: pts(1) });
    a.handle("e", { t: "end", seq: 0 });
    a.handle("e", { t: "undo", seq: 0 });
    expect(a.begin("pen", RED, 3, []).msg.clock).toBe(52);
    expect(a.begin("pen", RED, 3, []).seq).toBe(6);
  });

  it("converges under any interleaving of ordered links", () => {
    // A seeded generator, so a failure repeats.
    let state = 42;
    const rand = (n: number) => {
      state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
      return Math.floor((state / 2 ** 31) * n);
    };
    const names = ["p0", "p1", "p2"];
    for (let run = 0; run < 60; run++) {
      const boards = names.map((n) => new BoardState(n));
      const links: BoardMsg[][][] = names.map(() => names.map(() => []));
      const send = (from: number, msg: BoardMsg) => links[from].forEach((q, to) => to !== from && q.push(msg));
      for (let step = rand(120) + 1; step > 0; step--) {
        const who = rand(3);
        const op = rand(14);
        if (op < 4) {
          const { seq, msg } = boards[who].begin("pen", RED, 2, pts(rand(39) + 1));
          send(who, msg);
          send(who, boards[who].extend(seq, pts(3)).msg);
          send(who, boards[who].end(seq).msg);
        } else if (op < 5) {
          const undo = boards[who].undo();
          if (undo) send(who, undo.msg);
        } else if (op < 6) {
          send(who, boards[who].clear().msg);
        } else {
          const from = rand(3);
          const msg = links[from][who].shift();
          if (msg) boards[who].handle(names[from], wire(msg));
        }
      }
      for (const [from, row] of links.entries()) for (const [to, q] of row.entries()) for (const m of q.splice(0)) boards[to].handle(names[from], wire(m));
      const first = picture(boards[0]);
      expect(picture(boards[1])).toEqual(first);
      expect(picture(boards[2])).toEqual(first);
      const late = new BoardState("late");
      boards.forEach((b, i) => b.syncMessages(4096).forEach((m) => late.handle(names[i], wire(m))));
      expect(picture(late)).toEqual(first);
    }
  });
});

describe("board messages on the wire", () => {
  it("are the JSON the app's peers send", () => {
    const a = new BoardState("a");
    const { msg, change } = a.begin("pen", "#E11D48", 6, [[0.1, 0.1], [0.2, 0.15]]);
    expect(JSON.stringify(msg)).toBe('{"t":"begin","seq":0,"clock":1,"tool":"pen","colour":"#e11d48","width":6,"points":[[0.1,0.1],[0.2,0.15]]}');
    expect(JSON.stringify(change)).toBe(
      '{"kind":"stroke","stroke":{"author":"a","seq":0,"clock":1,"tool":"pen","colour":"#e11d48","width":6,"points":[[0.1,0.1],[0.2,0.15]],"done":false}}',
    );
    expect(JSON.stringify(a.extend(0, [[0.3, 0.2]]).msg)).toBe('{"t":"points","seq":0,"from":2,"points":[[0.3,0.2]]}');
    expect(JSON.stringify(a.end(0).msg)).toBe('{"t":"end","seq":0}');
    expect(JSON.stringify(a.undo()?.msg)).toBe('{"t":"undo","seq":0}');
    expect(JSON.stringify(a.clear().msg)).toBe('{"t":"clear","clock":2}');
    expect(JSON.stringify(a.syncMessages())).toBe('[{"t":"sync","strokes":[],"removed":[{"author":"a","seq":0}],"cleared":{"clock":2,"author":"a"}}]');
  });

  it("accepts the protocol's example, and a message from this side round-trips", () => {
    const b = new BoardState("b");
    const docs = [
      '{"t":"begin","seq":0,"clock":1,"tool":"pen","colour":"#e11d48","width":6,"points":[[0.1,0.1],[0.2,0.15]]}',
      '{"t":"points","seq":0,"from":2,"points":[[0.3,0.2]]}',
      '{"t":"end","seq":0}',
    ];
    for (const text of docs) expect(JSON.stringify(parseBoardMsg(JSON.parse(text)))).toBe(text);
    for (const text of docs) b.handle("cli", JSON.parse(text));
    expect(b.strokes()).toEqual([
      { author: "cli", seq: 0, clock: 1, tool: "pen", colour: "#e11d48", width: 6, points: [[0.1, 0.1], [0.2, 0.15], [0.3, 0.2]], done: true },
    ]);
    // What the app writes (floats as `6.0`) is the same JSON value.
    expect(b.handle("app", JSON.parse('{"t":"begin","seq":3,"clock":2,"tool":"eraser","colour":"#FFFFFF","width":12.0,"points":[[0.0,1.0]]}'))).toMatchObject([
      { stroke: { colour: "#ffffff", width: 12, points: [[0, 1]] } },
    ]);
    const [a, c] = [new BoardState("a"), new BoardState("c")];
    const { msg, change } = a.begin("eraser", "#00Aa00", 2.5, [[0.25, 0.75]]);
    expect(c.handle("a", JSON.parse(JSON.stringify(msg)))).toEqual([change]);
    expect(c.strokes()).toEqual(a.strokes());
  });

  it("keeps points to four decimals and widths to 32-bit floats, as the app's peers do", () => {
    const a = new BoardState("a");
    // Rounded in 32-bit arithmetic: 0.00015 becomes 0.0002 and 0.00035 becomes 0.0003.
    const { msg } = a.begin("pen", RED, 2.3456789, [[0.123456, 1], [0.00015, 0.00035], [0, 0.99999]]);
    expect(msg).toMatchObject({ width: 2.3456788, points: [[0.1235, 1], [0.0002, 0.0003], [0, 1]] });
    // 100.000001 is 100 as a 32-bit float; 1.00000001 is 1.
    expect(a.begin("pen", RED, 100.000001, [[1.00000001, 0]]).msg).toMatchObject({ width: 100, points: [[1, 0]] });
    const b = new BoardState("b");
    b.handle("a", wire(msg));
    expect(b.strokes()).toEqual(a.strokes().slice(0, 1));
  });

  it("takes every form the app's decoder takes", () => {
    expect(parseBoardMsg(["end", 3])).toEqual({ t: "end", seq: 3 });
    expect(parseBoardMsg({ seq: 3, t: "undo" })).toEqual({ t: "undo", seq: 3 });
    expect(parseBoardMsg({ t: "begin", seq: 0, clock: 1, tool: { eraser: null }, colour: "#ABCDEF", width: 1, points: [] })).toMatchObject({
      tool: "eraser",
      colour: "#abcdef",
    });
    // A sync's strokes may carry fields of their own; ids and marks may be arrays; no mark may be left out.
    const sync = parseBoardMsg({
      t: "sync",
      strokes: [{ author: "a", seq: 0, clock: 1, tool: "pen", colour: RED, width: 1, points: [], done: true, note: 1 }],
      removed: [["a", 1]],
    });
    expect(sync).toEqual({
      t: "sync",
      strokes: [{ author: "a", seq: 0, clock: 1, tool: "pen", colour: "#ff0000", width: 1, points: [], done: true }],
      removed: [{ author: "a", seq: 1 }],
      cleared: null,
    });
    expect(parseBoardMsg(["sync", [], [], [3, "a"]])).toEqual({ t: "sync", strokes: [], removed: [], cleared: { clock: 3, author: "a" } });
  });

  it("reports changes that the view renders as the board holds them", () => {
    const [a, b] = [new BoardState("a"), new BoardState("b")];
    const model = new BoardModel();
    const show = (changes: BoardChange[]) => changes.forEach((c) => model.apply(c));
    const fromA: BoardMsg[] = [];
    for (let i = 0; i < 4; i++) {
      const begun = a.begin(i % 2 ? "eraser" : "pen", RED, 3, pts(2));
      fromA.push(begun.msg, a.extend(begun.seq, pts(5)).msg, a.end(begun.seq).msg);
      const own = b.begin("pen", "#0000ff", 4, pts(1));
      show([own.change, b.extend(own.seq, pts(3)).change]);
    }
    fromA.push(a.undo()!.msg);
    for (const m of fromA.slice(0, 7)) show(b.handle("a", wire(m)));
    show([b.undo()!.change]);
    for (const m of fromA.slice(7)) show(b.handle("a", wire(m)));
    show([b.clear().change]);
    // Drawn before a sees the clear: clock 5 goes with it, clock 6 stays.
    a.begin("pen", RED, 3, pts(1));
    a.extend(a.begin("pen", RED, 3, pts(1)).seq, pts(2));
    show(b.handle("a", wire(a.syncMessages()[0])));
    const last = b.begin("pen", RED, 3, pts(1));
    show([last.change, b.extend(last.seq, pts(2)).change, b.end(last.seq).change]);
    for (const m of a.syncMessages(500)) show(b.handle("a", wire(m)));
    expect(model.size).toBeGreaterThan(0);
    expect(model.ordered()).toEqual(b.strokes());
  });
});
