import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Joined, PeerView, UiEvent } from "./bindings";
import { EVENT } from "./bindings";
import { CallView } from "./call";
import { LEAVE_CHIME } from "./chimes";
import { api, onEvent } from "./ipc";

const me: PeerView = { id: "me1", name: "Carol", state: "me", rtt_ms: null, colour: "hsl(1, 70%, 45%)", speaking: false, muted: null, video: false, screen: false, path: null, safety_code: null, verified: false, role: "both", hand: false, quality: null };
const ada: PeerView = { id: "ada1", name: "Ada", state: "connected", rtt_ms: 0.4, colour: "hsl(200, 70%, 45%)", speaking: false, muted: null, video: false, screen: false, path: null, safety_code: null, verified: false, role: "both", hand: false, quality: null };
const joined: Joined = { me, room: "standup", server: "ws://127.0.0.1:1", invite: "plenum://join?server=ws%3A%2F%2F127.0.0.1%3A1&room=standup", web_invite: "http://127.0.0.1:1/r/standup", hosting: false, role: "both" };

let calls: Array<[string, unknown]>;

beforeEach(() => {
  calls = [];
  mockIPC(
    (cmd, args) => {
      calls.push([cmd, args]);
      switch (cmd) {
        case "board_undo":
          return { kind: "removed", ids: [{ author: "me1", seq: 0 }] };
        case "board_clear":
          return { kind: "removed", ids: [] };
        case "audio_devices":
          return {
            microphones: [{ id: "alsa:pulse", name: "PulseAudio", default: true }],
            speakers: [{ id: "alsa:pulse", name: "PulseAudio", default: true }],
            microphone: null,
            speaker: "alsa:pulse",
          };
        case "mic_level":
          return -12.4;
        case "set_devices":
          return "on";
        case "set_mic":
          return (args as { on: boolean }).on ? "on" : "muted";
        case "video_devices":
          return {
            cameras: [{ id: "testsrc", name: "Test pattern" }],
            screens: [
              { id: "screen", name: "Screen screen (1280x720)" },
              { id: "window:42", name: "Window: Notes" },
            ],
          };
        case "set_camera": {
          const camera = (args as { camera: string | null }).camera;
          if (camera === "default") throw { kind: "device", message: "no camera found on this machine" };
          return { camera: camera !== null, screen: false };
        }
        case "raise_hand":
          return (args as { raised: boolean }).raised;
        case "share_screen":
          return { camera: false, screen: (args as { target: string | null }).target !== null };
        default:
          return null;
      }
    },
    { shouldMockEvents: true },
  );
});

afterEach(() => clearMocks());

function view(onLeft = vi.fn(), as: Joined = joined) {
  const playSound = vi.fn();
  const call = new CallView(api, as, { openLink: vi.fn(), onLeft, playSound });
  document.body.replaceChildren(call.element);
  return { call, onLeft, playSound };
}

