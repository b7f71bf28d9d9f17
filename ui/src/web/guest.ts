// The guest page: a browser joins a Plenum room with no app, in the app's own call view.
// The room comes from the address (`/r/ROOM`), the signaling server is the one that served
// the page unless `?server=` names another, the name from `?name=` or the form, a room
// token from `#token=` (kept out of server logs) or `?token=`, the role from `?role=` (a
// presenter's invite: `viewer`), a password from the form when the room asks for one, and an
// access code from the form when the address says the presenter asks for one
// (`?credentials=required`); a code a peer refuses is asked for again.
import "../styles.css";
import "./guest.css";
import { CallView } from "../call";
import { h } from "../dom";
import { GuestCall } from "./guest-call";
import { Identity } from "./identity";
import { type GuestParams, guestParams } from "./params";
import { type JoinOptions, Room } from "./room";
import { SignalingError } from "./signaling";

const root = document.getElementById("app") as HTMLElement;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The page's state for anyone watching it (`data-guest` on the body): `joining`, `joined`
 * (our id in `data-peer`), `left`, or `error`, with the reason in `#guest-status`. */
function state(name: "asking" | "joining" | "joined" | "left" | "error", text = ""): void {
  document.body.dataset.guest = name;
  if (name !== "left" && name !== "error") return;
  root.replaceChildren(
    h(
      "div",
      { class: "join-screen" },
      h(
        "div",
        { class: "join-card guest-ended" },
        h("h1", {}, name === "left" ? "You left the call" : "Could not stay in the call"),
        h("p", { id: "guest-status", class: "guest-status" }, name === "left" ? text || "left" : `error: ${text}`),
        h("a", { class: "btn primary", id: "guest-rejoin", href: location.href }, "Join again"),
      ),
    ),
  );
}

/** What the join form gave. */
interface Answer {
  name: string;
  password?: string;
  code?: string;
}

/** Asks for a display name, and a password and an access code where they are wanted;
 * resolves with them. */
function ask(
  params: GuestParams,
  notice: string | null,
  { withPassword, withCode }: { withPassword: boolean; withCode: boolean },
  earlier: Answer | null = null,
): Promise<Answer> {
  state("asking");
  return new Promise((resolve) => {
    const name = h("input", { id: "guest-name", class: "guest-input", placeholder: "How others see you", maxlength: 64, required: true, autocomplete: "nickname" });
    name.value = earlier?.name ?? params.name ?? "";
    const password = h("input", { id: "guest-password", type: "password", placeholder: "The room's password", autocomplete: "off" });
    const code = h("input", { id: "guest-code", class: "guest-input", placeholder: "From whoever invited you", autocomplete: "off", required: true });
    const form = h(
      "form",
      { id: "guest-name-form", class: "join-form" },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Your name"), name),
      withPassword && h("label", { class: "field" }, h("span", { class: "field-label" }, "Password"), password),
      withCode && h("label", { class: "field" }, h("span", { class: "field-label" }, "Access code"), code),
      notice && h("p", { class: "form-error", id: "guest-error", role: "alert" }, notice),
      h("button", { id: "guest-join", class: "btn primary", type: "submit" }, "Join"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const chosen = name.value.trim();
      if (!chosen || (withCode && !code.value)) return;
      resolve({
        name: chosen,
        ...(withPassword ? { password: password.value } : earlier?.password !== undefined ? { password: earlier.password } : {}),
        ...(withCode ? { code: code.value } : {}),
      });
    });
    root.replaceChildren(
      h(
        "div",
        { class: "join-screen" },
        h("div", { class: "join-card" }, h("h1", {}, `Join ${params.room}`), h("p", { class: "field-hint" }, "You join from this browser; nothing to install."), form),
      ),
    );
    const filled = name.value !== "";
    (filled && withPassword ? password : filled && withCode ? code : name).focus();
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

/** Shows the call; `askAgain` when a peer refused our access code and nobody else is
 * linked (the call view leaves then). */
function enter(call: GuestCall, room: Room, askAgain: (notice: string) => void): void {
  const view = new CallView(call, call.joined, {
    openLink: (href) => {
      if (/^https?:\/\//.test(href)) window.open(href, "_blank", "noopener,noreferrer");
    },
    onLeft: (reason, askCode) => {
      if (askCode && reason) return askAgain(reason);
      state(reason ? "error" : "left", reason ?? "left");
    },
  });
  call.onEvent((event) => view.handle(event));
  // Scripts (and the end-to-end tests) reach the room engine from the page's console.
  (window as unknown as { plenumRoom: Room }).plenumRoom = room;
  root.replaceChildren(view.element);
  if (!room.grants.publish || room.role === "viewer") view.element.dataset.viewOnly = "true";
  document.body.dataset.peer = call.joined.me.id;
  state("joined");
  addEventListener("pagehide", () => void room.leave());
}

async function start(retry: { notice: string; answer: Answer } | null = null): Promise<void> {
  const params = guestParams(location);
  if (!params.room) return state("error", "the address names no room (/r/ROOM)");
  const role = params.role;
  if (!role) return state("error", "the address's role is not publisher, viewer or both");
  document.title = `${params.room} — Plenum`;
  if (!isSecureContext) return state("error", "this page needs https (or localhost) for its keys and media");
  let notice: string | null = null;
  let withPassword = false;
  const withCode = params.credentials;
  let answer: Answer;
  if (retry) answer = await ask(params, retry.notice, { withPassword: false, withCode }, retry.answer);
  else if (params.name && !withCode) answer = { name: params.name };
  else answer = await ask(params, null, { withPassword, withCode });
  for (;;) {
    state("joining");
    const room = new Room();
    try {
      const { code, ...named } = answer;
      const credentials = code === undefined ? undefined : { code };
      const id = await join(room, { server: params.server, room: params.room, token: params.token ?? undefined, role, credentials, ...named });
      const query = new URLSearchParams();
      if (role === "viewer") query.set("role", "viewer");
      if (withCode) query.set("credentials", "required");
      const invite = `${location.origin}/r/${encodeURIComponent(params.room)}${query.size ? `?${query}` : ""}`;
      const joined = answer;
      return enter(new GuestCall(room, { id, name: answer.name }, params.room, params.server, invite, role), room, (again) => void start({ notice: again, answer: joined }));
    } catch (e) {
      if (!(e instanceof SignalingError) || e.code !== "bad_password") return state("error", errorText(e));
      notice = withPassword ? "That password is not the room's." : "This room has a password.";
      withPassword = true;
      answer = await ask(params, notice, { withPassword, withCode }, answer);
    }
  }
}

void start();
