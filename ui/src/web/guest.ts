// The guest page: a browser joins a Plenum room with no app. The room comes from the address
// (`/r/ROOM`), the signaling server is the one that served the page unless `?server=` names
// another, and the name comes from `?name=` or a small form.
import "../styles.css";
import "./guest.css";
import { h } from "../dom";
import { CHAT_CHANNEL, chatText, MAX_CHAT_BYTES } from "./chat";
import { GuestView } from "./guest-view";
import { Identity } from "./identity";
import { guestParams } from "./params";
import { type JoinOptions, Room } from "./room";
import { SignalingError } from "./signaling";

const root = document.getElementById("guest") as HTMLElement;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Asks for a display name; resolves once one is given. */
function askName(room: string): Promise<string> {
  return new Promise((resolve) => {
    const input = h("input", { id: "guest-name", class: "guest-input", placeholder: "Your name", maxlength: 64, required: true });
    const form = h(
      "form",
      { id: "guest-name-form", class: "guest-name-form" },
      h("h1", {}, `Join ${room}`),
      input,
      h("button", { id: "guest-join", class: "btn primary", type: "submit" }, "Join"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (name) resolve(name);
    });
    root.replaceChildren(form);
    input.focus();
  });
}

/** Joins with the identity kept in this browser; if that id is in the room already (the
 * page is open twice), with a fresh one. */
async function join(room: Room, options: JoinOptions): Promise<string> {
  try {
    return await room.join(options);
  } catch (e) {
    if (!(e instanceof SignalingError) || e.code !== "peer_id_taken") throw e;
    return room.join({ ...options, identity: await Identity.generate() });
  }
}

function show(room: Room, view: GuestView): void {
  const refresh = (peer: string) => {
    const entry = room.peers().find((p) => p.peer === peer);
    if (entry) view.peer(entry);
  };
  room.on("peer-joined", ({ peer }) => refresh(peer));
  room.on("linked", ({ peer }) => refresh(peer));
  room.on("unlinked", ({ peer }) => {
    refresh(peer);
    view.dropMedia(peer);
  });
  room.on("peer-left", ({ peer }) => view.removePeer(peer));
  room.on("track", ({ peer, lane, track }) => view.track(peer, lane, track));
  room.on("message", ({ from, channel, data }) => {
    const text = channel === CHAT_CHANNEL ? chatText(data) : null;
    if (text !== null) view.chat(from, text, false);
  });
  room.on("error", ({ code, message, fatal }) => (fatal ? view.end(`error: ${message}`) : view.note(code, message)));
}

function controls(room: Room, view: GuestView): void {
  view.chatForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = view.chatInput.value.trim();
    if (!text) return;
    if (new TextEncoder().encode(text).length > MAX_CHAT_BYTES) return view.note("too_long", `at most ${MAX_CHAT_BYTES} bytes`);
    room.send(CHAT_CHANNEL, { text });
    view.chat(room.me ?? "", text, true);
    view.chatInput.value = "";
  });
  const turnOn = (button: HTMLButtonElement, done: string, on: () => Promise<unknown>) =>
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await on();
        button.textContent = done;
      } catch (e) {
        button.disabled = false;
        view.note("media", errorText(e));
      }
    });
  turnOn(view.micButton, "Microphone is on", () => room.publishMicrophone());
  turnOn(view.cameraButton, "Camera is on", async () => view.preview(await room.publishCamera()));
  view.leaveButton.addEventListener("click", async () => {
    view.leaveButton.disabled = true;
    await room.leave();
    view.end("left");
  });
  addEventListener("pagehide", () => void room.leave());
}

async function start(): Promise<void> {
  const params = guestParams(location);
  if (!params.room) {
    root.replaceChildren(h("p", { id: "guest-status", class: "guest-status" }, "error: the address names no room (/r/ROOM)"));
    return;
  }
  const name = params.name ?? (await askName(params.room));
  const view = new GuestView(params.room);
  root.replaceChildren(view.element);
  document.title = `${params.room} — Plenum`;
  if (!isSecureContext) return view.status("error: this page needs https (or localhost) for its keys and media");
  const room = new Room();
  show(room, view);
  controls(room, view);
  try {
    view.me(await join(room, { server: params.server, room: params.room, name }));
    view.status("joined");
  } catch (e) {
    view.status(`error: ${errorText(e)}`);
  }
}

void start();
