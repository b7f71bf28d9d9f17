import { afterEach, describe, expect, it, vi } from "vitest";
import type { Prefs } from "./bindings";
import { type DeviceApi, deviceCheck, PREVIEW_TILE } from "./devices";

const prefs: Prefs = { name: "", server: "", recent: [], microphone: null, speaker: "spk2", verified: [], checked: false };

/** A picture packet for `tile` (see src-tauri/src/video.rs). */
function packet(tile: string, width: number, height: number): ArrayBuffer {
  const id = new TextEncoder().encode(tile);
  const bytes = new Uint8Array(2 + id.length + 4 + width * height * 4);
  bytes[0] = 1;
  bytes[1] = id.length;
  bytes.set(id, 2);
  new DataView(bytes.buffer).setUint16(2 + id.length, width, true);
  new DataView(bytes.buffer).setUint16(4 + id.length, height, true);
  return bytes.buffer;
}

function fakeApi(report = { microphone: null as string | null, camera: null as string | null, speaker: null as string | null }) {
  let onPicture: ((b: ArrayBuffer) => void) | null = null;
  const api = {
    audioDevices: vi.fn(async () => ({
      microphones: [{ id: "mic1", name: "Desk mic", default: true }],
      speakers: [{ id: "spk1", name: "Speakers", default: true }, { id: "spk2", name: "Headphones", default: false }],
      microphone: null,
      speaker: "spk2",
    })),
    videoDevices: vi.fn(async () => ({ cameras: [{ id: "testsrc", name: "Test pattern" }], screens: [] })),
    setDevices: vi.fn(async () => null),
    deviceCheckDone: vi.fn(async () => null),
    deviceCheck: vi.fn(async () => report),
    deviceCheckLevel: vi.fn(async () => -18.4),
    deviceCheckStop: vi.fn(async () => null),
    playTestSound: vi.fn(async () => null),
    videoSizes: vi.fn(async () => null),
    videoSubscribe: vi.fn(async (cb: (b: ArrayBuffer) => void) => {
      onPicture = cb;
      return null;
    }),
  } satisfies DeviceApi;
  return { api, picture: (b: ArrayBuffer) => onPicture?.(b) };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

afterEach(() => document.body.replaceChildren());

describe("device check", () => {
  it("asks for a name on the first run, meters the microphone and says what is missing", async () => {
    const { api } = fakeApi({ microphone: null, camera: "No camera was found: the others will see your initials instead of you.", speaker: null });
    const done = vi.fn();
    document.body.append(deviceCheck(api, prefs, true, done));
    expect($("check-name")).not.toBeNull();
    await vi.waitFor(() => expect(api.deviceCheck).toHaveBeenCalledWith(null, "default"));
    await vi.waitFor(() => expect($<HTMLMeterElement>("check-level").dataset.db).toBe("-18"));
    expect($("check-level-text").textContent).toBe("-18 dBFS");
    await vi.waitFor(() => expect($("check-camera-problem").hidden).toBe(false));
    expect($("check-camera-problem").textContent).toContain("No camera was found");
    expect($("check-mic-problem").hidden).toBe(true);
    // The remembered speaker is chosen; choosing the test pattern restarts the check with it.
    expect($<HTMLSelectElement>("check-speaker").value).toBe("spk2");
    const camera = $<HTMLSelectElement>("check-camera");
    camera.value = "testsrc";
    camera.dispatchEvent(new Event("change"));
    await vi.waitFor(() => expect(api.deviceCheck).toHaveBeenLastCalledWith(null, "testsrc"));
  });

  it("draws the preview tile's pictures and nothing else", async () => {
    const { api, picture } = fakeApi();
    document.body.append(deviceCheck(api, { ...prefs, checked: true, name: "Ada" }, false, () => {}));
    await vi.waitFor(() => expect(api.videoSizes).toHaveBeenCalledWith([{ peer: PREVIEW_TILE, width: 320, height: 180 }]));
    const canvas = $<HTMLCanvasElement>("check-preview");
    picture(packet("somebody", 4, 2));
    expect(canvas.dataset.frames).toBeUndefined();
    picture(packet(PREVIEW_TILE, 4, 2));
    picture(packet(PREVIEW_TILE, 4, 2));
    expect(canvas.dataset.frames).toBe("2");
    expect([canvas.width, canvas.height]).toEqual([4, 2]);
    expect($("check-name")).toBeNull();
  });

  it("plays the test sound on the chosen speaker and reports one that fails", async () => {
    const { api } = fakeApi();
    api.playTestSound.mockRejectedValueOnce({ kind: "device", message: "The speaker could not be opened (busy): you will not hear the others." });
    document.body.append(deviceCheck(api, prefs, true, () => {}));
    await vi.waitFor(() => expect($<HTMLSelectElement>("check-speaker").value).toBe("spk2"));
    $("check-play").click();
    await vi.waitFor(() => expect($("check-speaker-problem").hidden).toBe(false));
    expect($("check-speaker-problem").textContent).toContain("could not be opened");
    expect(api.playTestSound).toHaveBeenCalledWith("spk2");
  });

  it("keeps the devices and the name when the user continues, and refuses no name", async () => {
    const { api } = fakeApi();
    api.deviceCheckDone.mockRejectedValueOnce({ kind: "bad_input", message: "Enter your name (at most 64 characters)." });
    const done = vi.fn();
    document.body.append(deviceCheck(api, prefs, true, done));
    await vi.waitFor(() => expect($<HTMLSelectElement>("check-mic").value).toBe(""));
    const form = $<HTMLFormElement>("check-form");
    form.requestSubmit();
    await vi.waitFor(() => expect($("check-error").textContent).toContain("Enter your name"));
    expect(done).not.toHaveBeenCalled();
    $<HTMLInputElement>("check-name").value = "Ada";
    form.requestSubmit();
    await vi.waitFor(() => expect(done).toHaveBeenCalled());
    expect(api.setDevices).toHaveBeenLastCalledWith(null, "spk2");
    expect(api.deviceCheckDone).toHaveBeenLastCalledWith("Ada");
  });

  it("stops asking for the level once another screen replaced it", async () => {
    const { api } = fakeApi();
    const screen = deviceCheck(api, prefs, true, () => {});
    document.body.append(screen);
    await vi.waitFor(() => expect(api.deviceCheckLevel).toHaveBeenCalled());
    screen.remove();
    // One more tick notices; after it nothing more is asked.
    await new Promise((r) => setTimeout(r, 250));
    const asked = api.deviceCheckLevel.mock.calls.length;
    await new Promise((r) => setTimeout(r, 350));
    expect(api.deviceCheckLevel.mock.calls.length).toBe(asked);
  });
});
