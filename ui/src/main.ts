// The app's entry: the join screen, or straight into the room the command line names.
import { openUrl } from "@tauri-apps/plugin-opener";
import { aboutDialog, updateBar } from "./about";
import type { JoinRequest, Joined, UiEvent } from "./bindings";
import { CallView } from "./call";
import { deviceCheck } from "./devices";
import { clear, h } from "./dom";
import { type Api, api, errorText, onEvent } from "./ipc";
import { joinScreen, type Prefill } from "./join";
import { probe } from "./probe";
import "./styles.css";

const root = document.getElementById("app") as HTMLElement;
(window as unknown as { plenumProbe: unknown }).plenumProbe = (transport: "channel" | "socket", count: number, bytes: number) =>
  probe(api, transport, count, bytes);
let call: CallView | null = null;
/** Events between a join's answer and its call view (a presenter can refuse us at once):
 * kept for the view, at most `EARLY_MAX`. `null` while no join is under way: dropped. */
let early: UiEvent[] | null = null;
const EARLY_MAX = 256;
/** The commands the join screen uses; a join or host starts keeping early events. */
const joining: Api = {
  ...api,
  join: (req) => {
    early = [];
    return api.join(req);
  },
  host: (req) => {
    early = [];
    return api.host(req);
  },
};

function openLink(href: string): void {
  if (!/^https?:\/\//.test(href)) return;
  openUrl(href).catch((e) => console.warn(`could not open ${href}: ${errorText(e)}`));
}

/** The About dialog, over whatever is shown. */
function showAbout(): void {
  document.getElementById("about-overlay")?.remove();
  const overlay = h("div", { class: "overlay", id: "about-overlay" });
  overlay.appendChild(aboutDialog(api, () => overlay.remove()));
  document.body.appendChild(overlay);
}

/** An invite link opened while the app runs: join it (asking first when in a call). */
async function invited(request: JoinRequest): Promise<void> {
  if (call) {
    if (!(await call.confirmSwitch(request.room))) return;
    await api.leave().catch(() => null);
    call = null;
  }
  if (!request.name) return showJoin(request);
  try {
    enterCall(await joining.join(request));
  } catch (e) {
    await showJoin(request, errorText(e));
  }
}

const NO_PREFS = { name: "", server: "", recent: [], microphone: null, speaker: null, verified: [], checked: true };

/** The device check; the first run (no name yet) also asks for a name. Then the join screen. */
async function showDeviceCheck(prefill: Prefill = {}): Promise<void> {
  const prefs = await api.prefs().catch(() => NO_PREFS);
  clear(root);
  early = null;
  root.appendChild(deviceCheck(api, prefs, !prefs.checked, () => void showJoin(prefill)));
  document.getElementById(prefs.name ? "check-done" : "check-name")?.focus();
}

async function showJoin(prefill: Prefill = {}, notice: string | null = null): Promise<void> {
  const prefs = await api.prefs().catch(() => NO_PREFS);
  if (!prefs.checked) return showDeviceCheck(prefill);
  clear(root);
  early = null;
  root.appendChild(joinScreen(joining, prefs, prefill, notice, enterCall, showAbout, () => void showDeviceCheck(prefill)));
  (document.getElementById(prefs.name || prefill.name ? "join-room" : "join-name") as HTMLInputElement | null)?.focus();
}

function enterCall(joined: Joined): void {
  call = new CallView(api, joined, {
    openLink,
    showAbout,
    onLeft: (reason, askCode = false) => {
      call = null;
      void showJoin({ room: joined.room, server: joined.hosting ? "" : joined.server, role: joined.role, askCode }, reason);
    },
  });
  clear(root);
  root.appendChild(call.element);
  document.title = `${joined.room} — Plenum`;
  const missed = early ?? [];
  early = null;
  for (const event of missed) call?.handle(event);
}

async function start(): Promise<void> {
  void updateBar(api).then((bar) => bar && document.body.prepend(bar));
  await onEvent((event: UiEvent) => {
    if (event.type === "invited") void invited(event.request);
    else if (call) call.handle(event);
    else if (early && early.length < EARLY_MAX) early.push(event);
  });
  let request: JoinRequest | null = null;
  try {
    request = await api.launchRequest();
  } catch (e) {
    return showJoin({}, errorText(e));
  }
  if (request && request.name) {
    try {
      return enterCall(await joining.join(request));
    } catch (e) {
      return showJoin(request, errorText(e));
    }
  }
  return showJoin(request ?? {});
}

void start();
