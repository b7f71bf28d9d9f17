// The join screen: name, room, server (or an invite link pasted anywhere), optional
// password; "Join" or "Host on this computer"; recent rooms.
import type { JoinRequest, Joined, Prefs, RoomShape } from "./bindings";
import { h } from "./dom";
import { type Api, errorText } from "./ipc";

function field(label: string, input: HTMLInputElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint && h("span", { class: "field-hint" }, hint));
}

export function joinScreen(
  api: Api,
  prefs: Prefs,
  prefill: Partial<JoinRequest>,
  notice: string | null,
  onJoined: (joined: Joined) => void,
): HTMLElement {
  const name = h("input", { id: "join-name", autocomplete: "nickname", maxlength: 64, placeholder: "How others see you" });
  const room = h("input", { id: "join-room", maxlength: 64, placeholder: "e.g. design-review" });
  const server = h("input", { id: "join-server", placeholder: "ws://host:7878 or an invite link" });
  const password = h("input", { id: "join-password", type: "password", placeholder: "Optional", autocomplete: "off" });
  const shape = h(
    "select",
    { id: "join-shape" },
    h("option", { value: "mesh" }, "Everyone linked to everyone"),
    h("option", { value: "cells" }, "Large room (cells)"),
    h("option", { value: "tree" }, "Broadcast tree (the host is its root)"),
    h("option", { value: "relay" }, "Relay network (a few links each)"),
  ) as HTMLSelectElement;
  shape.value = prefill.shape ?? "mesh";
  const chosen = () => shape.value as RoomShape;
  name.value = prefill.name || prefs.name;
  room.value = prefill.room ?? "";
  server.value = prefill.server ?? prefs.server;
  password.value = prefill.password ?? "";
  const error = h("p", { class: "form-error", id: "join-error", role: "alert" });
  if (notice) error.textContent = notice;
  const join = h("button", { class: "btn primary", id: "join-button", type: "submit" }, "Join room");
  const host = h("button", { class: "btn", id: "host-button", type: "button" }, "Host on this computer");

  // An invite link pasted into the server or room field fills both.
  for (const input of [server, room]) {
    input.addEventListener("input", async () => {
      const text = input.value.trim();
      if (!text.startsWith("plenum://")) return;
      try {
        const invite = await api.readInvite(text);
        server.value = invite.server;
        room.value = invite.room;
        error.textContent = "";
        (name.value ? password : name).focus();
      } catch (e) {
        error.textContent = errorText(e);
      }
    });
  }

  const busy = (on: boolean) => {
    join.disabled = on;
    host.disabled = on;
    form.classList.toggle("busy", on);
  };
  const attempt = async (run: () => Promise<Joined>) => {
    error.textContent = "";
    busy(true);
    try {
      onJoined(await run());
    } catch (e) {
      error.textContent = errorText(e);
      busy(false);
    }
  };
  const pw = () => (password.value ? password.value : null);

  const form = h(
    "form",
    { class: "join-form", id: "join-form" },
    field("Your name", name),
    field("Room", room),
    field("Server", server, "Paste an invite link here to fill in the server and room."),
    field("Room password", password),
    h(
      "label",
      { class: "field", title: "How a new room links its people: cells, a tree and a relay network hold hundreds or thousands. A room that exists keeps its own." },
      h("span", { class: "field-label" }, "New room links"),
      shape,
    ),
    error,
    h("div", { class: "actions" }, join, h("span", { class: "or" }, "or"), host),
  );
  form.addEventListener("input", () => (error.textContent = ""));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!server.value.trim()) {
      error.textContent = "Enter a server, or host the room on this computer.";
      return;
    }
    void attempt(() => api.join({ server: server.value.trim(), room: room.value.trim(), name: name.value.trim(), password: pw(), shape: chosen() }));
  });
  host.addEventListener("click", () => {
    void attempt(() => api.host({ room: room.value.trim(), name: name.value.trim(), password: pw(), shape: chosen() }));
  });

  const recent = h("ul", { class: "recent", id: "recent-rooms" });
  for (const r of prefs.recent) {
    const item = h(
      "button",
      { class: "recent-room", type: "button" },
      h("span", { class: "recent-name" }, r.room),
      h("span", { class: "recent-server" }, r.server),
    );
    item.addEventListener("click", () => {
      room.value = r.room;
      server.value = r.server;
      (name.value ? join : name).focus();
    });
    recent.appendChild(h("li", {}, item));
  }

  return h(
    "main",
    { class: "join-screen", id: "join-screen" },
    h(
      "div",
      { class: "join-card" },
      h(
        "div",
        { class: "brand" },
        h("img", { src: "/icon.png", alt: "", class: "brand-icon" }),
        h("div", {}, h("h1", {}, "Plenum"), h("p", { class: "tagline" }, "Calls, chat and a shared whiteboard — peer to peer.")),
      ),
      form,
    ),
    prefs.recent.length > 0 && h("div", { class: "recent-card" }, h("h2", {}, "Recent rooms"), recent),
  );
}
