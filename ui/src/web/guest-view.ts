// The guest page's parts: status and own id, the peers with their safety codes, the chat,
// the peers' videos and our controls. Everything a peer sends becomes text nodes only.
import { clear, h } from "../dom";
import type { Lane } from "./media";
import type { PeerView } from "./room";

export class GuestView {
  readonly element: HTMLElement;
  readonly chatInput: HTMLInputElement;
  readonly chatForm: HTMLFormElement;
  readonly micButton: HTMLButtonElement;
  readonly cameraButton: HTMLButtonElement;
  readonly leaveButton: HTMLButtonElement;
  private readonly statusLine = h("span", { id: "guest-status", class: "guest-status" }, "joining");
  private readonly meLine = h("code", { id: "guest-me", class: "guest-me" });
  private readonly peerList = h("ul", { id: "guest-peers", class: "guest-peers" });
  private readonly chatLog = h("ol", { id: "guest-chat-log", class: "guest-chat-log", role: "log", "aria-live": "polite" });
  private readonly videos = h("section", { id: "guest-videos", class: "guest-videos" });
  private readonly names = new Map<string, string>();

  constructor(room: string) {
    this.chatInput = h("input", {
      id: "guest-chat-input",
      class: "guest-input",
      placeholder: "Message everyone",
      maxlength: 4000,
      autocomplete: "off",
    });
    const send = h("button", { id: "guest-chat-send", class: "btn primary small", type: "submit" }, "Send");
    this.chatForm = h("form", { class: "guest-chat-form" }, this.chatInput, send);
    this.micButton = h("button", { id: "guest-mic", class: "btn small", type: "button" }, "Microphone on");
    this.cameraButton = h("button", { id: "guest-camera", class: "btn small", type: "button" }, "Camera on");
    this.leaveButton = h("button", { id: "guest-leave", class: "btn danger small", type: "button" }, "Leave");
    this.element = h(
      "div",
      { class: "guest" },
      h(
        "header",
        { class: "guest-header" },
        h("h1", {}, room),
        this.statusLine,
        this.meLine,
        h("div", { class: "guest-controls" }, this.micButton, this.cameraButton, this.leaveButton),
      ),
      this.videos,
      h(
        "aside",
        { class: "guest-side" },
        h("h2", {}, "People"),
        this.peerList,
        h("h2", {}, "Chat"),
        this.chatLog,
        this.chatForm,
      ),
    );
  }

  status(text: string): void {
    this.statusLine.textContent = text;
  }

  me(id: string): void {
    this.meLine.textContent = id;
    this.meLine.title = "Your peer id";
  }

  /** Adds or updates a peer's entry. */
  peer(view: PeerView): void {
    this.names.set(view.peer, view.name);
    let item = this.peerList.querySelector<HTMLLIElement>(`li[data-peer="${view.peer}"]`);
    if (!item) {
      item = h("li", { "data-peer": view.peer });
      this.peerList.appendChild(item);
    }
    item.dataset.name = view.name;
    item.dataset.state = view.state;
    if (view.safetyCode) item.dataset.safetyCode = view.safetyCode;
    else delete item.dataset.safetyCode;
    clear(item);
    item.append(
      h("span", { class: "guest-peer-name" }, view.name),
      h("span", { class: `guest-peer-state ${view.state}` }, view.state),
      h("code", { class: "guest-safety", title: "Safety code: the same on both sides" }, view.safetyCode ?? ""),
    );
  }

  /** The call is over: nothing more can be sent. */
  end(status: string): void {
    this.status(status);
    for (const control of [this.chatInput, this.micButton, this.cameraButton, this.leaveButton]) control.disabled = true;
  }

  removePeer(id: string): void {
    this.peerList.querySelector(`li[data-peer="${id}"]`)?.remove();
    this.dropMedia(id);
  }

  /** A chat message; `own` for ours. */
  chat(from: string, text: string, own: boolean): void {
    const name = own ? "You" : (this.names.get(from) ?? from.slice(0, 8));
    this.append(
      h(
        "li",
        { class: own ? "guest-chat-line own" : "guest-chat-line", "data-from": from },
        h("span", { class: "guest-chat-name" }, name),
        h("span", { class: "guest-chat-text" }, text),
      ),
    );
  }

  /** A problem worth showing that does not end the call. */
  note(code: string, message: string): void {
    this.append(h("li", { class: "guest-chat-note", "data-error": code }, `${code}: ${message}`));
  }

  /** A peer's track: a video tile per camera and screen, shown while pictures come, and a
   * hidden player for audio. */
  track(peer: string, lane: Lane, track: MediaStreamTrack): void {
    const selector = `[data-peer="${peer}"][data-lane="${lane}"]`;
    const media =
      this.videos.querySelector<HTMLMediaElement>(selector) ?? (lane === "audio" ? this.audioElement(peer) : this.videoTile(peer, lane));
    media.srcObject = new MediaStream([track]);
    const tile = media.closest("figure");
    if (!tile) return;
    tile.hidden = track.muted;
    track.addEventListener("unmute", () => (tile.hidden = false));
    track.addEventListener("mute", () => (tile.hidden = true));
  }

  /** Our own camera, small and mirrored. */
  preview(track: MediaStreamTrack): void {
    const video = h("video", { class: "guest-preview", autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    video.srcObject = new MediaStream([track]);
    this.videos.prepend(h("figure", { class: "guest-tile own" }, video, h("figcaption", {}, "You")));
  }

  /** Removes a peer's videos and audio. */
  dropMedia(peer: string): void {
    for (const el of this.videos.querySelectorAll(`[data-peer="${peer}"]`)) (el.closest("figure") ?? el).remove();
  }

  private audioElement(peer: string): HTMLAudioElement {
    const audio = h("audio", { autoplay: true, "data-peer": peer, "data-lane": "audio" });
    this.videos.appendChild(audio);
    return audio;
  }

  private videoTile(peer: string, lane: Lane): HTMLVideoElement {
    const video = h("video", { autoplay: true, playsinline: true, muted: true, "data-peer": peer, "data-lane": lane });
    video.muted = true;
    const caption = `${this.names.get(peer) ?? peer.slice(0, 8)}${lane === "screen" ? " (screen)" : ""}`;
    this.videos.appendChild(h("figure", { class: "guest-tile" }, video, h("figcaption", {}, caption)));
    return video;
  }

  private append(item: HTMLLIElement): void {
    this.chatLog.appendChild(item);
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }
}
