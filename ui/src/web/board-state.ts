// The `board` channel's whiteboard (docs/protocol.md, section 3), owned by the guest page as
// the app's Rust side owns it for the app.
//
// A stroke is named by its author and the author's `seq`, and drawn in `(clock, author, seq)`
// order, where `clock` is a Lamport clock: one more than the largest clock the author had
// seen when the stroke began. The board only grows by union (strokes whose points only grow,
// the ids of strokes taken back, the highest clear mark), so merging a `sync` is idempotent
// and commutative. Numbers are the 32-bit floats the app's peers hold, written as the
// shortest decimals that are those floats, as the peers write them; points keep four
// decimals.
import type { BoardChange, ClearMark, Point, Stroke, StrokeId, Tool } from "../bindings";

export const BOARD_CHANNEL = "board";
/** Points per `begin` or `points` message, at most. */
export const MAX_POINTS_PER_MSG = 512;
/** Points per stroke, at most: a longer stroke is cut there. */
export const MAX_POINTS_PER_STROKE = 8_000;
/** Strokes on one board, at most. */
export const MAX_STROKES = 10_000;
/** Removed stroke ids remembered, at most. */
export const MAX_REMOVED = 20_000;
/** Stroke width bounds, in thousandths of the board's width. */
export const MIN_WIDTH = 0.5;
export const MAX_WIDTH = 100;
/** The size the app keeps each `sync` message under (the room's limit is 256 KiB). */
export const SYNC_CHUNK_BYTES = 192 * 1024;

/** A whiteboard operation as it travels on channel `board`. */
export type BoardMsg =
  | { t: "begin"; seq: number; clock: number; tool: Tool; colour: string; width: number; points: Point[] }
  | { t: "points"; seq: number; from: number; points: Point[] }
  | { t: "end"; seq: number }
  | { t: "undo"; seq: number }
  | { t: "clear"; clock: number }
  | { t: "sync"; strokes: Stroke[]; removed: StrokeId[]; cleared: ClearMark | null };

/** A local operation's outcome: the message to send to every peer and the change to show. */
export type BoardOp<T extends BoardMsg["t"]> = { msg: Extract<BoardMsg, { t: T }>; change: BoardChange };

/** Why a board operation or message was refused. */
export type BoardErrorKind =
  | "malformed"
  | "point_out_of_range"
  | "bad_colour"
  | "bad_width"
  | "too_many_points"
  | "full"
  | "no_such_stroke";

const REASONS: Record<Exclude<BoardErrorKind, "malformed" | "no_such_stroke">, string> = {
  point_out_of_range: "point out of range",
  bad_colour: "colour is not #rrggbb",
  bad_width: "stroke width out of range",
  too_many_points: `more than ${MAX_POINTS_PER_MSG} points in one message`,
  full: `the board is full (${MAX_STROKES} strokes)`,
};

/** A refused operation or message; `message` reads as the app's. */
export class BoardError extends Error {
  constructor(
    readonly kind: BoardErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "BoardError";
  }
}

const malformed = (why: string) => new BoardError("malformed", `not a board message: ${why}`);
const refused = (kind: keyof typeof REASONS) => new BoardError(kind, REASONS[kind]);

/** `v` as a 32-bit float, written as the shortest decimal that is that float. */
function f32(v: number): number {
  const x = Math.fround(v);
  if (!Number.isFinite(x)) return x;
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(x.toPrecision(digits));
    if (Math.fround(d) === x) return d;
  }
  return Number(x.toPrecision(9));
}

/** A coordinate within 0..=1, kept to four decimals. */
function coordinate(v: number): number {
  const x = Math.fround(v);
  if (!(x >= 0 && x <= 1)) throw refused("point_out_of_range");
  // The rounding of a 32-bit product, as the peers compute it; k / 10_000 is then the
  // shortest decimal of their 32-bit quotient.
  return Math.round(Math.fround(x * 10_000)) / 10_000;
}

const checkPoint = ([x, y]: Point): Point => [coordinate(x), coordinate(y)];

function checkPoints(points: Point[]): Point[] {
  if (points.length > MAX_POINTS_PER_MSG) throw refused("too_many_points");
  return points.map(checkPoint);
}

function checkWidth(width: number): number {
  const w = Math.fround(width);
  if (!(w >= MIN_WIDTH && w <= MAX_WIDTH)) throw refused("bad_width");
  return f32(w);
}

