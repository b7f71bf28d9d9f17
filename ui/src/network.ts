// The network panel: how a large room is laid out. Cells sit on a ring, ours highlighted;
// our cell is drawn large in the middle with its peers (ourselves marked), and a line runs
// from us to each cell we bridge to. Cells are shaded by how many of their peers we know
// of. A full-mesh room shows one sentence instead.
import type { NetworkView } from "./bindings";
import { h } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const SIZE = 320;
const CENTRE = SIZE / 2;
const RING = 138;
const INNER = 58;

export interface CellDot {
  cell: number;
  x: number;
  y: number;
  r: number;
  own: boolean;
  bridged: boolean;
  known: number;
}

export interface PeerDot {
  peer: string;
  x: number;
  y: number;
  me: boolean;
}

export interface NetworkPicture {
  cells: CellDot[];
  mates: PeerDot[];
  bridges: Array<{ peer: string; cell: number; x: number; y: number }>;
}

/** Where everything goes; a pure function of the view, so it is tested without a DOM. */
export function layoutNetwork(view: NetworkView, me: string): NetworkPicture {
  const count = Math.max(1, view.cells);
  const known = new Map<number, number>();
  for (const k of view.known) known.set(k.cell, (known.get(k.cell) ?? 0) + 1);
  const bridged = new Set(view.bridges.map((b) => b.cell));
  const r = Math.max(1.5, Math.min(9, (Math.PI * RING) / count - 1));
  const cells: CellDot[] = [];
  for (let c = 0; c < count; c++) {
    const angle = (2 * Math.PI * c) / count - Math.PI / 2;
    cells.push({
      cell: c,
      x: CENTRE + RING * Math.cos(angle),
      y: CENTRE + RING * Math.sin(angle),
      r: c === view.cell ? r + 2 : r,
      own: c === view.cell,
      bridged: bridged.has(c),
      known: known.get(c) ?? 0,
    });
  }
  const mateIds = view.known.filter((k) => k.cell === view.cell).map((k) => k.peer);
  if (!mateIds.includes(me)) mateIds.unshift(me);
  const mates = mateIds.map((peer, i) => {
    const angle = (2 * Math.PI * i) / mateIds.length - Math.PI / 2;
    const spread = mateIds.length === 1 ? 0 : INNER * 0.6;
    return { peer, x: CENTRE + spread * Math.cos(angle), y: CENTRE + spread * Math.sin(angle), me: peer === me };
  });
  const bridges = view.bridges.map((b) => {
    const target = cells[b.cell] ?? cells[0];
    return { peer: b.peer, cell: b.cell, x: target.x, y: target.y };
  });
  return { cells, mates, bridges };
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class NetworkPanel {
  readonly element: HTMLElement;
  private readonly drawing: HTMLElement;
  private readonly caption: HTMLElement;
  private view: NetworkView | null = null;

  constructor(private readonly me: string) {
    this.caption = h("p", { class: "network-caption", id: "network-caption" });
    this.drawing = h("div", { class: "network-drawing", id: "network-drawing" });
    this.element = h("aside", { class: "network-panel", id: "network-panel", hidden: true }, h("h2", {}, "Network"), this.caption, this.drawing);
    this.showMesh(1);
  }

  get visible(): boolean {
    return !this.element.hidden;
  }

  show(on: boolean): void {
    this.element.hidden = !on;
  }

  /** A full-mesh room of `people` (ourselves included). */
  showMesh(people: number): void {
    if (this.view) return;
    const links = people - 1;
    this.caption.textContent =
      people <= 1 ? "Full mesh. Nobody else is here yet." : `Full mesh: you link to each of the other ${links} ${links === 1 ? "person" : "people"} directly.`;
    this.drawing.replaceChildren();
  }

  update(view: NetworkView): void {
    this.view = view;
    const bridges = view.bridges.length;
    this.caption.textContent =
      `Large room: ${view.cells} ${view.cells === 1 ? "cell" : "cells"}. You are in cell ${view.cell} with ${view.cell_size - 1} ` +
      `${view.cell_size === 2 ? "other" : "others"}` +
      (bridges > 0 ? `, and bridge to ${bridges} other ${bridges === 1 ? "cell" : "cells"}.` : ".");
    this.element.dataset.cell = String(view.cell);
    this.element.dataset.cells = String(view.cells);
    this.element.dataset.bridges = String(bridges);
    this.draw(layoutNetwork(view, this.me));
  }

  private draw(picture: NetworkPicture): void {
    const root = svg("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, class: "network-svg", role: "img" });
    root.appendChild(svg("circle", { cx: CENTRE, cy: CENTRE, r: INNER, class: "network-own-cell" }));
    const me = picture.mates.find((m) => m.me) ?? { x: CENTRE, y: CENTRE };
    for (const b of picture.bridges) {
      root.appendChild(svg("line", { x1: me.x, y1: me.y, x2: b.x, y2: b.y, class: "network-bridge", "data-cell": b.cell }));
    }
    for (const c of picture.cells) {
      const cls = ["network-cell", c.own ? "own" : "", c.bridged ? "bridged" : "", c.known > 0 ? "known" : ""].filter(Boolean).join(" ");
      const dot = svg("circle", { cx: c.x.toFixed(1), cy: c.y.toFixed(1), r: c.r.toFixed(1), class: cls, "data-cell": c.cell });
      const title = svg("title", {});
      title.textContent = `cell ${c.cell}${c.known ? `: ${c.known} known` : ""}`;
      dot.appendChild(title);
      root.appendChild(dot);
    }
    for (const m of picture.mates) {
      root.appendChild(svg("circle", { cx: m.x.toFixed(1), cy: m.y.toFixed(1), r: m.me ? 7 : 5, class: m.me ? "network-me" : "network-mate" }));
    }
    this.drawing.replaceChildren(root);
  }
}
