// The join screen: name, room, server (or an invite link pasted anywhere), optional
// password, how we take part (with everyone, presenting, or watching) and the access code
// where a presenter asks for one; "Join" or "Host on this computer"; recent rooms.
import type { JoinRequest, Joined, Prefs, Role, RoomShape } from "./bindings";
import { h } from "./dom";
import { type Api, errorText } from "./ipc";

function field(label: string, input: HTMLInputElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint && h("span", { class: "field-hint" }, hint));
}

/** What the join screen starts with; `askCode`: the room asks us for an access code. */
export type Prefill = Partial<JoinRequest> & { askCode?: boolean };

/** A select of `options` (value, label) with `value` chosen. */
function select(id: string, value: string, options: Array<[string, string]>): HTMLSelectElement {
  const el = h("select", { id }, ...options.map(([v, label]) => h("option", { value: v }, label)));
  el.value = value;
  return el;
}

export function joinScreen(
  api: Api,
  prefs: Prefs,
  prefill: Prefill,
  notice: string | null,
  onJoined: (joined: Joined) => void,
  showAbout?: () => void,
  checkDevices?: () => void,
): HTMLElement {
  const name = h("input", { id: "join-name", autocomplete: "nickname", maxlength: 64, placeholder: "How others see you" });
  const room = h("input", { id: "join-room", maxlength: 64, placeholder: "e.g. design-review" });
  const server = h("input", { id: "join-server", placeholder: "ws://host:7878 or an invite link" });
  const password = h("input", { id: "join-password", type: "password", placeholder: "Optional", autocomplete: "off" });
  // A room grows by default: everyone linked to everyone up to eight, cells beyond
  // (docs/benchmarks.md, "A room that grows into cells and back").
  const shape = select("join-shape", prefill.shape ?? "cells", [
    ["cells", "Grows with the room (everyone linked up to 8, cells beyond)"],
    ["mesh", "Everyone linked to everyone, however many"],
    ["tree", "Broadcast tree (the host is its root)"],
    ["relay", "Relay network (a few links each)"],
  ]);
  const chosen = () => shape.value as RoomShape;
  const role = select("join-role", prefill.role ?? "both", [
    ["both", "Take part (everyone sees everyone)"],
    ["publisher", "Present to a room (viewers see you, not each other)"],
    ["viewer", "Watch a presentation"],
  ]);
  const as = () => role.value as Role;
  // Presenting: the code viewers must give (optional). Otherwise: the code we give, shown
  // where the room asks for one (a presenter's invite says so, or a presenter refused us).
  let askCode = prefill.askCode ?? false;
  const code = h("input", { id: "join-code", type: "password", autocomplete: "off" });
  code.value = prefill.access_code ?? prefill.viewer_code ?? "";
  const codeLabel = h("span", { class: "field-label" });
  const codeHint = h("span", { class: "field-hint" });
  const codeField = h("label", { class: "field", id: "join-code-field" }, codeLabel, code, codeHint);
  name.value = prefill.name || prefs.name;
  room.value = prefill.room ?? "";
  server.value = prefill.server ?? prefs.server;
  password.value = prefill.password ?? "";
  const error = h("p", { class: "form-error", id: "join-error", role: "alert" });
  if (notice) error.textContent = notice;
  const join = h("button", { class: "btn primary", id: "join-button", type: "submit" }, "Join room");
  const host = h("button", { class: "btn", id: "host-button", type: "button" }, "Host on this computer");
  const grows = shape.querySelector<HTMLOptionElement>("option[value='cells']");
  const showRole = () => {
    const presenting = as() === "publisher";
    // A presentation that grows is a tree under its presenter: a star up to 8 viewers,
    // beyond them viewers pass it on (PRESENTER_VIEWERS in session.rs).
    if (grows) grows.textContent = as() === "both" ? "Grows with the room (everyone linked up to 8, cells beyond)" : "Grows with the audience (viewers linked to the presenter up to 8, passed on beyond)";
    codeField.hidden = !presenting && !askCode;
    codeLabel.textContent = presenting ? "Viewers' access code" : "Access code";
    code.placeholder = presenting ? "Optional" : "The presenter's access code";
    codeHint.textContent = presenting ? "Viewers must give it to see you; it is not in the invite link." : "This room asks for an access code.";
    join.textContent = presenting ? "Present to a room" : "Join room";
    host.textContent = presenting ? "Host and present" : "Host on this computer";
  };
  role.addEventListener("change", showRole);
  showRole();

  // An invite link pasted into the server or room field fills both.
  for (const input of [server, room]) {
    input.addEventListener("input", async () => {
      const text = input.value.trim();
      if (!text.startsWith("plenum://")) return;
      try {
        const invite = await api.readInvite(text);
        server.value = invite.server;
        room.value = invite.room;
        role.value = invite.role;
        askCode = invite.access_code;
        showRole();
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
  const codes = () => {
    const given = code.value.trim() || null;
    return as() === "publisher" ? { access_code: null, viewer_code: given } : { access_code: codeField.hidden ? null : given, viewer_code: null };
  };

  const form = h(
    "form",
    { class: "join-form", id: "join-form" },
    field("Your name", name),
    field("Room", room),
    field("Server", server, "Paste an invite link here to fill in the server and room."),
    field("Room password", password),
    h("label", { class: "field", title: "A presenter is seen and heard by viewers, who do not see each other; viewers can raise a hand." }, h("span", { class: "field-label" }, "You join to"), role),
    codeField,
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
    void attempt(() => api.join({ server: server.value.trim(), room: room.value.trim(), name: name.value.trim(), password: pw(), shape: chosen(), role: as(), ...codes() }));
  });
  host.addEventListener("click", () => {
    const { viewer_code } = codes();
    void attempt(() => api.host({ room: room.value.trim(), name: name.value.trim(), password: pw(), shape: chosen(), role: as(), viewer_code }));
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
    footer(showAbout, checkDevices),
  );
}

function footer(showAbout?: () => void, checkDevices?: () => void): HTMLElement | null {
  const link = (id: string, text: string, run?: () => void) => {
    if (!run) return null;
    const button = h("button", { class: "link-button", type: "button", id }, text);
    button.addEventListener("click", run);
    return button;
  };
  const links = [link("check-button", "Check your devices", checkDevices), link("about-button", "About Plenum and updates", showAbout)];
  return links.some(Boolean) ? h("footer", { class: "join-footer" }, ...links) : null;
}