/** `#rrggbb` (hex digits in either case), lower case; `null` if it is not one. */
function colourOf(text: string): string | null {
  return /^#[0-9a-fA-F]{6}$/.test(text) ? text.toLowerCase() : null;
}

// Ordering: strokes by (clock, author, seq), removed ids by (author, seq), clear marks by
// (clock, author). Peer ids are ASCII, so string order is the peers' byte order.
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byKey = (a: Stroke, b: Stroke) => a.clock - b.clock || cmp(a.author, b.author) || a.seq - b.seq;
const byId = (a: StrokeId, b: StrokeId) => cmp(a.author, b.author) || a.seq - b.seq;
const byMark = (a: ClearMark, b: ClearMark) => a.clock - b.clock || cmp(a.author, b.author);
const covers = (mark: ClearMark, s: Stroke) => byMark({ clock: s.clock, author: s.author }, mark) <= 0;

const idKey = (author: string, seq: number) => `${seq}/${author}`;
const idOf = (s: StrokeId): StrokeId => ({ author: s.author, seq: s.seq });
const copy = (s: Stroke): Stroke => ({ ...s, points: [...s.points] });

/** One peer's whiteboard. Local operations return the message to send and the change to
 * show; remote messages return the changes to show. Peer ids are the room's (ASCII). */
export class BoardState {
  private clock = 0;
  private nextSeq = 0;
  /** In drawing order. */
  private readonly list: Stroke[] = [];
  private readonly held = new Map<string, Stroke>();
  private readonly removed = new Map<string, StrokeId>();
  private mark: ClearMark | null = null;
  /** Our strokes' seqs, oldest first, for undo. */
  private readonly own: number[] = [];

  constructor(readonly me: string) {}

  /** The strokes in drawing order (copies). */
  strokes(): Stroke[] {
    return this.list.map(copy);
  }

  /** How many strokes the board holds. */
  get size(): number {
    return this.list.length;
  }

  /** The highest clear so far. */
  get cleared(): ClearMark | null {
    return this.mark && { ...this.mark };
  }

  /** Starts one of our strokes; `seq` names it for `extend` and `end`. */
  begin(tool: Tool, colour: string, width: number, points: Point[]): BoardOp<"begin"> & { seq: number } {
    const c = colourOf(colour);
    if (c === null) throw refused("bad_colour");
    const w = checkWidth(width);
    const pts = checkPoints(points);
    if (this.list.length >= MAX_STROKES) throw refused("full");
    const seq = this.nextSeq++;
    const clock = ++this.clock;
    const stroke: Stroke = { author: this.me, seq, clock, tool, colour: c, width: w, points: pts, done: false };
    this.insert(stroke);
    this.own.push(seq);
    return {
      seq,
      msg: { t: "begin", seq, clock, tool, colour: c, width: w, points: [...pts] },
      change: { kind: "stroke", stroke: copy(stroke) },
    };
  }

  /** Adds points to our stroke `seq` (those past the stroke's limit are cut). */
  extend(seq: number, points: Point[]): BoardOp<"points"> {
    const pts = checkPoints(points);
    const stroke = this.held.get(idKey(this.me, seq));
    if (!stroke || stroke.done) throw new BoardError("no_such_stroke", `no stroke ${seq} in progress`);
    const from = stroke.points.length;
    const added = pts.slice(0, Math.max(0, MAX_POINTS_PER_STROKE - from));
    stroke.points.push(...added);
    return {
      msg: { t: "points", seq, from, points: added },
      change: { kind: "points", id: { author: this.me, seq }, from, points: [...added], done: false },
    };
  }

  /** Ends our stroke `seq`. */
  end(seq: number): BoardOp<"end"> {
    const stroke = this.held.get(idKey(this.me, seq));
    if (!stroke) throw new BoardError("no_such_stroke", `no stroke ${seq} in progress`);
    stroke.done = true;
    const id = { author: this.me, seq };
    return { msg: { t: "end", seq }, change: { kind: "points", id, from: stroke.points.length, points: [], done: true } };
  }

  /** Takes back our latest stroke still on the board; `null` if there is none. */
  undo(): BoardOp<"undo"> | null {
    for (let seq = this.own.pop(); seq !== undefined; seq = this.own.pop()) {
      const change = this.remove({ author: this.me, seq });
      if (change) return { msg: { t: "undo", seq }, change };
    }
    return null;
  }

