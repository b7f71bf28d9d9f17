// One tile per participant, ourselves first, in a grid that adapts to the count, and one per
// shared screen. Each tile has a media area (the avatar, or the video on a canvas), the
// name, the link state, the latency from the engine's ping and the link's quality. While someone shares a
// screen the layout is the presenter's: the screen large, everyone else in a strip beside
// it; the user can switch back to the grid. In a presentation (`stage`) the tiles are the
// presenters', the first one large.
import type { PeerView } from "./bindings";
import { h, icon, initials } from "./dom";
import { indicator, showGrade } from "./stats";

const STATE_TEXT: Record<PeerView["state"], string> = {
  me: "You",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  in_room: "Watching",
  presenting: "Presenting",
  on_stage: "On stage",
  refused: "Not admitted",
};

/** How a link's path reads in its tile's tooltip. */
const PATH_TEXT: Record<string, string> = {
  host: "Direct link",
  srflx: "Direct link through a NAT",
  relay: "Relayed through a TURN server",
};

/** A microphone with a stroke through it. */
const mutedIcon = () => icon(["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M5 11a7 7 0 0 0 14 0M12 18v3", "M3 3l18 18"]);

/** A shield with a check mark: the safety code (lit when the peer is verified). */
const shieldIcon = () => icon(["M12 3l7 3v5c0 4.5-3 8.5-7 10-4-1.5-7-5.5-7-10V6z", "M9 12l2 2 4-4"]);

/** A picture packet from the video channel (see src-tauri/src/video.rs). */
export interface Picture {
  /** The tile: a peer id (its camera) or `ID/screen` (its shared screen). */
  peer: string;
  width: number;
  height: number;
  rgba: Uint8ClampedArray<ArrayBuffer>;
}

/** Reads a picture packet; `null` if it is not one. */
export function readPicture(buffer: ArrayBuffer): Picture | null {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 6 || bytes[0] !== 1) return null;
  const idLength = bytes[1];
  const at = 2 + idLength;
  if (bytes.length < at + 4) return null;
  const peer = new TextDecoder().decode(bytes.subarray(2, at));
  const view = new DataView(buffer, at, 4);
  const width = view.getUint16(0, true);
  const height = view.getUint16(2, true);
  const start = at + 4;
  if (bytes.length !== start + width * height * 4) return null;
  return { peer, width, height, rgba: new Uint8ClampedArray(buffer, start, width * height * 4) };
}

/** Counts a video element's pictures on its tile (`data-frames`), as drawn pictures are. */
function countFrames(tile: HTMLElement, video: HTMLVideoElement): void {
  if (!("requestVideoFrameCallback" in video)) return;
  const next = () =>
    video.requestVideoFrameCallback(() => {
      if (!video.isConnected && tile.dataset.frames) return;
      tile.dataset.frames = String(Number(tile.dataset.frames ?? "0") + 1);
      next();
    });
  next();
}

/** Columns and rows for `n` tiles: as square as possible, wider than tall. */
export function gridFor(n: number): { cols: number; rows: number } {
  const count = Math.max(1, n);
  const cols = Math.ceil(Math.sqrt(count));
  return { cols, rows: Math.ceil(count / cols) };
}

/** The tile name of a peer's shared screen. */
export const screenTile = (peer: string) => `${peer}/screen`;

export class Tiles {
  readonly element: HTMLElement;
  private tiles = new Map<string, HTMLElement>();
  /** Streams shown in place of drawn pictures (a browser's own media), by tile. */
  private streams = new Map<string, MediaStream>();
  /** The user asked for the grid while a screen is shared. */
  private preferGrid = false;
  /** A presentation: the first tile (a presenter) is large while there are several. */
  private stage = false;

  constructor() {
    this.element = h("section", { class: "tiles", id: "tiles", "aria-label": "Participants", "data-layout": "grid" });
  }

  /** Whether someone shares a screen now. */
  get presenting(): boolean {
    return this.element.querySelector(".tile[data-screen='true']") !== null;
  }

  /** In a presentation, the first tile is large like a shared screen. */
  setStage(on: boolean): void {
    this.stage = on;
    this.layOut();
  }

  /** Whether the first tile is shown large (a shared screen, or a presenter). */
  get featured(): boolean {
    return this.presenting || (this.stage && this.tiles.size > 1);
  }

  /** Shows shared screens large (`presenter`, the default while one is shared) or all tiles alike. */
  setLayout(layout: "presenter" | "grid"): void {
    this.preferGrid = layout === "grid";
    this.layOut();
  }

  update(peers: PeerView[]): void {
    // Shared screens first: in the presenter layout the first tile is the large one.
    const entries: Array<{ key: string; peer: PeerView; screen: boolean }> = [
      ...peers.filter((p) => p.screen).map((peer) => ({ key: screenTile(peer.id), peer, screen: true })),
      ...peers.map((peer) => ({ key: peer.id, peer, screen: false })),
    ];
    const keep = new Set(entries.map((e) => e.key));
    for (const [id, el] of this.tiles) {
      if (!keep.has(id)) {
        el.remove();
        this.tiles.delete(id);
      }
    }
    entries.forEach(({ key, peer, screen }, index) => {
      let tile = this.tiles.get(key);
      if (!tile) {
        tile = h("div", { class: screen ? "tile screen" : "tile", "data-peer": key });
        this.tiles.set(key, tile);
      }
      this.fill(tile, peer, screen);
      if (this.streams.has(key)) this.showStream(tile, key);
      if (this.element.children[index] !== tile) this.element.insertBefore(tile, this.element.children[index] ?? null);
    });
    const { cols, rows } = gridFor(entries.length);
    this.element.style.setProperty("--cols", String(cols));
    this.element.style.setProperty("--rows", String(rows));
    this.element.style.setProperty("--strip", String(Math.max(1, entries.length - 1)));
    this.element.dataset.count = String(entries.length);
    if (!this.featured) this.preferGrid = false;
    this.layOut();
  }

