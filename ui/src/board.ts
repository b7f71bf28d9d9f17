// The whiteboard view. The Rust side owns the board (ordering, merging, validation); this
// keeps a mirror of its strokes, applies the changes it reports, and draws the strokes in
// the board's order: (clock, author, seq), the same on every peer.
import type { BoardChange, Point, Stroke, StrokeId, Tool } from "./bindings";
import { h } from "./dom";

export const COLOURS = ["#1f2937", "#e11d48", "#f59e0b", "#16a34a", "#2563eb", "#9333ea"];
export const WIDTHS = [2, 5, 12];
/** The board's shape: width / height. */
export const ASPECT = 16 / 10;

export function strokeKey(id: StrokeId): string {
  return `${id.author}/${id.seq}`;
}

function compare(a: Stroke, b: Stroke): number {
  if (a.clock !== b.clock) return a.clock - b.clock;
  if (a.author !== b.author) return a.author < b.author ? -1 : 1;
  return a.seq - b.seq;
}

/** The strokes the board shows, kept in drawing order. */
export class BoardModel {
  private strokes = new Map<string, Stroke>();
  private sorted: Stroke[] | null = [];

  apply(change: BoardChange): void {
    switch (change.kind) {
      case "stroke":
        this.strokes.set(strokeKey(change.stroke), { ...change.stroke, points: [...change.stroke.points] });
        this.sorted = null;
        break;
      case "points": {
        const stroke = this.strokes.get(strokeKey(change.id));
        if (!stroke) return;
        // Points only grow; `from` says where these start.
        stroke.points.length = Math.min(stroke.points.length, change.from);
        stroke.points.push(...change.points);
        stroke.done = change.done;
        break;
      }
      case "removed":
        for (const id of change.ids) this.strokes.delete(strokeKey(id));
        this.sorted = null;
        break;
    }
  }

  reset(strokes: Stroke[]): void {
    this.strokes.clear();
    for (const stroke of strokes) this.apply({ kind: "stroke", stroke });
  }

  ordered(): Stroke[] {
    if (!this.sorted) this.sorted = [...this.strokes.values()].sort(compare);
    return this.sorted;
  }

  get size(): number {
    return this.strokes.size;
  }
}

export function drawStroke(ctx: CanvasRenderingContext2D, stroke: Stroke, w: number, h: number): void {
  const pts = stroke.points;
  if (pts.length === 0) return;
  ctx.globalCompositeOperation = stroke.tool === "eraser" ? "destination-out" : "source-over";
  ctx.strokeStyle = stroke.colour;
  ctx.fillStyle = stroke.colour;
  ctx.lineWidth = Math.max(1, (stroke.width / 1000) * w);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0] * w, pts[0][1] * h, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0] * w, pts[0][1] * h);
  // Quadratic curves through the midpoints: smooth lines from sparse pointer samples.
  for (let i = 1; i < pts.length - 1; i++) {
    const mx = ((pts[i][0] + pts[i + 1][0]) / 2) * w;
    const my = ((pts[i][1] + pts[i + 1][1]) / 2) * h;
    ctx.quadraticCurveTo(pts[i][0] * w, pts[i][1] * h, mx, my);
  }
  const last = pts[pts.length - 1];
  ctx.lineTo(last[0] * w, last[1] * h);
  ctx.stroke();
}

export interface BoardActions {
  begin(tool: Tool, colour: string, width: number, points: Point[]): Promise<number>;
  points(seq: number, points: Point[]): Promise<void>;
  end(seq: number): Promise<void>;
  pointer(at: [number, number] | null): void;
}

/** The drawing surface: a canvas of fixed aspect ratio, and the pointer input on it. */
export class BoardView {
  readonly element: HTMLElement;
  readonly surface: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  tool: Tool = "pen";
  colour = COLOURS[0];
  width = WIDTHS[1];
  private dirty = true;
  private drawing: { seq: number | null; pending: Point[]; busy: boolean; ended: boolean } | null = null;