  /** Clears the board for everyone. */
  clear(): BoardOp<"clear"> {
    const clock = ++this.clock;
    const ids = this.applyClear({ clock, author: this.me });
    return { msg: { t: "clear", clock }, change: { kind: "removed", ids } };
  }

  /** Our whole board as `sync` messages of about `maxBytes` each at most (a stroke larger
   * than that travels alone), for a peer that just joined. */
  syncMessages(maxBytes: number = SYNC_CHUNK_BYTES): BoardMsg[] {
    const out: BoardMsg[] = [];
    let batch: Stroke[] = [];
    let size = 0;
    for (const stroke of this.list) {
      // A stroke is about 20 bytes of JSON per point plus 150 of fields.
      const cost = 150 + 20 * stroke.points.length;
      if (batch.length > 0 && size + cost > maxBytes) {
        out.push({ t: "sync", strokes: batch, removed: [], cleared: null });
        batch = [];
        size = 0;
      }
      size += cost;
      batch.push(copy(stroke));
    }
    const removed = [...this.removed.values()].sort(byId).map(idOf);
    if (batch.length > 0 || removed.length > 0 || this.mark || out.length === 0) {
      const cleared = this.mark && { clock: this.mark.clock, author: this.mark.author };
      out.push({ t: "sync", strokes: batch, removed, cleared });
    }
    return out;
  }

  /** A message (the JSON value received on channel `board`) from peer `from`. Returns the
   * changes to show; throws a {@link BoardError} for one it refuses, which changes no
   * stroke, bar a `sync` refused part-way by a forged or surplus stroke (its earlier parts
   * stay merged, as on the app's peers). */
  handle(from: string, data: unknown): BoardChange[] {
    const msg = parseBoardMsg(data);
    // Every message but `sync` names no author: the sender is the author.
    switch (msg.t) {
      case "begin": {
        const { seq, clock, tool, colour } = msg;
        const width = checkWidth(msg.width);
        const points = checkPoints(msg.points);
        return this.merge({ author: from, seq, clock, tool, colour, width, points, done: false });
      }
      case "points":
        return this.addPoints({ author: from, seq: msg.seq }, msg.from, checkPoints(msg.points), false);
      case "end":
        return this.addPoints({ author: from, seq: msg.seq }, 0xffff_ffff, [], true);
      case "undo": {
        const change = this.remove({ author: from, seq: msg.seq });
        return change ? [change] : [];
      }
      case "clear": {
        this.clock = Math.max(this.clock, msg.clock);
        const ids = this.applyClear({ clock: msg.clock, author: from });
        return ids.length > 0 ? [{ kind: "removed", ids }] : [];
      }
      case "sync": {
        // Validate everything before changing anything.
        const strokes = msg.strokes.map((s): Stroke => {
          if (s.points.length > MAX_POINTS_PER_STROKE) throw refused("too_many_points");
          const points = s.points.map(checkPoint);
          const width = checkWidth(s.width);
          return { author: s.author, seq: s.seq, clock: s.clock, tool: s.tool, colour: s.colour, width, points, done: s.done };
        });
        const changes: BoardChange[] = [];
        if (msg.cleared) {
          this.clock = Math.max(this.clock, msg.cleared.clock);
          const ids = this.applyClear(msg.cleared);
          if (ids.length > 0) changes.push({ kind: "removed", ids });
        }
        const gone = msg.removed.flatMap((id) => this.remove(id)?.ids ?? []);
        if (gone.length > 0) changes.push({ kind: "removed", ids: gone });
        for (const stroke of strokes) changes.push(...this.merge(stroke));
        return changes;
      }
    }
  }

