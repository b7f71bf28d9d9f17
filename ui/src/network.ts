// The network panel: how a large room is laid out. Cells sit on a ring, ours highlighted;
// our cell is drawn large in the middle with its peers (ourselves marked), and a line runs
// from us to each cell we bridge to. Cells are shaded by how many of their peers we know
// of. In a tree we sit in the middle, our parent above and our children below; in a relay
// network our neighbours sit round us. A full-mesh room shows one sentence instead.
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

/** Our place in a tree: parent above, us, children in a row below. */
export interface TreePicture {
  parent: PeerDot | null;
  me: PeerDot;
  children: PeerDot[];
}

export function layoutTree(parent: string | null, children: string[], me: string): TreePicture {
  const row = (ids: string[], y: number) =>
    ids.map((peer, i) => ({ peer, x: (SIZE * (i + 1)) / (ids.length + 1), y, me: false }));
  return {
    parent: parent === null ? null : { peer: parent, x: CENTRE, y: SIZE * 0.18, me: false },
    me: { peer: me, x: CENTRE, y: CENTRE, me: true },
    children: row(children, SIZE * 0.82),
  };
}

/** Our relay neighbours round us. */
export function layoutRelay(neighbours: string[], me: string): { me: PeerDot; around: PeerDot[] } {
  return {
    me: { peer: me, x: CENTRE, y: CENTRE, me: true },
    around: neighbours.map((peer, i) => {
      const angle = (2 * Math.PI * i) / Math.max(1, neighbours.length) - Math.PI / 2;
      return { peer, x: CENTRE + RING * 0.8 * Math.cos(angle), y: CENTRE + RING * 0.8 * Math.sin(angle), me: false };
    }),
  };
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
  /** The room is a tree or a relay network: its own picture stays, whatever the roster says. */
  private overlay = false;

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
    if (this.view || this.overlay) return;
    const links = people - 1;
    this.caption.textContent =
      people <= 1 ? "Full mesh. Nobody else is here yet." : `Full mesh: you link to each of the other ${links} ${links === 1 ? "person" : "people"} directly.`;
    this.drawing.replaceChildren();
  }

  update(view: NetworkView): void {
    this.view = view;
    const bridges = view.bridges.length;
    const others = view.cell_size - 1;
    // A room of one cell is a full mesh that splits into cells as it grows.
    this.caption.textContent =
      view.cells === 1
        ? `Full mesh, one cell: you link to each of the other ${others} ${others === 1 ? "person" : "people"} directly. The room splits into cells as it grows.`
        : `Large room: ${view.cells} cells. You are in cell ${view.cell} with ${others} ` +
          `${others === 1 ? "other" : "others"}` +
          (bridges > 0 ? `, and bridge to ${bridges} other ${bridges === 1 ? "cell" : "cells"}.` : ".");
    this.element.dataset.cell = String(view.cell);
    this.element.dataset.cells = String(view.cells);
    this.element.dataset.bridges = String(bridges);
    this.draw(layoutNetwork(view, this.me));
  }

  /** Our place in a tree room. */
  updateTree(parent: string | null, children: string[], depth: number | null, isRoot: boolean): void {
    this.view = null;
    this.overlay = true;
    const kids = `${children.length} ${children.length === 1 ? "child" : "children"}`;
    this.caption.textContent = isRoot
      ? `Broadcast tree: you are its root, with ${kids}.`
      : parent === null
        ? "Broadcast tree: finding a place in it."
        : `Broadcast tree: depth ${depth ?? "?"}, one parent and ${kids}. Messages travel along the tree.`;
    this.element.dataset.depth = depth === null ? "" : String(depth);
    this.element.dataset.children = String(children.length);
    const picture = layoutTree(parent, children, this.me);
    const root = svg("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, class: "network-svg", role: "img" });
    const link = (a: PeerDot, b: PeerDot) => root.appendChild(svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: "network-bridge" }));
    if (picture.parent) link(picture.me, picture.parent);
    for (const c of picture.children) link(picture.me, c);
    const dot = (p: PeerDot, cls: string) => {
      const d = svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: p.me ? 9 : 6, class: cls });
      const title = svg("title", {});
      title.textContent = p.me ? "you" : p.peer.slice(0, 8);
      d.appendChild(title);
      root.appendChild(d);
    };
    if (picture.parent) dot(picture.parent, "network-cell bridged");
    for (const c of picture.children) dot(c, "network-mate");
    dot(picture.me, "network-me");
    this.drawing.replaceChildren(root);
  }

  /** Our direct neighbours in a relay room. */
  updateRelay(neighbours: string[]): void {
    this.view = null;
    this.overlay = true;
    const n = neighbours.length;
    this.caption.textContent =
      n === 0
        ? "Relay network: no direct link yet."
        : `Relay network: you link to ${n} ${n === 1 ? "peer" : "peers"} directly; messages for the others are relayed.`;
    this.element.dataset.neighbours = String(n);
    const picture = layoutRelay(neighbours, this.me);
    const root = svg("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, class: "network-svg", role: "img" });
    for (const p of picture.around) root.appendChild(svg("line", { x1: CENTRE, y1: CENTRE, x2: p.x, y2: p.y, class: "network-bridge" }));
    for (const p of picture.around) root.appendChild(svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 6, class: "network-mate" }));
    root.appendChild(svg("circle", { cx: CENTRE, cy: CENTRE, r: 9, class: "network-me" }));
    this.drawing.replaceChildren(root);
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