  private layOut(): void {
    this.element.dataset.layout = this.featured && !this.preferGrid ? "presenter" : "grid";
  }

  /** Draws a peer's picture on its tile's canvas. */
  draw(picture: Picture): void {
    const tile = this.tiles.get(picture.peer);
    const canvas = tile?.querySelector<HTMLCanvasElement>(".tile-video");
    const context = canvas?.getContext("2d");
    if (!canvas || !context) return;
    if (canvas.width !== picture.width) canvas.width = picture.width;
    if (canvas.height !== picture.height) canvas.height = picture.height;
    context.putImageData(new ImageData(picture.rgba, picture.width, picture.height), 0, 0);
    tile!.dataset.frames = String(Number(tile!.dataset.frames ?? "0") + 1);
  }

  /** Shows `stream` on a tile (a browser decodes and draws it itself); `null` goes back to
   * drawn pictures. Kept for a tile that does not exist yet. */
  attach(key: string, stream: MediaStream | null): void {
    if (stream) this.streams.set(key, stream);
    else this.streams.delete(key);
    const tile = this.tiles.get(key);
    if (tile) this.showStream(tile, key);
  }

  private showStream(tile: HTMLElement, key: string): void {
    const media = tile.querySelector(".tile-media");
    const current = tile.querySelector<HTMLCanvasElement | HTMLVideoElement>(".tile-video");
    if (!media || !current) return;
    const stream = this.streams.get(key) ?? null;
    if (current instanceof HTMLVideoElement && current.srcObject === stream) return;
    if (!stream) {
      if (current instanceof HTMLVideoElement) current.replaceWith(h("canvas", { class: "tile-video" }));
      return;
    }
    // Audio plays elsewhere: the tile's video is always muted.
    const video = h("video", { class: "tile-video", autoplay: true, playsinline: true });
    video.muted = true;
    video.srcObject = stream;
    countFrames(tile, video);
    current.replaceWith(video);
    void video.play().catch(() => {});
  }

  /** The size, in device pixels, each peer's video is shown at (peers with video only). */
  videoSizes(): { peer: string; width: number; height: number }[] {
    const ratio = window.devicePixelRatio || 1;
    const sizes = [];
    for (const [peer, tile] of this.tiles) {
      if (tile.dataset.video !== "true") continue;
      const media = tile.querySelector(".tile-media") as HTMLElement;
      const { width, height } = media.getBoundingClientRect();
      sizes.push({ peer, width: Math.round(width * ratio), height: Math.round(height * ratio) });
    }
    return sizes;
  }

  /** Builds a tile once; later updates change its text in place (video goes in its media area). */
  private fill(tile: HTMLElement, peer: PeerView, screen: boolean): void {
    tile.dataset.state = peer.state;
    tile.dataset.speaking = String(!screen && peer.speaking);
    tile.dataset.muted = String(!screen && peer.muted === true);
    tile.dataset.video = String(screen || peer.video);
    tile.dataset.screen = String(screen);
    // Our own camera is shown as in a mirror, as people expect to see themselves.
    tile.dataset.mirrored = String(!screen && peer.state === "me");
    if (!tile.firstChild) {
      tile.append(
        h("div", { class: "tile-media" }, h("div", { class: "avatar" }), h("canvas", { class: "tile-video" })),
        h(
          "div",
          { class: "tile-bar" },
          h("span", { class: "tile-name" }),
          h("span", { class: "tile-state" }, h("i", { class: "dot" }), h("span", { class: "tile-state-text" })),
          h("span", { class: "tile-path", title: "Relayed through a TURN server" }, "relay"),
          h("span", { class: "tile-rtt", title: "Round-trip time" }),
          indicator(),
          h("button", { class: "tile-safety", type: "button", title: "Safety code", "aria-label": "Safety code" }, shieldIcon()),
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
    const who = peer.state === "me" ? `${peer.name} (you)` : peer.name;
    set(".tile-name", screen ? `${who}: screen` : who);
    part(".tile-state").className = `tile-state ${peer.state}`;
    set(".tile-state-text", STATE_TEXT[peer.state]);
    const state = part(".tile-state");
    if (state.title !== STATE_TEXT[peer.state]) state.title = STATE_TEXT[peer.state];
    const rtt = peer.rtt_ms === null ? "" : `${peer.rtt_ms < 1 ? "<1" : Math.round(peer.rtt_ms)} ms`;
    set(".tile-rtt", rtt);
    part(".tile-rtt").hidden = rtt === "";
    showGrade(part(".tile-quality"), screen ? null : peer.quality, peer.rtt_ms);
    part(".tile-muted").hidden = screen || peer.muted !== true;
    part(".tile-path").hidden = screen || peer.path !== "relay";
    const bar = part(".tile-bar");
    const route = screen || peer.path === null ? "" : PATH_TEXT[peer.path] ?? peer.path;
    if (bar.title !== route) bar.title = route;
    const safety = part(".tile-safety");
    safety.hidden = screen || peer.safety_code === null;
    safety.dataset.peer = peer.id;
    safety.dataset.verified = String(peer.verified);
    safety.dataset.code = peer.safety_code ?? "";
    safety.title = peer.verified ? "Verified: you compared the safety code" : "Safety code (not verified)";
  }
}