  /** Where `stroke` is or belongs in drawing order. */
  private position(stroke: Stroke): number {
    let [lo, hi] = [0, this.list.length];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (byKey(this.list[mid], stroke) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private insert(stroke: Stroke): void {
    this.list.splice(this.position(stroke), 0, stroke);
    this.held.set(idKey(stroke.author, stroke.seq), stroke);
  }

  /** Adds a stroke from a peer, or merges it with the copy we hold (points only grow). */
  private merge(stroke: Stroke): BoardChange[] {
    this.clock = Math.max(this.clock, stroke.clock);
    const key = idKey(stroke.author, stroke.seq);
    if (this.removed.has(key) || (this.mark && covers(this.mark, stroke))) return [];
    const held = this.held.get(key);
    if (held) {
      // The same id with another clock is a lie; the first one wins everywhere it was seen
      // first, so refuse it rather than fork the board.
      if (held.clock !== stroke.clock) throw malformed(`stroke ${stroke.seq} changed its clock`);
      const from = held.points.length;
      const longer = stroke.points.length > from;
      if (!longer && !(stroke.done && !held.done)) return [];
      const points = stroke.points.slice(from);
      held.points.push(...points);
      held.done ||= stroke.done;
      return [{ kind: "points", id: idOf(stroke), from, points, done: held.done }];
    }
    if (this.list.length >= MAX_STROKES) throw refused("full");
    this.insert(stroke);
    return [{ kind: "stroke", stroke: copy(stroke) }];
  }

  /** Points `start..` of a peer's stroke. Points we hold already are skipped; a gap (points
   * past the end of what we hold) is dropped: the author's own `sync`, which precedes its
   * later points on the same ordered link, carries them. */
  private addPoints(id: StrokeId, start: number, points: Point[], done: boolean): BoardChange[] {
    const stroke = this.held.get(idKey(id.author, id.seq));
    if (!stroke) return [];
    const held = stroke.points.length;
    const first = done && points.length === 0 ? held : start;
    if (first > held) return [];
    const skip = held - first;
    const added = points.slice(skip, skip + Math.max(0, MAX_POINTS_PER_STROKE - held));
    if (added.length === 0 && (!done || stroke.done)) return [];
    stroke.points.push(...added);
    stroke.done ||= done;
    return [{ kind: "points", id, from: held, points: added, done: stroke.done }];
  }

  private remove(id: StrokeId): Extract<BoardChange, { kind: "removed" }> | null {
    const key = idKey(id.author, id.seq);
    if (this.removed.size < MAX_REMOVED) this.removed.set(key, idOf(id));
    const stroke = this.held.get(key);
    if (!stroke) return null;
    this.held.delete(key);
    this.list.splice(this.position(stroke), 1);
    return { kind: "removed", ids: [idOf(id)] };
  }

  private applyClear(mark: ClearMark): StrokeId[] {
    if (this.mark && byMark(this.mark, mark) >= 0) return [];
    let n = 0;
    while (n < this.list.length && covers(mark, this.list[n])) n++;
    this.mark = { clock: mark.clock, author: mark.author };
    return this.list.splice(0, n).map((s) => {
      this.held.delete(idKey(s.author, s.seq));
      return idOf(s);
    });
  }
}

// Decoding: the structure the peers' decoder accepts, no more and no less, short of what
// JSON.parse hides (see parseBoardMsg). Values (ranges, counts) are checked by `handle`.

type Fields = Record<string, unknown>;
const isObject = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);

/** A struct's fields by name: from an object (unknown ones refused when `strict`; `optional`
 * may be absent) or, when `array`, an array of exactly the fields in order. */
type Form = { strict?: boolean; array?: boolean; optional?: string };
function fields(v: unknown, what: string, names: readonly string[], how: Form): Fields {
  if (how.array && Array.isArray(v)) {
    if (v.length !== names.length) throw malformed(`invalid length ${v.length}, expected ${what} of ${names.length} fields`);
    return Object.fromEntries(names.map((name, i) => [name, v[i]]));
  }
  if (!isObject(v)) throw malformed(`invalid type, expected ${what}`);
  if (how.strict) {
    const unknown = Object.keys(v).find((k) => !names.includes(k));
    if (unknown !== undefined) throw malformed(`unknown field \`${unknown}\` in ${what}`);
  }
  const missing = names.find((name) => name !== how.optional && !Object.hasOwn(v, name));
  if (missing !== undefined) throw malformed(`missing field \`${missing}\` in ${what}`);
  return v;
}

function integer(v: unknown, what: string, max: number): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max) return v;
  throw malformed(`invalid value ${JSON.stringify(v)} for ${what}`);
}
const u32 = (v: unknown, what: string) => integer(v, what, 0xffff_ffff);
// 64-bit clocks past 2^53 cannot be held exactly here, so they are refused.
const u64 = (v: unknown, what: string) => integer(v, what, Number.MAX_SAFE_INTEGER);

function float(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw malformed(`invalid type for ${what}, expected a number`);
  return v;
}

function points(v: unknown): Point[] {
  if (!Array.isArray(v)) throw malformed("invalid type for points, expected an array");
  return v.map((p): Point => {
    if (!Array.isArray(p) || p.length !== 2) throw malformed("a point is not [x, y]");
    return [float(p[0], "x"), float(p[1], "y")];
  });
}

