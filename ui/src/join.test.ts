import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Joined, Prefs } from "./bindings";
import { api } from "./ipc";
import { joinScreen, type Prefill } from "./join";

const joined: Joined = {
  me: { id: "me1", name: "Ada", state: "me", rtt_ms: null, colour: "hsl(1, 70%, 45%)", speaking: false, muted: null, video: false, screen: false, path: null, safety_code: null, verified: false, role: "both", hand: false, quality: null },
  room: "r",
  server: "ws://h:1",
  invite: "plenum://join?server=ws%3A%2F%2Fh%3A1&room=r",
  web_invite: null,
  hosting: false,
  role: "both",
};
const prefs: Prefs = { name: "Ada", server: "ws://h:1", recent: [{ server: "ws://old:2", room: "retro" }], microphone: null, speaker: null, verified: [], checked: true };

afterEach(() => clearMocks());

function screen(handler: (cmd: string, args: unknown) => unknown, prefill: Prefill = {}) {
  mockIPC((cmd, args) => handler(cmd, args));
  const onJoined = vi.fn();
  document.body.replaceChildren(joinScreen(api, prefs, prefill, null, onJoined));
  const $ = (id: string) => document.getElementById(id) as HTMLInputElement;
  return { onJoined, $ };
}

describe("join screen", () => {
  it("prefills the remembered name and server and lists recent rooms", () => {
    const { $ } = screen(() => null);
    expect($("join-name").value).toBe("Ada");
    expect($("join-server").value).toBe("ws://h:1");
    const recent = document.querySelector(".recent-room") as HTMLElement;
    expect(recent.textContent).toContain("retro");
    recent.click();
    expect($("join-room").value).toBe("retro");
    expect($("join-server").value).toBe("ws://old:2");
  });

  it("joins with what was typed", async () => {
    const { $, onJoined } = screen((cmd) => (cmd === "join" ? joined : null));
    const seen: unknown[] = [];
    mockIPC((cmd, args) => {
      seen.push([cmd, args]);
      return cmd === "join" ? joined : null;
    });
    $("join-room").value = " r ";
    $("join-password").value = "pw";
    (document.getElementById("join-form") as HTMLFormElement).requestSubmit();
    await vi.waitFor(() => expect(onJoined).toHaveBeenCalledWith(joined));
    expect(seen).toContainEqual(["join", { req: { server: "ws://h:1", room: "r", name: "Ada", password: "pw", shape: "cells", role: "both", access_code: null, viewer_code: null } }]);
  });

  it("creates an always-full mesh when asked", async () => {
    const { $ } = screen(() => null);
    const seen: unknown[] = [];
    mockIPC((cmd, args) => {
      seen.push([cmd, args]);
      return cmd === "join" ? joined : null;
    });
    $("join-room").value = "town-hall";
    ($("join-shape") as unknown as HTMLSelectElement).value = "mesh";
    (document.getElementById("join-form") as HTMLFormElement).requestSubmit();
    await vi.waitFor(() => expect(seen).toContainEqual(["join", { req: { server: "ws://h:1", room: "town-hall", name: "Ada", password: null, shape: "mesh", role: "both", access_code: null, viewer_code: null } }]));
  });

  it("shows the engine's error and stays usable", async () => {
    const { $, onJoined } = screen(() => Promise.reject({ kind: "refused", message: "join refused (bad_password): wrong password" }));
    $("join-room").value = "r";
    (document.getElementById("join-form") as HTMLFormElement).requestSubmit();
    await vi.waitFor(() => expect($("join-error").textContent).toContain("wrong password"));
    expect(onJoined).not.toHaveBeenCalled();
    expect((document.getElementById("join-button") as HTMLButtonElement).disabled).toBe(false);
  });

  it("fills server and room from a pasted invite link", async () => {
    const { $ } = screen((cmd) => (cmd === "read_invite" ? { server: "ws://10.0.0.5:7878", room: "lan", role: "both", access_code: false } : null));
    $("join-server").value = "plenum://join?server=ws%3A%2F%2F10.0.0.5%3A7878&room=lan";
    $("join-server").dispatchEvent(new Event("input"));
    await vi.waitFor(() => expect($("join-room").value).toBe("lan"));
    expect($("join-server").value).toBe("ws://10.0.0.5:7878");
    expect($("join-role").value).toBe("both");
    expect(document.getElementById("join-code-field")?.hidden).toBe(true);
  });

  it("presents to a room, with an access code its viewers must give", async () => {
    const seen: unknown[] = [];
    const { $ } = screen((cmd, args) => {
      seen.push([cmd, args]);
      return cmd === "join" || cmd === "host" ? joined : null;
    });
    const code = document.getElementById("join-code-field") as HTMLElement;
    expect(code.hidden).toBe(true);
    $("join-role").value = "publisher";
    $("join-role").dispatchEvent(new Event("change"));
    expect(code.hidden).toBe(false);
    expect(code.textContent).toContain("Viewers' access code");
    expect(document.getElementById("join-button")?.textContent).toBe("Present to a room");
    expect(document.getElementById("host-button")?.textContent).toBe("Host and present");
    // A presentation that grows passes itself on beyond the presenter's own viewers.
    expect($("join-shape").value).toBe("cells");
    expect(($("join-shape") as unknown as HTMLSelectElement).selectedOptions[0].textContent).toContain("passed on beyond");
    $("join-room").value = "keynote";
    $("join-code").value = " k1 ";
    (document.getElementById("join-form") as HTMLFormElement).requestSubmit();
    await vi.waitFor(() =>
      expect(seen).toContainEqual(["join", { req: { server: "ws://h:1", room: "keynote", name: "Ada", password: null, shape: "cells", role: "publisher", access_code: null, viewer_code: "k1" } }]),
    );
    // From this computer: the same, on the embedded server.
    const again = screen((cmd, args) => {
      seen.push([cmd, args]);
      return cmd === "host" ? joined : null;
    });
    again.$("join-role").value = "publisher";
    again.$("join-role").dispatchEvent(new Event("change"));
    again.$("join-room").value = "keynote";
    again.$("join-code").value = "k1";
    (document.getElementById("host-button") as HTMLElement).click();
    await vi.waitFor(() => expect(seen).toContainEqual(["host", { req: { room: "keynote", name: "Ada", password: null, shape: "cells", role: "publisher", viewer_code: "k1" } }]));
  });

  it("asks for the access code a presenter's invite says it needs, and joins as a viewer", async () => {
    const seen: unknown[] = [];
    const { $ } = screen((cmd, args) => {
      seen.push([cmd, args]);
      if (cmd === "read_invite") return { server: "ws://h:9", room: "keynote", role: "viewer", access_code: true };
      return cmd === "join" ? joined : null;
    });
    $("join-room").value = "plenum://join?server=ws%3A%2F%2Fh%3A9&room=keynote&role=viewer&credentials=required";
    $("join-room").dispatchEvent(new Event("input"));
    await vi.waitFor(() => expect(document.getElementById("join-code-field")?.hidden).toBe(false));
    expect($("join-role").value).toBe("viewer");
    expect(document.getElementById("join-code-field")?.textContent).toContain("This room asks for an access code.");
    $("join-code").value = "k1";
    (document.getElementById("join-form") as HTMLFormElement).requestSubmit();
    await vi.waitFor(() =>
      expect(seen).toContainEqual(["join", { req: { server: "ws://h:9", room: "keynote", name: "Ada", password: null, shape: "cells", role: "viewer", access_code: "k1", viewer_code: null } }]),
    );
  });

  it("after a refused code, opens with the code field shown", () => {
    screen(() => null, { room: "keynote", role: "viewer", askCode: true });
    expect(document.getElementById("join-code-field")?.hidden).toBe(false);
    expect((document.getElementById("join-role") as HTMLSelectElement).value).toBe("viewer");
  });

  it("hosts on this computer", async () => {
    const seen: string[] = [];
    const { $, onJoined } = screen((cmd) => {
      seen.push(cmd);
      return cmd === "host" ? { ...joined, hosting: true } : null;
    });
    $("join-room").value = "party";
    (document.getElementById("host-button") as HTMLElement).click();
    await vi.waitFor(() => expect(onJoined).toHaveBeenCalled());
    expect(seen).toContain("host");
  });
});
