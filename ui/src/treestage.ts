// A presentation to a large audience (a broadcast tree room): who is on stage, and at the
// tree's root (the presenter) the hands that went up, oldest first, each with "Invite to
// speak". The presenter takes the speaker off with "End". A viewer sees who is on stage,
// and whether it is itself (its microphone then reaches every viewer).
import type { StagePeer } from "./bindings";
import { h, handIcon } from "./dom";

export class TreeStage {
  readonly element: HTMLElement;
  private speakerLine: HTMLElement;
  private endButton: HTMLButtonElement;
  private heading: HTMLElement;
  private list: HTMLElement;
  private root = false;
  /** Hands already shown, so only new ones are announced. */
  private seen = new Set<string>();
  private speaker: StagePeer | null = null;
  private hands: StagePeer[] = [];

  constructor(
    private readonly me: string,
    private readonly setStage: (peer: string | null) => void,
  ) {
    this.speakerLine = h("p", { class: "tree-stage-speaker", id: "tree-stage-speaker" }, "Nobody is on stage");
    this.endButton = h("button", { class: "btn ghost", id: "tree-stage-end", title: "Take the speaker off the stage", hidden: true }, "End");
    this.endButton.addEventListener("click", () => this.setStage(null));
    this.heading = h("h2", { id: "tree-hands-heading" }, "Raised hands");
    this.list = h("ul", { class: "audience-list", id: "tree-hands" });
    this.element = h(
      "aside",
      { class: "audience", id: "tree-stage", "aria-label": "Stage", hidden: true },
      h("h2", {}, "Stage"),
      h("div", { class: "tree-stage-now" }, this.speakerLine, this.endButton),
      this.heading,
      this.list,
    );
    this.render();
  }

  /** Shows the panel (in a tree room), as the presenter (`root`) or a viewer. */
  show(root: boolean): void {
    this.root = root;
    this.element.hidden = false;
    this.render();
  }

  /** The stage as the room says it; returns the names of hands that went up since. */
  update(speaker: StagePeer | null, hands: StagePeer[]): string[] {
    const raised = hands.filter((p) => !this.seen.has(p.peer)).map((p) => p.name ?? "A viewer");
    this.seen = new Set(hands.map((p) => p.peer));
    this.speaker = speaker;
    this.hands = hands;
    this.render();
    return raised;
  }

  /** Who is on stage now. */
  get current(): StagePeer | null {
    return this.speaker;
  }

  /** What to tell the user about `speaker`, now on stage (or nobody). */
  announce(speaker: StagePeer | null): string {
    if (!speaker) return "Nobody is on stage";
    if (speaker.peer === this.me) return "You are on stage: every viewer hears your microphone";
    return `${speaker.name ?? "A viewer"} is on stage`;
  }

  private render(): void {
    this.speakerLine.textContent = this.announce(this.speaker);
    this.speakerLine.dataset.peer = this.speaker?.peer ?? "";
    this.endButton.hidden = !this.root || !this.speaker;
    // Hands reach the presenter alone (the root): a viewer has no list to show.
    this.heading.hidden = this.list.hidden = !this.root;
    this.heading.textContent = `Raised hands · ${this.hands.length}`;
    this.list.replaceChildren(
      ...this.hands.map((p) => {
        const invite = h("button", { class: "btn ghost hand-accept", title: "Let them speak to everyone" }, "Invite to speak");
        invite.addEventListener("click", () => this.setStage(p.peer));
        return h(
          "li",
          { class: "viewer", "data-peer": p.peer, "data-hand": "true" },
          h("span", { class: "viewer-hand", "aria-label": "Hand raised" }, handIcon()),
          h("span", { class: "viewer-name" }, p.name ?? p.peer.slice(0, 8)),
          invite,
        );
      }),
    );
    if (this.hands.length === 0) this.list.append(h("li", { class: "viewer empty" }, "No hands up"));
  }
}
