// The app's entry: the join screen, or straight into the room the command line names.
import { openUrl } from "@tauri-apps/plugin-opener";
import type { JoinRequest, Joined, UiEvent } from "./bindings";
import { CallView } from "./call";
import { clear } from "./dom";
import { api, errorText, onEvent } from "./ipc";
import { joinScreen, type Prefill } from "./join";
import { probe } from "./probe";
import "./styles.css";

const root = document.getElementById("app") as HTMLElement;
(window as unknown as { plenumProbe: unknown }).plenumProbe = (transport: "channel" | "socket", count: number, bytes: number) =>
  probe(api, transport, count, bytes);
let call: CallView | null = null;

function openLink(href: string): void {
  if (!/^https?:\/\//.test(href)) return;
  openUrl(href).catch((e) => console.warn(`could not open ${href}: ${errorText(e)}`));
}

async function showJoin(prefill: Prefill = {}, notice: string | null = null): Promise<void> {
  const prefs = await api.prefs().catch(() => ({ name: "", server: "", recent: [], microphone: null, speaker: null, verified: [] }));
  clear(root);
  root.appendChild(joinScreen(api, prefs, prefill, notice, enterCall));
  (document.getElementById(prefs.name || prefill.name ? "join-room" : "join-name") as HTMLInputElement | null)?.focus();
}

function enterCall(joined: Joined): void {
  call = new CallView(api, joined, {
    openLink,
    onLeft: (reason, askCode = false) => {
      call = null;
      void showJoin({ room: joined.room, server: joined.hosting ? "" : joined.server, role: joined.role, askCode }, reason);
    },
  });
  clear(root);
  root.appendChild(call.element);
  document.title = `${joined.room} — Plenum`;
}

async function start(): Promise<void> {
  // Events that arrive before the call view exists (none should) are dropped.
  await onEvent((event: UiEvent) => call?.handle(event));
  let request: JoinRequest | null = null;
  try {
    request = await api.launchRequest();
  } catch (e) {
    return showJoin({}, errorText(e));
  }
  if (request && request.name) {
    try {
      return enterCall(await api.join(request));
    } catch (e) {
      return showJoin(request, errorText(e));
    }
  }
  return showJoin(request ?? {});
}

void start();
