// The device check: the first run asks for a name once and shows it before the first call;
// the join screen offers it again. The microphone's level on a meter, the camera's preview,
// a test sound on the speaker, and a plain sentence for whatever is missing.
import type { AudioDevices, DeviceReport, Prefs, TileSize, VideoDevices } from "./bindings";
import { h } from "./dom";
import { errorText } from "./ipc";
import { readPicture } from "./tiles";

/** The commands this needs. */
export type DeviceApi = {
  audioDevices: () => Promise<AudioDevices>;
  videoDevices: () => Promise<VideoDevices>;
  setDevices: (microphone: string | null, speaker: string | null) => Promise<unknown>;
  deviceCheckDone: (name: string | null) => Promise<null>;
  deviceCheck: (microphone: string | null, camera: string | null) => Promise<DeviceReport>;
  deviceCheckLevel: () => Promise<number | null>;
  deviceCheckStop: () => Promise<null>;
  playTestSound: (speaker: string | null) => Promise<null>;
  videoSizes: (sizes: TileSize[]) => Promise<null>;
  videoSubscribe: (onPicture: (buffer: ArrayBuffer) => void) => Promise<null>;
};

/** The tile the app draws the camera's preview in. */
export const PREVIEW_TILE = "preview";
const PREVIEW = { width: 320, height: 180 };

/** Fills a select with `options` (value, label), `chosen` selected (else the first). */
function fill(el: HTMLSelectElement, options: Array<[string, string]>, chosen: string): void {
  el.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  el.value = options.some(([v]) => v === chosen) ? chosen : options[0]?.[0] ?? "";
}

/** The device check screen; `firstRun`: it also asks for a name. `done` when the user
 * continues (the devices chosen are remembered). */
export function deviceCheck(api: DeviceApi, prefs: Prefs, firstRun: boolean, done: () => void): HTMLElement {
  const name = h("input", { id: "check-name", autocomplete: "nickname", maxlength: 64, placeholder: "How others see you" });
  name.value = prefs.name;
  const mic = h("select", { id: "check-mic", class: "select" });
  const speaker = h("select", { id: "check-speaker", class: "select" });
  const camera = h("select", { id: "check-camera", class: "select" });
  const meter = h("meter", { id: "check-level", min: -60, max: 0, low: -45, high: -6, optimum: -20, value: -60 });
  const levelText = h("span", { class: "level-text", id: "check-level-text" }, "…");
  const canvas = h("canvas", { id: "check-preview", class: "check-preview", width: PREVIEW.width, height: PREVIEW.height });
  const problems = {
    microphone: h("p", { class: "check-problem", id: "check-mic-problem", hidden: true }),
    camera: h("p", { class: "check-problem", id: "check-camera-problem", hidden: true }),
    speaker: h("p", { class: "check-problem", id: "check-speaker-problem", hidden: true }),
  };
  const error = h("p", { class: "form-error", id: "check-error", role: "alert" });
  const play = h("button", { class: "btn", type: "button", id: "check-play" }, "Play a test sound");
  const go = h("button", { class: "btn primary", type: "submit", id: "check-done" }, firstRun ? "Continue" : "Done");
  let closed = false;
  /** Whether the screen has been in the page (it goes when another screen replaces it). */
  let shown = false;

  const show = (report: DeviceReport) => {
    for (const key of ["microphone", "camera", "speaker"] as const) {
      problems[key].textContent = report[key] ?? "";
      problems[key].hidden = !report[key];
    }
  };
  const restart = async () => {
    try {
      show(await api.deviceCheck(mic.value || null, camera.value || null));
    } catch (e) {
      error.textContent = errorText(e);
    }
  };

  // Pictures for the preview tile, drawn as they come.
  const context = canvas.getContext("2d");
  void api
    .videoSubscribe((buffer) => {
      const picture = readPicture(buffer);
      if (closed || !picture || picture.peer !== PREVIEW_TILE) return;
      if (canvas.width !== picture.width || canvas.height !== picture.height) {
        canvas.width = picture.width;
        canvas.height = picture.height;
      }
      context?.putImageData(new ImageData(picture.rgba, picture.width, picture.height), 0, 0);
      canvas.dataset.frames = String(Number(canvas.dataset.frames ?? "0") + 1);
    })
    .then(() => api.videoSizes([{ peer: PREVIEW_TILE, ...PREVIEW }]))
    .catch((e) => (error.textContent = errorText(e)));

  // Until the user continues, or the screen goes (an invite opened meanwhile joins a call).
  const poll = setInterval(async () => {
    if (screen.isConnected) shown = true;
    else if (shown) closed = true;
    if (closed) return clearInterval(poll);
    const level = await api.deviceCheckLevel().catch(() => null);
    meter.value = level === null ? -60 : Math.max(-60, level);
    meter.dataset.db = level === null ? "" : String(Math.round(level));
    levelText.textContent = level === null || level < -90 ? "Silence" : `${Math.round(level)} dBFS`;
  }, 100);

  void Promise.all([api.audioDevices(), api.videoDevices()]).then(([audio, video]) => {
    const choices = (list: AudioDevices["microphones"]): Array<[string, string]> => [
      ["", "System default"],
      ...list.map((d): [string, string] => [d.id, d.default ? `${d.name} (default)` : d.name]),
    ];
    fill(mic, choices(audio.microphones), audio.microphone ?? "");
    fill(speaker, choices(audio.speakers), audio.speaker ?? "");
    const cameras: Array<[string, string]> = [["default", "System default"], ...video.cameras.map((c): [string, string] => [c.id, c.name]), ["", "No camera"]];
    fill(camera, cameras, "default");
    for (const el of [mic, camera]) el.addEventListener("change", () => void restart());
    void restart();
  });

  play.addEventListener("click", async () => {
    play.disabled = true;
    try {
      await api.playTestSound(speaker.value || null);
      problems.speaker.hidden = true;
    } catch (e) {
      problems.speaker.textContent = errorText(e);
      problems.speaker.hidden = false;
    }
    play.disabled = false;
  });

  const form = h(
    "form",
    { class: "join-form", id: "check-form" },
    firstRun && h("label", { class: "field" }, h("span", { class: "field-label" }, "Your name"), name),
    h(
      "div",
      { class: "check-grid" },
      h(
        "div",
        {},
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Microphone"), mic),
        h("div", { class: "field" }, h("span", { class: "field-label" }, "Input level — say something"), h("div", { class: "level" }, meter, levelText)),
        problems.microphone,
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Speaker"), speaker),
        h("div", { class: "field" }, play),
        problems.speaker,
      ),
      h("div", {}, h("label", { class: "field" }, h("span", { class: "field-label" }, "Camera"), camera), canvas, problems.camera),
    ),
    error,
    h("div", { class: "actions" }, go),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await api.setDevices(mic.value || null, speaker.value || null);
      await api.deviceCheckDone(firstRun ? name.value : null);
    } catch (err) {
      error.textContent = errorText(err);
      return;
    }
    closed = true;
    done();
  });

  const screen = h(
    "main",
    { class: "join-screen", id: "device-check" },
    h(
      "div",
      { class: "join-card" },
      h(
        "div",
        { class: "brand" },
        h("img", { src: "/icon.png", alt: "", class: "brand-icon" }),
        h("div", {}, h("h1", {}, firstRun ? "Welcome to Plenum" : "Check your devices"), h("p", { class: "tagline" }, firstRun ? "Tell us your name and check your microphone, camera and speaker before your first call." : "Your microphone, camera and speaker, before a call.")),
      ),
      form,
    ),
  );
  return screen;
}
