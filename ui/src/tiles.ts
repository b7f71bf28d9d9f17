// One tile per participant, ourselves first, in a grid that adapts to the count. Each tile
// has a media area (the avatar today; video goes there), the name, the link state and the
// latency from the engine's ping.
import type { PeerView } from "./bindings";
import { h, initials } from "./dom";

const STATE_TEXT: Record<PeerView["state"], string> = {
  me: "You",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
};

/** A microphone with a stroke through it. */
function mutedIcon(): SVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  for (const d of ["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5 11a7 7 0 0 0 14 0M12 18v3", "M3 3l18 18"]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linecap", "round");
    svg.appendChild(path);
  }
  return svg;
}

/** Columns and rows for `n` tiles: as square as possible, wider than tall. */
export function gridFor(n: number): { cols: number; rows: number } {
  const count = Math.max(1, n);
  const cols = Math.ceil(Math.sqrt(count));
  return { cols, rows: Math.ceil(count / cols) };
}

export class Tiles {
  readonly element: HTMLElement;
  private tiles = new Map<string, HTMLElement>();

  constructor() {
    this.element = h("section", { class: "tiles", id: "tiles", "aria-label": "Participants" });
  }

  update(peers: PeerView[]): void {
    const keep = new Set(peers.map((p) => p.id));
    for (const [id, el] of this.tiles) {
      if (!keep.has(id)) {
        el.remove();
        this.tiles.delete(id);
      }
    }
    peers.forEach((peer, index) => {
      let tile = this.tiles.get(peer.id);
      if (!tile) {
        tile = h("div", { class: "tile", "data-peer": peer.id });
        this.tiles.set(peer.id, tile);
      }
      this.fill(tile, peer);
      if (this.element.children[index] !== tile) this.element.insertBefore(tile, this.element.children[index] ?? null);
    });
    const { cols, rows } = gridFor(peers.length);
    this.element.style.setProperty("--cols", String(cols));
    this.element.style.setProperty("--rows", String(rows));
    this.element.dataset.count = String(peers.length);
  }

  /** Builds a tile once; later updates change its text in place (video goes in its media area). */
  private fill(tile: HTMLElement, peer: PeerView): void {
    tile.dataset.state = peer.state;
    tile.dataset.speaking = String(peer.speaking);
    tile.dataset.muted = String(peer.muted === true);
    if (!tile.firstChild) {
      tile.append(
        h("div", { class: "tile-media" }, h("div", { class: "avatar" })),
        h(
          "div",
          { class: "tile-bar" },
          h("span", { class: "tile-name" }),
          h("span", { class: "tile-state" }, h("i", { class: "dot" }), h("span", { class: "tile-state-text" })),
          h("span", { class: "tile-rtt", title: "Round-trip time" }),
          h("span", { class: "tile-muted", title: "Microphone muted", "aria-label": "Microphone muted" }, mutedIcon()),
        ),
      );
    }
    const part = (css: string) => tile.querySelector(css) as HTMLElement;
    const set = (css: string, text: string) => {
      const el = part(css);
      if (el.textContent !== text) el.textContent = text;
    };
    set(".avatar", initials(peer.name));
    part(".avatar").style.background = peer.colour;
    set(".tile-name", peer.state === "me" ? `${peer.name} (you)` : peer.name);
    part(".tile-state").className = `tile-state ${peer.state}`;
    set(".tile-state-text", STATE_TEXT[peer.state]);
    const rtt = peer.rtt_ms === null ? "" : `${peer.rtt_ms < 1 ? "<1" : Math.round(peer.rtt_ms)} ms`;
    set(".tile-rtt", rtt);
    part(".tile-rtt").hidden = rtt === "";
    part(".tile-muted").hidden = peer.muted !== true;
  }
}