  constructor(
    readonly model: BoardModel,
    private readonly actions: BoardActions,
  ) {
    this.canvas = h("canvas", { class: "board-canvas", "aria-label": "Whiteboard" });
    this.surface = h("div", { class: "board-surface", id: "board" }, this.canvas);
    this.element = h("div", { class: "board-frame" }, this.surface);
    this.surface.addEventListener("pointerdown", (e) => this.down(e));
    this.surface.addEventListener("pointermove", (e) => this.move(e));
    this.surface.addEventListener("pointerup", (e) => this.up(e));
    this.surface.addEventListener("pointercancel", (e) => this.up(e));
    this.surface.addEventListener("pointerleave", () => this.actions.pointer(null));
  }

  /** Fraction of the board under a pointer event, clamped to 0..1. */
  at(e: { clientX: number; clientY: number }): Point {
    const r = this.surface.getBoundingClientRect();
    const f = (v: number, lo: number, size: number) => Math.min(1, Math.max(0, size > 0 ? (v - lo) / size : 0));
    return [f(e.clientX, r.left, r.width), f(e.clientY, r.top, r.height)];
  }

  private down(e: PointerEvent): void {
    if (e.button !== 0) return;
    this.surface.setPointerCapture?.(e.pointerId);
    const first = this.at(e);
    const stroke = { seq: null as number | null, pending: [] as Point[], busy: true, ended: false };
    this.drawing = stroke;
    this.actions
      .begin(this.tool, this.colour, this.width, [first])
      .then((seq) => {
        stroke.seq = seq;
        stroke.busy = false;
        void this.flush(stroke);
      })
      .catch(() => {
        if (this.drawing === stroke) this.drawing = null;
      });
  }

  private move(e: PointerEvent): void {
    const p = this.at(e);
    this.actions.pointer(p);
    if (!this.drawing) return;
    this.drawing.pending.push(p);
    void this.flush(this.drawing);
  }

  private up(e: PointerEvent): void {
    const stroke = this.drawing;
    if (!stroke) return;
    if (e.type === "pointerup") stroke.pending.push(this.at(e));
    stroke.ended = true;
    this.drawing = null;
    void this.flush(stroke);
  }

  /** Sends buffered points, one request at a time (points coalesce while one is in flight). */
  private async flush(stroke: { seq: number | null; pending: Point[]; busy: boolean; ended: boolean }) {
    if (stroke.busy || stroke.seq === null) return;
    stroke.busy = true;
    try {
      while (stroke.pending.length > 0) {
        const batch = stroke.pending.splice(0, 256);
        await this.actions.points(stroke.seq, batch);
      }
      if (stroke.ended) {
        stroke.ended = false;
        await this.actions.end(stroke.seq);
      }
    } catch {
      // The stroke was refused (board full, room closed); the error was shown elsewhere.
    } finally {
      stroke.busy = false;
    }
    if (stroke.pending.length > 0 || stroke.ended) void this.flush(stroke);
  }

  invalidate(): void {
    this.dirty = true;
  }

  /** Fits the surface into the frame at the board's aspect ratio, and redraws if needed. */
  render(): void {
    if (!this.dirty) return;
    const frame = this.element.getBoundingClientRect();
    let w = frame.width;
    let ht = w / ASPECT;
    if (ht > frame.height) {
      ht = frame.height;
      w = ht * ASPECT;
    }
    this.surface.style.width = `${Math.floor(w)}px`;
    this.surface.style.height = `${Math.floor(ht)}px`;
    const ratio = window.devicePixelRatio || 1;
    const pw = Math.max(1, Math.floor(w * ratio));
    const ph = Math.max(1, Math.floor(ht * ratio));
    if (this.canvas.width !== pw || this.canvas.height !== ph) {
      this.canvas.width = pw;
      this.canvas.height = ph;
    }
    this.dirty = false;
    const ctx = this.canvas.getContext?.("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, pw, ph);
    for (const stroke of this.model.ordered()) drawStroke(ctx, stroke, pw, ph);
    ctx.globalCompositeOperation = "source-over";
  }
}
