// The viewers of a presentation, listed beside the presenters' tiles: raised hands first
// (in the order they went up), then everyone else by name. A presenter sees every viewer;
// a viewer sees the others listed (viewers never link to each other, so their hands show
// only to the presenters). In a presentation's tree the presenter links to its first
// viewers only: the list counts the rest.
import type { PeerView } from "./bindings";
import { h, handIcon, initials } from "./dom";

/** The viewers of `peers`, as the list shows them: hands up first, oldest hand first. */
export function audienceOrder(peers: PeerView[], raisedAt: Map<string, number>): PeerView[] {
  const viewers = peers.filter((p) => p.role === "viewer");
  const rank = (p: PeerView) => (p.hand ? (raisedAt.get(p.id) ?? 0) : Number.POSITIVE_INFINITY);
  return viewers.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

export class AudienceList {
  readonly element: HTMLElement;
  private list: HTMLElement;
  private heading: HTMLElement;
  /** When each raised hand went up (a counter, not a clock: only the order matters). */
  private raisedAt = new Map<string, number>();
  private raises = 0;
  /** In a presentation's tree, everyone watching: more than we link once viewers pass it on. */
  private total: number | null = null;

  constructor() {
    this.heading = h("h2", { id: "audience-heading" }, "Viewers");
    this.list = h("ul", { class: "audience-list", id: "audience-list" });
    this.element = h("aside", { class: "audience", id: "audience", "aria-label": "Viewers", hidden: true }, this.heading, this.list);
  }

  /** Shows the viewers of `peers`; returns the names of those whose hand just went up. */
  update(peers: PeerView[]): string[] {
    const raised: string[] = [];
    for (const p of peers) {
      if (p.hand && !this.raisedAt.has(p.id)) {
        this.raisedAt.set(p.id, ++this.raises);
        if (p.state !== "me") raised.push(p.name);
      } else if (!p.hand) {
        this.raisedAt.delete(p.id);
      }
    }
    const ids = new Set(peers.map((p) => p.id));
    for (const id of this.raisedAt.keys()) if (!ids.has(id)) this.raisedAt.delete(id);

    const viewers = audienceOrder(peers, this.raisedAt);
    const hands = viewers.filter((p) => p.hand).length;
    const beyond = Math.max(0, (this.total ?? 0) - viewers.length);
    this.heading.textContent = `Viewers · ${viewers.length + beyond}${hands > 0 ? ` · ${hands} ${hands === 1 ? "hand" : "hands"} up` : ""}`;
    this.list.replaceChildren(
      ...viewers.map((p) => {
        const avatar = h("span", { class: "avatar small" }, initials(p.name));
        avatar.style.background = p.colour;
        return h(
          "li",
          { class: "viewer", "data-peer": p.id, "data-hand": String(p.hand), "data-state": p.state },
          avatar,
          h("span", { class: "viewer-name" }, p.state === "me" ? `${p.name} (you)` : p.name),
          p.state === "refused" && h("span", { class: "viewer-note", title: "Their access code was not accepted" }, "not admitted"),
          p.hand && h("span", { class: "viewer-hand", title: "Hand raised", "aria-label": "Hand raised" }, handIcon()),
        );
      }),
    );
    if (beyond > 0) {
      const note = `${beyond} more, through the viewers who pass it on`;
      this.list.append(h("li", { class: "viewer empty", id: "audience-beyond", title: "Beyond your first viewers, viewers pass the presentation on to others; their hands reach you in the stage panel" }, note));
    } else if (viewers.length === 0) this.list.append(h("li", { class: "viewer empty" }, "No viewers yet"));
    return raised;
  }

  /** In a presentation's tree: how many watch in all (`null` elsewhere). */
  setTotal(total: number | null): void {
    this.total = total;
  }

  show(on: boolean): void {
    this.element.hidden = !on;
  }
}