function tool(v: unknown): Tool {
  // A unit variant may also come as a one-key object, `{"pen": null}` or `{"pen": {}}`.
  if (isObject(v)) {
    const entries = Object.entries(v);
    const [name, value] = entries.length === 1 ? entries[0] : [];
    if (value === null || (isObject(value) && Object.keys(value).length === 0)) v = name;
  }
  if (v === "pen" || v === "eraser") return v;
  throw malformed(`unknown tool ${JSON.stringify(v)}, expected \`pen\` or \`eraser\``);
}

function colour(v: unknown): string {
  const c = typeof v === "string" ? colourOf(v) : null;
  if (c === null) throw malformed(REASONS.bad_colour);
  return c;
}

function peerId(v: unknown): string {
  if (typeof v !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(v)) throw malformed(`invalid peer id ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") throw malformed(`invalid type for ${what}, expected a boolean`);
  return v;
}

function strokeId(v: unknown): StrokeId {
  const f = fields(v, "a stroke id", ["author", "seq"], { array: true });
  return { author: peerId(f.author), seq: u32(f.seq, "seq") };
}

function stroke(v: unknown): Stroke {
  // Extra fields are ignored here, and a stroke is always an object.
  const f = fields(v, "a stroke", ["author", "seq", "clock", "tool", "colour", "width", "points", "done"], {});
  return {
    author: peerId(f.author),
    seq: u32(f.seq, "seq"),
    clock: u64(f.clock, "clock"),
    tool: tool(f.tool),
    colour: colour(f.colour),
    width: float(f.width, "width"),
    points: points(f.points),
    done: bool(f.done, "done"),
  };
}

function clearMark(v: unknown): ClearMark | null {
  if (v === null || v === undefined) return null;
  const f = fields(v, "a clear mark", ["clock", "author"], { array: true });
  return { clock: u64(f.clock, "clock"), author: peerId(f.author) };
}

function list<T>(v: unknown, what: string, item: (v: unknown) => T): T[] {
  if (!Array.isArray(v)) throw malformed(`invalid type for ${what}, expected an array`);
  return v.map(item);
}

const SHAPES = {
  begin: ["seq", "clock", "tool", "colour", "width", "points"],
  points: ["seq", "from", "points"],
  end: ["seq"],
  undo: ["seq"],
  clear: ["clock"],
  sync: ["strokes", "removed", "cleared"],
} as const;

/** Decodes a board message's structure, as the app's peers do: the `t` tag, the fields its
 * kind has and no others, integers, `#rrggbb` colours (made lower case), `[x, y]` points,
 * peer ids. Like theirs it also takes the array form `["end", 3]`. Ranges and counts are
 * left to {@link BoardState.handle}. JSON.parse hides what they also refuse: integers
 * written `1.0` or `1e2`, repeated keys. */
export function parseBoardMsg(data: unknown): BoardMsg {
  let tag: unknown;
  let body: unknown;
  if (Array.isArray(data)) {
    if (data.length === 0) throw malformed("missing field `t`");
    [tag, body] = [data[0], data.slice(1)];
  } else if (isObject(data)) {
    if (!Object.hasOwn(data, "t")) throw malformed("missing field `t`");
    const { t, ...rest } = data;
    [tag, body] = [t, rest];
  } else {
    throw malformed("expected an object with a `t` field");
  }
  if (typeof tag !== "string" || !Object.hasOwn(SHAPES, tag)) throw malformed(`unknown variant ${JSON.stringify(tag)}`);
  const t = tag as keyof typeof SHAPES;
  const optional = t === "sync" ? "cleared" : undefined;
  const f = fields(body, `a \`${t}\` message`, SHAPES[t], { strict: true, array: true, optional });
  switch (t) {
    case "begin":
      return {
        t,
        seq: u32(f.seq, "seq"),
        clock: u64(f.clock, "clock"),
        tool: tool(f.tool),
        colour: colour(f.colour),
        width: float(f.width, "width"),
        points: points(f.points),
      };
    case "points":
      return { t, seq: u32(f.seq, "seq"), from: u32(f.from, "from"), points: points(f.points) };
    case "end":
    case "undo":
      return { t, seq: u32(f.seq, "seq") };
    case "clear":
      return { t, clock: u64(f.clock, "clock") };
    case "sync":
      return {
        t,
        strokes: list(f.strokes, "strokes", stroke),
        removed: list(f.removed, "removed", strokeId),
        cleared: clearMark(f.cleared),
      };
  }
}
