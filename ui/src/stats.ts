// Call quality: the indicator on each tile (three bars, lit by the link's grade) and the
// statistics panel, one card per connected peer with what the engine measures of its link:
// our estimate of the path, what goes each way, loss, round trip, the picture we send it
// and the one we receive, and how much of its audio had to be made up.
import type { LinkQuality, PeerView, QualityGrade } from "./bindings";
import { h } from "./dom";

export const GRADE_TEXT: Record<QualityGrade, string> = {
  good: "Good connection",
  fair: "Fair connection",
  poor: "Poor connection",
};

/** A rate in kbit/s as people read it. */
export function rate(kbps: number): string {
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${kbps} kbit/s`;
}

/** One line for a tile's tooltip. */
export function summary(q: LinkQuality, rttMs: number | null): string {
  const parts = [GRADE_TEXT[q.grade], `path ${rate(q.estimate_kbps)}`, `${q.loss_percent.toFixed(1)} % lost`];
  if (rttMs !== null) parts.push(`${Math.round(rttMs)} ms`);
  if (q.video) parts.push(`receiving ${q.video.height}p at ${q.video.fps} fps`);
  return parts.join(" · ");
}

/** The rows of one peer's card: [label, value]. */
export function rows(peer: PeerView): Array<[string, string]> {
  const q = peer.quality;
  if (q === null) return [];
  const size = (s: [number, number] | null) => (s === null ? "—" : `${s[0]}×${s[1]}`);
  const out: Array<[string, string]> = [
    ["Connection", GRADE_TEXT[q.grade]],
    ["Path estimate", rate(q.estimate_kbps)],
    ["Sending", rate(q.send_kbps)],
    ["Receiving", rate(q.receive_kbps)],
    ...(q.data_kbps > 0 ? ([["Data sent", rate(q.data_kbps)]] as Array<[string, string]>) : []),
    ["Loss", `${q.loss_percent.toFixed(1)} %`],
    ["Round trip", peer.rtt_ms === null ? "—" : `${Math.round(peer.rtt_ms)} ms`],
    ["Your camera to them", size(q.sending)],
  ];
  if (q.video) {
    const v = q.video;
    out.push(["Their camera", `${v.width}×${v.height}, ${v.fps} fps`]);
    out.push(["Freezes", v.freezes === 0 ? "none" : `${v.freezes} (${(v.freeze_total_ms / 1000).toFixed(1)} s)`]);
  }
  out.push(["Audio made up", `${q.concealed_percent.toFixed(1)} %`]);
  out.push(["Audio delay", `${q.audio_delay_ms} ms`]);
  return out;
}

/** Three bars, as many lit as the grade allows. */
export function indicator(): HTMLElement {
  const bar = (n: number) => h("i", { class: `bar bar${n}` });
  return h("span", { class: "tile-quality", role: "img" }, bar(1), bar(2), bar(3));
}

/** Shows a link's grade on a tile's indicator (hidden without one). */
export function showGrade(el: HTMLElement, q: LinkQuality | null, rttMs: number | null): void {
  el.hidden = q === null;
  if (q === null) return;
  el.dataset.grade = q.grade;
  const text = summary(q, rttMs);
  if (el.title !== text) el.title = text;
  el.setAttribute("aria-label", GRADE_TEXT[q.grade]);
}

export class StatsPanel {
  readonly element: HTMLElement;
  private readonly list: HTMLElement;

  constructor() {
    this.list = h("div", { class: "stats-list", id: "stats-list" });
    this.element = h(
      "aside",
      { class: "stats-panel", id: "stats-panel", hidden: true },
      h("h2", {}, "Call statistics"),
      this.list,
    );
    this.update([]);
  }

  get visible(): boolean {
    return !this.element.hidden;
  }

  show(on: boolean): void {
    this.element.hidden = !on;
  }

  /** Redraws from the roster: one card per peer with a measured link. */
  update(peers: PeerView[]): void {
    const measured = peers.filter((p) => p.state !== "me" && p.quality !== null);
    if (measured.length === 0) {
      this.list.replaceChildren(h("p", { class: "stats-empty" }, "No one connected yet."));
      return;
    }
    this.list.replaceChildren(
      ...measured.map((peer) =>
        h(
          "section",
          { class: "stats-card", "data-peer": peer.id, "data-grade": peer.quality?.grade ?? "" },
          h("h3", {}, peer.name),
          h("dl", {}, ...rows(peer).flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
        ),
      ),
    );
  }
}