describe("CallView", () => {
  it("invites with the app's link and a browser's, and says when a browser elsewhere cannot use it", () => {
    const dialog = (as: Joined) => {
      const { call } = view(vi.fn(), as);
      call.close();
      return call.element;
    };
    const local = dialog(joined);
    expect((local.querySelector("#invite-link") as HTMLInputElement).value).toBe(joined.invite);
    expect((local.querySelector("#invite-web-link") as HTMLInputElement).value).toBe("http://127.0.0.1:1/r/standup");
    expect(local.querySelector("#invite-web-note")).toBeNull();
    expect(dialog({ ...joined, web_invite: "http://192.168.1.20:7878/r/standup" }).querySelector("#invite-web-note")).not.toBeNull();
    expect(dialog({ ...joined, web_invite: "https://meet.example/r/standup" }).querySelector("#invite-web-note")).toBeNull();
    expect(dialog({ ...joined, web_invite: null }).querySelector("#invite-web-link")).toBeNull();
  });

  it("follows the roster: tiles, count, cursors of peers that left, a chime as Ada leaves", async () => {
    const { call, playSound } = view();
    const un = await onEvent((e) => call.handle(e));
    await emit(EVENT, { type: "roster", peers: [me, ada] } satisfies UiEvent);
    expect(document.querySelectorAll(".tile")).toHaveLength(2);
    expect(document.querySelector("#participant-count")?.textContent).toBe("2 people");
    await emit(EVENT, { type: "cursor", peer: "ada1", x: 0.5, y: 0.5 } satisfies UiEvent);
    expect(document.querySelector(".cursor[data-peer='ada1'] .cursor-name")?.textContent).toBe("Ada");
    expect(playSound).not.toHaveBeenCalled();
    await emit(EVENT, { type: "roster", peers: [me] } satisfies UiEvent);
    expect(playSound).toHaveBeenCalledWith(LEAVE_CHIME);
    expect(document.querySelector(".cursor[data-peer='ada1']")).toBeNull();
    expect(document.querySelector("#participant-count")?.textContent).toBe("Just you");
    un();
    call.close();
  });

  it("reads a room of one cell as a call, and as a large room once it has grown into cells", async () => {
    const { call, playSound } = view();
    const count = () => document.querySelector("#participant-count")?.textContent;
    const network = (cells: number) => call.handle({ type: "network", view: { cell: 0, cells, cell_size: 2, bridges: [], known: [] } });
    network(1);
    call.handle({ type: "roster", peers: [me, ada] });
    expect(count()).toBe("2 people");
    call.handle({ type: "roster", peers: [me] });
    expect(playSound).toHaveBeenCalledWith(LEAVE_CHIME);
    network(2);
    call.handle({ type: "roster", peers: [me, ada] });
    expect(count()).toBe("Large room · linked to 1");
    playSound.mockClear();
    call.handle({ type: "roster", peers: [me] });
    expect(playSound).not.toHaveBeenCalled();
    call.close();
  });

  it("shows a large room's presenter from another cell first and large, in the participants view", () => {
    const { call } = view();
    call.handle({ type: "network", view: { cell: 0, cells: 3, cell_size: 3, bridges: [], known: [] } });
    call.handle({ type: "roster", peers: [me, ada] });
    const tiles = document.getElementById("tiles") as HTMLElement;
    const firstTile = () => tiles.querySelector(".tile")?.getAttribute("data-peer");
    expect(firstTile()).not.toBe("p9");
    const pia: PeerView = { ...ada, id: "p9", name: "Pia", state: "presenting", video: true };
    call.handle({ type: "roster", peers: [me, ada, pia] });
    expect(firstTile()).toBe("p9");
    expect(tiles.dataset.layout).toBe("presenter");
    expect(document.querySelector(".stage")?.getAttribute("data-mode")).toBe("grid");
    // A speaker from another cell is on stage: a tile that says so, not counted as linked.
    const sal: PeerView = { ...ada, id: "s7", name: "Sal", state: "on_stage", video: false };
    call.handle({ type: "roster", peers: [me, ada, pia, sal] });
    expect(tiles.querySelector(".tile[data-peer='s7']")?.textContent).toContain("On stage");
    expect(document.querySelector("#participant-count")?.textContent).toBe("Large room · linked to 1");
    // The top bar says who presents to the whole room, and what it means for our screen.
    const pill = document.getElementById("room-presenter-pill") as HTMLElement;
    expect(pill.hidden).toBe(true);
    call.handle({ type: "room_presenter", name: "Pia", you: false });
    expect(pill.hidden).toBe(false);
    expect(pill.textContent).toBe("Pia presents");
    expect(pill.title).toContain("reach every cell");
    call.handle({ type: "room_presenter", name: null, you: true });
    expect(pill.textContent).toBe("Presenting to everyone");
    call.handle({ type: "room_presenter", name: null, you: false });
    expect(pill.hidden).toBe(true);
    // It stops presenting: its tile goes, the call is laid out as before.
    call.handle({ type: "roster", peers: [me, ada] });
    expect(tiles.querySelector(".tile[data-peer='p9']")).toBeNull();
    expect(tiles.dataset.layout).toBe("grid");
    call.close();
  });

  it("shows the banner while reconnecting and hides it after", () => {
    const { call } = view();
    const banner = document.querySelector("#banner") as HTMLElement;
    expect(banner.hidden).toBe(true);
    call.handle({ type: "status", signaling: true, reconnecting: ["Ada"] });
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("Reconnecting to Ada");
    call.handle({ type: "status", signaling: false, reconnecting: [] });
    expect(banner.textContent).toContain("server");
    call.handle({ type: "status", signaling: true, reconnecting: [] });
    expect(banner.hidden).toBe(true);
    call.close();
  });

  it("applies board changes and counts ignored messages", () => {
    const { call } = view();
    call.handle({
      type: "board",
      changes: [{ kind: "stroke", stroke: { author: "ada1", seq: 0, clock: 1, tool: "pen", colour: "#000000", width: 3, points: [[0.1, 0.1]], done: true } }],
    });
    expect(call.model.size).toBe(1);
    expect(document.querySelector("#board")?.getAttribute("data-strokes")).toBe("1");
    call.handle({ type: "ignored", peer: "ada1", channel: "board", reason: "bad" });
    expect(document.querySelector("#call")?.getAttribute("data-ignored")).toBe("1");
    call.close();
  });

  it("asks before clearing the board", async () => {
    const { call } = view();
    (document.querySelector("#tool-clear") as HTMLElement).click();
    expect(calls.map((c) => c[0])).not.toContain("board_clear");
    (document.querySelector("#confirm-clear") as HTMLElement).click();
    await vi.waitFor(() => expect(calls.map((c) => c[0])).toContain("board_clear"));
    call.close();
  });

  it("answers keyboard shortcuts, but not while typing", async () => {
    const { call } = view();
    const key = (k: string, target: EventTarget = document.body, extra: KeyboardEventInit = {}) =>
      target.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, ...extra }));
    const help = document.querySelector("#help") as HTMLElement;
    key("?");
    expect(help.hidden).toBe(false);
    key("Escape");
    expect(help.hidden).toBe(true);
    key("c");
    expect(call.chat.visible).toBe(false);
    key("c", call.chat.input);
    expect(call.chat.visible).toBe(false);
    key("e");
    expect(call.board.tool).toBe("eraser");
    key("3");
    expect(call.board.colour).toBe("#f59e0b");
    expect(call.board.tool).toBe("pen");
    key("]");
    expect(call.board.width).toBe(12);
    key("b");
    expect(document.querySelector(".stage")?.getAttribute("data-mode")).toBe("grid");
    key("z", document.body, { ctrlKey: true });
    await vi.waitFor(() => expect(calls.map((c) => c[0])).toContain("board_undo"));
    expect(help.textContent).toContain("Undo your last stroke");
    call.close();
  });

  it("opens the network and statistics panels one at a time, by button and by key", () => {
    const { call } = view();
    const network = document.querySelector("#network-panel") as HTMLElement;
    const stats = document.querySelector("#stats-panel") as HTMLElement;
    (document.querySelector("#network-button") as HTMLElement).click();
    expect([network.hidden, stats.hidden]).toEqual([false, true]);
    (document.querySelector("#stats-button") as HTMLElement).click();
    expect([network.hidden, stats.hidden]).toEqual([true, false]);
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "n", bubbles: true }));
    expect([network.hidden, stats.hidden]).toEqual([false, true]);
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "n", bubbles: true }));
    expect([network.hidden, stats.hidden]).toEqual([true, true]);
    call.close();
  });

  it("leaves through the engine and hands back to the join screen", async () => {
    const { call, onLeft } = view();
    (document.querySelector("#leave-button") as HTMLElement).click();
    await vi.waitFor(() => expect(onLeft).toHaveBeenCalledWith(null, false));
    expect(onLeft).toHaveBeenCalledTimes(1);
    expect(calls.map((c) => c[0])).toContain("leave");
    call.close();
  });

  it("turns the microphone on and off with the button and M, and shows device errors", async () => {
    const { call } = view();
    const mic = document.querySelector("#mic-button") as HTMLElement;
    mic.click();
    await vi.waitFor(() => expect(mic.dataset.mic).toBe("on"));
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "m", bubbles: true }));
    await vi.waitFor(() => expect(mic.dataset.mic).toBe("muted"));
    expect(calls.filter((c) => c[0] === "set_mic").map((c) => c[1])).toEqual([{ on: true }, { on: false }]);
    call.handle({ type: "audio_error", device: "speaker", message: "No sound output: none here" });
    expect((document.querySelector("#toast") as HTMLElement).hidden).toBe(true);
    expect(document.querySelector(".chat-note")?.textContent).toContain("No sound output");
    call.handle({ type: "audio_error", device: "microphone", message: 'no audio device "default"' });
    expect((document.querySelector("#toast") as HTMLElement).hidden).toBe(false);
    expect(document.querySelector("#toast")?.textContent).toContain("no audio device");
    call.close();
  });

  it("lists devices, shows the input level, and applies a choice", async () => {
    const { call } = view();
    (document.querySelector("#settings-button") as HTMLElement).click();
    await vi.waitFor(() => expect(document.querySelector("#mic-select")).not.toBeNull());
    expect((document.querySelector("#speaker-select") as HTMLSelectElement).value).toBe("alsa:pulse");
    await vi.waitFor(() => expect(document.querySelector("#mic-level-text")?.textContent).toBe("-12 dBFS"), { timeout: 2000 });
    expect((document.querySelector("#mic-level") as HTMLMeterElement).value).toBeCloseTo(-12.4);
    (document.querySelector("#mic-select") as HTMLSelectElement).value = "alsa:pulse";
    (document.querySelector("#settings-apply") as HTMLElement).click();
    await vi.waitFor(() => expect(calls).toContainEqual(["set_devices", { microphone: "alsa:pulse", speaker: "alsa:pulse" }]));
    await vi.waitFor(() => expect((document.querySelector("#mic-button") as HTMLElement).dataset.mic).toBe("on"));
    call.close();
  });

  it("returns to the join screen with the reason when the room ends", () => {
    const { call, onLeft } = view();
    call.handle({ type: "closed", reason: "the room ended" });
    expect(onLeft).toHaveBeenCalledWith("the room ended");
  });

  it("turns the camera on with the chosen camera, and says why when there is none", async () => {
    const { call } = view();
    const camera = document.querySelector("#camera-button") as HTMLElement;
    camera.click();
    await vi.waitFor(() => expect(document.querySelector("#toast")?.textContent).toContain("no camera found"));
    expect(camera.dataset.camera).toBe("off");
    (document.querySelector("#settings-button") as HTMLElement).click();
    await vi.waitFor(() => expect(document.querySelector("#camera-select")).not.toBeNull());
    (document.querySelector("#camera-select") as HTMLSelectElement).value = "testsrc";
    (document.querySelector("#settings-apply") as HTMLElement).click();
    await vi.waitFor(() => expect(document.querySelector("#settings")?.hasAttribute("hidden")).toBe(true));
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "v", bubbles: true }));
    await vi.waitFor(() => expect(camera.dataset.camera).toBe("on"));
    camera.click();
    await vi.waitFor(() => expect(camera.dataset.camera).toBe("off"));
    expect(calls.filter((c) => c[0] === "set_camera").map((c) => c[1])).toEqual([{ camera: "default" }, { camera: "testsrc" }, { camera: null }]);
    call.close();
  });

  it("shares the screen or window picked, and stops", async () => {
    const { call } = view();
    const share = document.querySelector("#share-button") as HTMLElement;
    share.click();
    await vi.waitFor(() => expect(document.querySelector("#screen-select")).not.toBeNull());
    expect([...document.querySelectorAll("#screen-select option")].map((o) => o.textContent)).toEqual(["Screen screen (1280x720)", "Window: Notes"]);
    (document.querySelector("#screen-select") as HTMLSelectElement).value = "window:42";
    (document.querySelector("#share-start") as HTMLElement).click();
    await vi.waitFor(() => expect(share.dataset.sharing).toBe("true"));
    expect(share.textContent).toBe("Stop sharing");
    share.click();
    await vi.waitFor(() => expect(share.dataset.sharing).toBe("false"));
    expect(calls.filter((c) => c[0] === "share_screen").map((c) => c[1])).toEqual([{ target: "window:42" }, { target: null }]);
    call.close();
  });

  it("shows a shared screen large, lets the user switch to the grid and back", () => {
    const { call } = view();
    const stage = document.querySelector(".stage") as HTMLElement;
    const tiles = document.querySelector("#tiles") as HTMLElement;
    const layout = document.querySelector("#layout-button") as HTMLElement;
    expect(stage.dataset.mode).toBe("board");
    expect(layout.hidden).toBe(true);
    call.handle({ type: "roster", peers: [me, { ...ada, video: true, screen: true }] });
    expect(stage.dataset.mode).toBe("grid");
    expect(tiles.dataset.layout).toBe("presenter");
    expect(tiles.firstElementChild?.getAttribute("data-peer")).toBe("ada1/screen");
    expect(layout.hidden).toBe(false);
    layout.click();
    expect(tiles.dataset.layout).toBe("grid");
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "l", bubbles: true }));
    expect(tiles.dataset.layout).toBe("presenter");
    call.handle({ type: "roster", peers: [me, { ...ada, video: true }] });
    expect(tiles.dataset.layout).toBe("grid");
    expect(layout.hidden).toBe(true);
    call.close();
  });

  it("presents: our tile alone on the stage, the viewers listed, a raised hand first and announced", () => {
    const presenter: PeerView = { ...me, role: "publisher" };
    const viewer = (id: string, name: string, extra: Partial<PeerView> = {}): PeerView => ({ ...ada, id, name, role: "viewer", ...extra });
    const { call } = view(vi.fn(), { ...joined, me: presenter, role: "publisher" });
    const stage = document.querySelector(".stage") as HTMLElement;
    const audience = document.getElementById("audience") as HTMLElement;
    expect(stage.dataset.mode).toBe("grid");
    expect(audience.hidden).toBe(false);
    expect(document.getElementById("presenting-pill")).not.toBeNull();
    expect((document.getElementById("hand-button") as HTMLElement).hidden).toBe(true);
    expect(document.querySelector(".viewer.empty")?.textContent).toBe("No viewers yet");
    call.handle({ type: "roster", peers: [presenter, viewer("v1", "Bo"), viewer("v2", "Al"), viewer("v3", "Cy", { state: "refused" })] });
    // Only the presenter has a tile; the viewers are listed by name.
    expect([...document.querySelectorAll(".tile")].map((t) => t.getAttribute("data-peer"))).toEqual(["me1"]);
    const names = () => [...document.querySelectorAll(".viewer .viewer-name")].map((n) => n.textContent);
    expect(names()).toEqual(["Al", "Bo", "Cy"]);
    expect(document.querySelector(".viewer[data-peer='v3'] .viewer-note")?.textContent).toBe("not admitted");
    expect(document.getElementById("participant-count")?.textContent).toBe("1 presenting · 3 watching");
    // Bo raises a hand: first in the list, counted, and announced to the presenter.
    call.handle({ type: "roster", peers: [presenter, viewer("v1", "Bo", { hand: true }), viewer("v2", "Al"), viewer("v3", "Cy", { state: "refused" })] });
    expect(names()).toEqual(["Bo", "Al", "Cy"]);
    expect(document.querySelector(".viewer[data-peer='v1']")?.getAttribute("data-hand")).toBe("true");
    expect(document.getElementById("audience-heading")?.textContent).toBe("Viewers · 3 · 1 hand up");
    expect(document.getElementById("toast")?.textContent).toBe("Bo raised a hand");
    // Al raises one later: after Bo, whatever the names.
    call.handle({ type: "roster", peers: [presenter, viewer("v1", "Bo", { hand: true }), viewer("v2", "Al", { hand: true })] });
    expect(names()).toEqual(["Bo", "Al"]);
    call.close();
  });

  it("watches: the presenter large, a co-host beside, and a hand raised and lowered with the button and H", async () => {
    const watcher: PeerView = { ...me, role: "viewer" };
    const { call } = view(vi.fn(), { ...joined, me: watcher, role: "viewer" });
    const tiles = document.querySelector("#tiles") as HTMLElement;
    const waiting = document.getElementById("stage-waiting") as HTMLElement;
    expect(waiting.hidden).toBe(false);
    expect(document.querySelectorAll(".tile")).toHaveLength(0);
    const host: PeerView = { ...ada, id: "p1", name: "Pat", role: "publisher" };
    const guest: PeerView = { ...ada, id: "b1", name: "Guest", role: "both" };
    call.handle({ type: "roster", peers: [watcher, guest, host, { ...ada, id: "v2", name: "Vi", role: "viewer", state: "in_room" }] });
    expect(waiting.hidden).toBe(true);
    expect([...document.querySelectorAll(".tile")].map((t) => t.getAttribute("data-peer"))).toEqual(["p1", "b1"]);
    expect(tiles.dataset.layout).toBe("presenter");
    expect(document.querySelector(".viewer[data-peer='me1'] .viewer-name")?.textContent).toBe("Carol (you)");
    const hand = document.getElementById("hand-button") as HTMLElement;
    expect(hand.hidden).toBe(false);
    hand.click();
    await vi.waitFor(() => expect(hand.dataset.hand).toBe("true"));
    expect(hand.textContent).toBe("Lower hand");
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "h", bubbles: true }));
    await vi.waitFor(() => expect(hand.dataset.hand).toBe("false"));
    expect(calls.filter((c) => c[0] === "raise_hand").map((c) => c[1])).toEqual([{ raised: true }, { raised: false }]);
    call.close();
  });

  it("presents down a tree: hands reach the presenter, who invites one to speak and ends it", async () => {
    const { call } = view();
    const panel = document.getElementById("tree-stage") as HTMLElement;
    const hand = document.getElementById("hand-button") as HTMLElement;
    expect(panel.hidden).toBe(true);
    call.handle({ type: "tree", parent: null, children: ["v1", "v2"], depth: 0, is_root: true, root: "me1", subtree: 3 });
    expect(panel.hidden).toBe(false);
    // The root has nobody to raise a hand to.
    expect(hand.hidden).toBe(true);
    expect(document.querySelector("#tree-hands .viewer.empty")?.textContent).toBe("No hands up");
    call.handle({ type: "stage", speaker: null, hands: [{ peer: "v9", name: "Vic" }, { peer: "v7", name: "Wes" }] });
    expect(document.getElementById("toast")?.textContent).toBe("Wes raised a hand");
    expect([...document.querySelectorAll("#tree-hands .viewer")].map((e) => e.getAttribute("data-peer"))).toEqual(["v9", "v7"]);
    expect(document.getElementById("tree-hands-heading")?.textContent).toBe("Raised hands · 2");
    (document.querySelector("#tree-hands .viewer[data-peer='v9'] .hand-accept") as HTMLElement).click();
    await vi.waitFor(() => expect(calls.filter((c) => c[0] === "set_stage").map((c) => c[1])).toEqual([{ peer: "v9" }]));
    // The room says so: Vic on stage, its hand answered.
    call.handle({ type: "stage", speaker: { peer: "v9", name: "Vic" }, hands: [{ peer: "v7", name: "Wes" }] });
    expect(document.getElementById("tree-stage-speaker")?.textContent).toBe("Vic is on stage");
    expect(document.getElementById("toast")?.textContent).toBe("Vic is on stage");
    const end = document.getElementById("tree-stage-end") as HTMLElement;
    expect(end.hidden).toBe(false);
    end.click();
    await vi.waitFor(() => expect(calls.filter((c) => c[0] === "set_stage").map((c) => c[1])).toEqual([{ peer: "v9" }, { peer: null }]));
    call.close();
  });

  it("watches down a tree: raises a hand, sees who is on stage, and lowers it once on stage", async () => {
    const { call } = view();
    const hand = document.getElementById("hand-button") as HTMLElement;
    call.handle({ type: "tree", parent: "p1", children: [], depth: 2, is_root: false, root: "r1", subtree: 1 });
    const rita: PeerView = { ...ada, id: "r1", name: "Rita", state: "presenting" };
    call.handle({ type: "roster", peers: [me, ada, rita] });
    // The presenter first and large, in the participants view.
    const tiles = document.getElementById("tiles") as HTMLElement;
    expect(tiles.querySelector(".tile")?.getAttribute("data-peer")).toBe("r1");
    expect(tiles.dataset.layout).toBe("presenter");
    expect(document.querySelector(".stage")?.getAttribute("data-mode")).toBe("grid");
    expect(hand.hidden).toBe(false);
    // A viewer is shown no list of hands (they go to the presenter alone).
    expect((document.getElementById("tree-hands") as HTMLElement).hidden).toBe(true);
    expect((document.getElementById("tree-stage-end") as HTMLElement).hidden).toBe(true);
    hand.click();
    await vi.waitFor(() => expect(hand.dataset.hand).toBe("true"));
    call.handle({ type: "stage", speaker: { peer: "me1", name: "Carol" }, hands: [] });
    expect(document.getElementById("tree-stage-speaker")?.textContent).toBe("You are on stage: every viewer hears your microphone");
    await vi.waitFor(() => expect(hand.dataset.hand).toBe("false"));
    expect(calls.filter((c) => c[0] === "raise_hand").map((c) => c[1])).toEqual([{ raised: true }, { raised: false }]);
    // The stage's word can come before the answer to raising the hand: it is lowered then.
    call.handle({ type: "stage", speaker: null, hands: [] });
    hand.click();
    call.handle({ type: "stage", speaker: { peer: "me1", name: "Carol" }, hands: [] });
    await vi.waitFor(() => expect(calls.filter((c) => c[0] === "raise_hand")).toHaveLength(4));
    await vi.waitFor(() => expect(hand.dataset.hand).toBe("false"));
    expect(calls.filter((c) => c[0] === "raise_hand").map((c) => c[1])).toEqual([{ raised: true }, { raised: false }, { raised: true }, { raised: false }]);
    // A speaker whose hand said no name (the presenter chose it unasked).
    call.handle({ type: "stage", speaker: { peer: "x1", name: null }, hands: [] });
    expect(document.getElementById("tree-stage-speaker")?.textContent).toBe("A viewer is on stage");
    call.handle({ type: "stage", speaker: null, hands: [] });
    expect(document.getElementById("tree-stage-speaker")?.textContent).toBe("Nobody is on stage");
    call.close();
  });

  it("presents to more viewers than it links: the count and the list say how many watch", () => {
    const { call } = view(vi.fn(), { ...joined, role: "publisher", me: { ...me, role: "publisher" } });
    const viewers = ["v1", "v2"].map((id, i): PeerView => ({ ...ada, id, name: `Viewer ${i + 1}`, role: "viewer" }));
    call.handle({ type: "roster", peers: [{ ...me, role: "publisher" }, ...viewers] });
    const webLink = () => (document.getElementById("invite-web-link") as HTMLElement).closest(".invite-web") as HTMLElement;
    expect(webLink().hidden).toBe(false);
    expect(document.getElementById("invite-tree-note")?.hidden).toBe(true);
    // Two linked, five more through them.
    call.handle({ type: "tree", parent: null, children: ["v1", "v2"], depth: 0, is_root: true, root: "me1", subtree: 8 });
    expect(document.getElementById("audience")?.hidden).toBe(false);
    expect(document.getElementById("audience-heading")?.textContent).toBe("Viewers · 7");
    expect(document.getElementById("audience-beyond")?.textContent).toBe("5 more, through the viewers who pass it on");
    expect(document.querySelector(".count")?.textContent).toBe("7 watching");
    // A tree: no browser link (the server turns browsers away), and the invite says why.
    expect(webLink().hidden).toBe(true);
    expect(document.getElementById("invite-tree-note")?.hidden).toBe(false);
    // All of them linked to us: nothing beyond.
    call.handle({ type: "tree", parent: null, children: ["v1", "v2"], depth: 0, is_root: true, root: "me1", subtree: 3 });
    expect(document.getElementById("audience-beyond")).toBeNull();
    expect(document.querySelector(".count")?.textContent).toBe("2 watching");
    call.close();
  });

  it("watches a presentation's tree: no audience list, and the count says whom it passes it on to", () => {
    const { call } = view(vi.fn(), { ...joined, role: "viewer", me: { ...me, role: "viewer" } });
    const rita: PeerView = { ...ada, id: "r1", name: "Rita", state: "presenting" };
    call.handle({ type: "tree", parent: "p1", children: ["c1"], depth: 2, is_root: false, root: "r1", subtree: 2 });
    call.handle({ type: "roster", peers: [{ ...me, role: "viewer" }, { ...ada, id: "p1", role: "viewer" }, { ...ada, id: "c1", role: "viewer" }, rita] });
    expect(document.getElementById("audience")?.hidden).toBe(true);
    expect(document.querySelector(".count")?.textContent).toBe("Watching · passing it on to 1");
    expect(document.querySelector("#tiles .tile")?.getAttribute("data-peer")).toBe("r1");
    call.close();
  });

  it("a call becomes a presentation when someone presents", () => {
    const { call } = view();
    expect((document.getElementById("audience") as HTMLElement).hidden).toBe(true);
    call.handle({ type: "roster", peers: [me, { ...ada, role: "publisher" }] });
    expect((document.getElementById("audience") as HTMLElement).hidden).toBe(false);
    expect((document.querySelector(".stage") as HTMLElement).dataset.mode).toBe("grid");
    expect((document.querySelector("#tiles") as HTMLElement).firstElementChild?.getAttribute("data-peer")).toBe("ada1");
    call.close();
  });

  it("an access code refused with nobody else linked goes back to the join screen asking for it", async () => {
    const onLeft = vi.fn();
    const { call } = view(onLeft, { ...joined, me: { ...me, role: "viewer" }, role: "viewer" });
    call.handle({ type: "roster", peers: [{ ...me, role: "viewer" }, { ...ada, role: "publisher", state: "refused" }] });
    call.handle({ type: "not_verified", name: "Ada", reason: "not verified" });
    await vi.waitFor(() => expect(onLeft).toHaveBeenCalledWith("Ada did not accept your access code.", true));
    expect(calls.map((c) => c[0])).toContain("leave");
    // Linked to someone else: only said.
    const second = view(vi.fn());
    second.call.handle({ type: "roster", peers: [me, ada] });
    second.call.handle({ type: "not_verified", name: "Bo", reason: "not verified" });
    expect(document.getElementById("toast")?.textContent).toBe("Bo did not accept your access code.");
    expect(second.onLeft).not.toHaveBeenCalled();
    second.call.close();
  });

  it("shows the safety code of a peer and marks it verified", async () => {
    const { call } = view();
    call.handle({ type: "roster", peers: [me, { ...ada, safety_code: "12345 67890 11111 22222" }] });
    (document.querySelector(".tile[data-peer='ada1'] .tile-safety") as HTMLElement).click();
    expect((document.getElementById("safety") as HTMLElement).hidden).toBe(false);
    expect(document.getElementById("safety-code")?.textContent).toBe("12345 67890 11111 22222");
    (document.getElementById("safety-verify") as HTMLElement).click();
    await vi.waitFor(() => expect(calls).toContainEqual(["set_verified", { peer: "ada1", verified: true }]));
    await vi.waitFor(() => expect((document.getElementById("safety") as HTMLElement).hidden).toBe(true));
    call.close();
  });
});
