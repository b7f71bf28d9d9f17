import { describe, expect, it, vi } from "vitest";
import type { ChatLine } from "./bindings";
import { ChatPanel, linkify } from "./chat";

const line = (over: Partial<ChatLine> = {}): ChatLine => ({
  from: "p1",
  name: "Ada",
  text: "hello",
  at_ms: new Date(2026, 10, 23, 9, 5).getTime(),
  own: false,
  ...over,
});

function panel(send = vi.fn(async (text: string) => line({ text, own: true, from: "me", name: "Me" }))) {
  const open = vi.fn();
  const unread = vi.fn();
  const p = new ChatPanel(send, open, () => "rgb(1, 2, 3)", unread);
  document.body.replaceChildren(p.element);
  return { p, send, open, unread };
}

describe("linkify", () => {
  it("finds http and https links and leaves trailing punctuation out", () => {
    expect(linkify("see https://a.example/x?y=1, and http://b.example.")).toEqual([
      { text: "see " },
      { text: "https://a.example/x?y=1", href: "https://a.example/x?y=1" },
      { text: ", and " },
      { text: "http://b.example", href: "http://b.example" },
      { text: "." },
    ]);
    expect(linkify("javascript:alert(1) file:///etc/passwd")).toEqual([{ text: "javascript:alert(1) file:///etc/passwd" }]);
  });
});

describe("ChatPanel", () => {
  it("shows names, times and text, never markup", () => {
    const { p } = panel();
    p.add(line({ text: '<img src=x onerror="alert(1)"> <b>hi</b>' }));
    const msg = p.list.querySelector(".chat-msg") as HTMLElement;
    expect(msg.querySelector("img")).toBeNull();
    expect(msg.querySelector("b")).toBeNull();
    expect(msg.querySelector(".chat-text")?.textContent).toBe('<img src=x onerror="alert(1)"> <b>hi</b>');
    expect(msg.querySelector(".chat-name")?.textContent).toBe("Ada");
    expect(msg.querySelector(".chat-time")?.textContent).toBe("09:05");
  });

  it("opens links through the opener, not the webview", () => {
    const { p, open } = panel();
    p.add(line({ text: "docs: https://example.com/a" }));
    const a = p.list.querySelector("a") as HTMLAnchorElement;
    const click = new MouseEvent("click", { cancelable: true });
    a.dispatchEvent(click);
    expect(click.defaultPrevented).toBe(true);
    expect(open).toHaveBeenCalledWith("https://example.com/a");
  });

  it("sets own messages apart and sends trimmed text", async () => {
    const { p, send } = panel();
    p.input.value = "  hi all  ";
    await p.submit();
    expect(send).toHaveBeenCalledWith("hi all");
    expect(p.list.querySelector(".chat-msg.own .chat-name")?.textContent).toBe("You");
    expect(p.input.value).toBe("");
  });

  it("keeps the text and says why when sending fails", async () => {
    const { p } = panel(vi.fn(async () => Promise.reject({ kind: "not_in_room", message: "not in a room" })));
    p.input.value = "lost";
    await p.submit();
    expect(p.input.value).toBe("lost");
    expect(p.list.querySelector(".chat-note")?.textContent).toContain("not in a room");
  });

  it("counts unread messages while hidden and resets when shown", () => {
    const { p, unread } = panel();
    p.show(false);
    p.add(line());
    p.add(line());
    p.add(line({ own: true }));
    expect(unread).toHaveBeenLastCalledWith(2);
    p.show(true);
    expect(unread).toHaveBeenLastCalledWith(0);
    expect(p.unread).toBe(0);
  });
});
