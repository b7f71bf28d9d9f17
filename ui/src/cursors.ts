// Other peers' pointers over the shared area: a named arrow in the peer's colour, eased
// toward each reported position so 20 updates a second look like continuous motion.
import { h } from "./dom";

interface Cursor {
  el: HTMLElement;
  x: number;
  y: number;
  tx: number;
  ty: number;
}

const ARROW =
  "M2 1 L2 17 L6.5 12.8 L9.6 19.4 L12.4 18.1 L9.4 11.6 L15.5 11.4 Z";

export class Cursors {
  readonly layer: HTMLElement;
  private cursors = new Map<string, Cursor>();

  constructor() {
    this.layer = h("div", { class: "cursor-layer", "aria-hidden": "true" });
  }

  /** Peer `peer` (named `name`, coloured `colour`) points at (x, y), fractions of the area. */
  move(peer: string, name: string, colour: string, x: number, y: number): void {
    let cursor = this.cursors.get(peer);
    if (!cursor) {
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 20 20");
      svg.setAttribute("class", "cursor-arrow");
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", ARROW);
      path.setAttribute("fill", colour);
      svg.appendChild(path);
      const label = h("span", { class: "cursor-name" }, name);
      label.style.background = colour;
      const el = h("div", { class: "cursor", "data-peer": peer });
      el.append(svg, label);
      this.layer.appendChild(el);
      cursor = { el, x, y, tx: x, ty: y };
      this.cursors.set(peer, cursor);
    }
    cursor.tx = x;
    cursor.ty = y;
    cursor.el.dataset.x = x.toFixed(4);
    cursor.el.dataset.y = y.toFixed(4);
  }

  rename(peer: string, name: string): void {
    const label = this.cursors.get(peer)?.el.querySelector(".cursor-name");
    if (label && label.textContent !== name) label.textContent = name;
  }

  remove(peer: string): void {
    this.cursors.get(peer)?.el.remove();
    this.cursors.delete(peer);
  }

  has(peer: string): boolean {
    return this.cursors.has(peer);
  }

  /** One animation frame: ease every cursor a third of the way to its target. Returns
   * whether any cursor is still moving. */
  step(ease = 0.35): boolean {
    let moving = false;
    for (const c of this.cursors.values()) {
      const fromX = c.el.style.left;
      const fromY = c.el.style.top;
      c.x += (c.tx - c.x) * ease;
      c.y += (c.ty - c.y) * ease;
      if (Math.abs(c.tx - c.x) < 1e-4) c.x = c.tx;
      if (Math.abs(c.ty - c.y) < 1e-4) c.y = c.ty;
      c.el.style.left = `${(c.x * 100).toFixed(3)}%`;
      c.el.style.top = `${(c.y * 100).toFixed(3)}%`;
      moving ||= c.x !== c.tx || c.y !== c.ty || c.el.style.left !== fromX || c.el.style.top !== fromY;
    }
    return moving;
  }
}

/** Calls `send` at most once per `interval` ms, always with the latest value. */
export function throttle<T>(interval: number, send: (value: T) => void, now: () => number = () => performance.now()) {
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let latest: T;
  const fire = () => {
    timer = null;
    last = now();
    send(latest);
  };
  return (value: T) => {
    latest = value;
    if (timer) return;
    const wait = last + interval - now();
    if (wait <= 0) fire();
    else timer = setTimeout(fire, wait);
  };
}
