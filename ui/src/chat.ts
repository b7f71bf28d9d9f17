// The chat panel: names, times, own messages set apart, web links clickable, and an unread
// count while the panel is hidden. Message text only ever becomes text nodes.
import type { ChatLine } from "./bindings";
import { h } from "./dom";

const LINK = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Splits text into plain runs and http(s) links. */
export function linkify(text: string): Array<{ text: string; href?: string }> {
  const parts: Array<{ text: string; href?: string }> = [];
  let at = 0;
  for (const m of text.matchAll(LINK)) {
    const start = m.index ?? 0;
    if (start > at) parts.push({ text: text.slice(at, start) });
    parts.push({ text: m[0], href: m[0] });
    at = start + m[0].length;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

export function timeOf(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export class ChatPanel {
  readonly element: HTMLElement;
  readonly list: HTMLElement;
  readonly input: HTMLTextAreaElement;
  unread = 0;
  visible = true;

  constructor(
    private readonly send: (text: string) => Promise<ChatLine>,
    private readonly openLink: (href: string) => void,
    private readonly colourOf: (peer: string) => string,
    private readonly onUnread: (count: number) => void,
  ) {
    this.list = h("div", { class: "chat-list", id: "chat-list", role: "log", "aria-live": "polite" });
    this.input = h("textarea", {
      class: "chat-input",
      id: "chat-input",
      rows: 1,
      placeholder: "Message everyone",
      maxlength: 4000,
    });
    const button = h("button", { class: "btn primary small", id: "chat-send", type: "submit" }, "Send");
    const form = h("form", { class: "chat-form" }, this.input, button);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        void this.submit();
      }
    });
    this.list.appendChild(h("div", { class: "chat-empty" }, "No messages yet. Say hello!"));
    this.element = h("aside", { class: "chat", id: "chat" }, h("header", { class: "panel-title" }, "Chat"), this.list, form);
  }

  async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    try {
      this.add(await this.send(text));
    } catch (e) {
      this.input.value = text;
      this.note(`Not sent: ${e && typeof e === "object" && "message" in e ? String(e.message) : String(e)}`);
    }
  }

  add(line: ChatLine): void {
    this.list.querySelector(".chat-empty")?.remove();
    const body = h("div", { class: "chat-text" });
    for (const part of linkify(line.text)) {
      if (part.href) {
        const a = h("a", { href: part.href, rel: "noopener noreferrer" }, part.text);
        a.addEventListener("click", (e) => {
          e.preventDefault();
          this.openLink(part.href as string);
        });
        body.appendChild(a);
      } else {
        body.appendChild(document.createTextNode(part.text));
      }
    }
    const name = h("span", { class: "chat-name" }, line.own ? "You" : line.name);
    if (!line.own) name.style.color = this.colourOf(line.from);
    const msg = h(
      "div",
      { class: `chat-msg${line.own ? " own" : ""}`, "data-from": line.from },
      h("div", { class: "chat-meta" }, name, h("time", { class: "chat-time" }, timeOf(line.at_ms))),
      body,
    );
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.appendChild(msg);
    if (atBottom || line.own) this.list.scrollTop = this.list.scrollHeight;
    if (!this.visible && !line.own) {
      this.unread += 1;
      this.onUnread(this.unread);
    }
  }

  note(text: string): void {
    this.list.appendChild(h("div", { class: "chat-note" }, text));
    this.list.scrollTop = this.list.scrollHeight;
  }

  show(visible: boolean): void {
    this.visible = visible;
    this.element.hidden = !visible;
    if (visible) {
      this.unread = 0;
      this.onUnread(0);
    }
  }
}
