// The call view: top bar, participant tiles, whiteboard with shared cursors, chat, the
// reconnection banner, the help overlay and keyboard shortcuts. In a presentation (someone
// presents, or we joined to present or to watch) the tiles are the presenters' (the first
// large), the viewers are listed beside them, and a viewer can raise a hand.
import type { BoardChange, Joined, PeerView, UiEvent } from "./bindings";
import { BoardModel, BoardView, COLOURS, WIDTHS } from "./board";
import { ChatPanel } from "./chat";
import { Cursors, throttle } from "./cursors";
import { h, isTyping } from "./dom";
import { AudienceList } from "./audience";
import { Chimes } from "./chimes";
import { type CallApi, errorText } from "./ipc";
import { NetworkPanel } from "./network";
import { StatsPanel } from "./stats";
import { readPicture, Tiles } from "./tiles";
import { TreeStage } from "./treestage";

export const SHORTCUTS: Array<[string, string]> = [
  ["B", "Switch between whiteboard and participants"],
  ["C", "Show or hide chat"],
  ["/", "Write a chat message"],
  ["P", "Pen"],
  ["E", "Eraser"],
  ["1 – 6", "Pen colour"],
  ["[  ]", "Thinner / thicker line"],
  ["Ctrl+Z", "Undo your last stroke"],
  ["M", "Microphone on / off"],
  ["V", "Camera on / off"],
  ["S", "Share your screen / stop sharing"],
  ["L", "Shared screen or presenter large / grid"],
  ["H", "Raise or lower your hand (watching a presentation)"],
  ["N", "Show or hide the network panel"],
  ["Q", "Show or hide call statistics"],
  ["I", "Show the invite link"],
  ["?", "This help"],
  ["Esc", "Close dialogs"],
];

/** Whether a browser opening `link` gets no secure context (plain http to another machine). */
export function insecure(link: string): boolean {
  try {
    const url = new URL(link);
    return url.protocol === "http:" && !["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  } catch {
    return false;
  }
}

export interface CallOptions {
  openLink: (href: string) => void;
  /** The call ended; `askCode`: because a presenter asks for an access code. */
  onLeft: (reason: string | null, askCode?: boolean) => void;
  /** Plays a sound (a chime); the page's own audio when absent. */
  playSound?: (url: string) => void;
  /** Opens the About dialog (the help dialog offers it); absent in a browser guest. */
  showAbout?: () => void;
}

export class CallView {
  readonly element: HTMLElement;
  readonly model = new BoardModel();
  readonly board: BoardView;
  readonly cursors = new Cursors();
  readonly tiles = new Tiles();
  readonly chat: ChatPanel;
  readonly network: NetworkPanel;
  readonly stats = new StatsPanel();
  readonly audience = new AudienceList();
  readonly treeStage: TreeStage;
  /** In a tree room, whether we are its root (the presenter); `null` in other rooms. */
  private treeRoot: boolean | null = null;
  /** In a tree room, how many are in it below us (us included), and how many we pass it on to. */
  private treeSize = { subtree: 0, children: 0 };
  /** A large room's presenter: another's name, or us. */
  private presenting: { name: string | null; you: boolean } = { name: null, you: false };
  private readonly roomPresenter = h("span", { class: "pill", id: "room-presenter-pill" });
  /** A tree room's root while we are a viewer in it: the presenter, shown large. */
  private presenter: string | null = null;
  private roster = new Map<string, PeerView>();
  private chimes: Chimes;
  /** A presentation: someone presents or watches (or we do). */
  private webinar: boolean;
  private handButton: HTMLButtonElement;
  private waiting: HTMLElement;
  /** Whether the room is cellular (its roster is our links, not the room). */
  private large = false;
  private mode: "grid" | "board";
  private banner: HTMLElement;
  private count: HTMLElement;
  private chatBadge: HTMLElement;
  private help: HTMLElement;
  private invite: HTMLElement;
  private confirm: HTMLElement;
  private toolbar: HTMLElement;
  private stage: HTMLElement;
  private frame = 0;
  private resize: ResizeObserver | null = null;
  private closed = false;
  private micButton: HTMLButtonElement;
  private cameraButton: HTMLButtonElement;
  private shareButton: HTMLButtonElement;
  private layoutButton: HTMLButtonElement;
  private sharePicker: HTMLElement;
  private safety: HTMLElement;
  /** The camera chosen in the settings (`null`: the default). */
  private camera: string | null = null;
  private settings: HTMLElement;
  private toast: HTMLElement;
  private ignored = 0;
  private lastVideoSizes = "";
  private keys = (e: KeyboardEvent) => this.key(e);

  constructor(
    private readonly api: CallApi,
    readonly joined: Joined,
    private readonly options: CallOptions,
  ) {
    this.webinar = joined.role !== "both";
    this.treeStage = new TreeStage(joined.me.id, (peer) => void this.setStage(peer));
    this.chimes = new Chimes(options.playSound);
    // A presentation opens on the presenters; a call opens on the whiteboard.
    this.mode = this.webinar ? "grid" : "board";
    const sendCursor = throttle<[number, number] | null>(50, (at) => void api.sendCursor(at).catch(() => {}));
    this.board = new BoardView(this.model, {
      begin: async (tool, colour, width, points) => {
        const started = await api.boardBegin({ tool, colour, width, points });
        this.applyBoard([started.change]);
        return started.seq;
      },
      points: async (seq, points) => this.applyBoard([await api.boardPoints(seq, points)]),
      end: async (seq) => this.applyBoard([await api.boardEnd(seq)]),
      pointer: sendCursor,
    });
    this.board.surface.appendChild(this.cursors.layer);

    this.chatBadge = h("span", { class: "badge", id: "chat-unread", hidden: true });
    this.chat = new ChatPanel(
      (text) => api.sendChat(text),
      options.openLink,
      (peer) => this.roster.get(peer)?.colour ?? "inherit",
      (n) => {
        this.chatBadge.hidden = n === 0;
        this.chatBadge.textContent = String(n);
      },
    );

    this.count = h("span", { class: "count", id: "participant-count" });
    const leave = h("button", { class: "btn danger", id: "leave-button", title: "Leave the call" }, "Leave");
    leave.addEventListener("click", () => void this.leave());
    const modeButton = h("button", { class: "btn ghost", id: "mode-button", title: "Whiteboard / participants (B)" }, "Participants");
    modeButton.addEventListener("click", () => this.setMode(this.mode === "board" ? "grid" : "board"));
    const chatButton = h("button", { class: "btn ghost", id: "chat-button", title: "Chat (C)" }, "Chat", this.chatBadge);
    chatButton.addEventListener("click", () => this.chat.show(!this.chat.visible));
    this.network = new NetworkPanel(joined.me.id);
    const networkButton = h("button", { class: "btn ghost", id: "network-button", title: "Network (N)" }, "Network");
    networkButton.addEventListener("click", () => this.toggleTool("network"));
    const statsButton = h("button", { class: "btn ghost", id: "stats-button", title: "Call statistics (Q)" }, "Stats");
    statsButton.addEventListener("click", () => this.toggleTool("stats"));
    const inviteButton = h("button", { class: "btn ghost", id: "invite-button", title: "Invite (I)" }, "Invite");
    inviteButton.addEventListener("click", () => this.toggle(this.invite));
    this.micButton = h("button", { class: "btn ghost mic", id: "mic-button", title: "Microphone (M)", "data-mic": "off" }, "Mic off");
    this.micButton.addEventListener("click", () => void this.toggleMic());
    this.cameraButton = h("button", { class: "btn ghost", id: "camera-button", title: "Camera (V)", "data-camera": "off" }, "Camera off");
    this.cameraButton.addEventListener("click", () => void this.toggleCamera());
    this.roomPresenter.hidden = true;
    this.shareButton = h("button", { class: "btn ghost", id: "share-button", title: "Share your screen (S)", "data-sharing": "false" }, "Share screen");
    this.shareButton.addEventListener("click", () => void this.toggleShare());
    this.layoutButton = h("button", { class: "btn ghost", id: "layout-button", title: "Shared screen large / grid (L)", hidden: true }, "Grid");
    this.layoutButton.addEventListener("click", () => this.toggleLayout());
    this.handButton = h("button", { class: "btn ghost", id: "hand-button", title: "Raise your hand (H)", "data-hand": "false", hidden: true }, "Raise hand");
    this.handButton.addEventListener("click", () => void this.toggleHand());
    const settingsButton = h("button", { class: "btn ghost", id: "settings-button", title: "Audio and video settings" }, "Settings");
    settingsButton.addEventListener("click", () => void this.openSettings());
    const helpButton = h("button", { class: "btn ghost icon", id: "help-button", title: "Keyboard shortcuts (?)" }, "?");
    helpButton.addEventListener("click", () => this.toggle(this.help));

    const top = h(
      "header",
      { class: "topbar" },
      h("img", { src: "/icon.png", alt: "", class: "topbar-icon" }),
      h("div", { class: "room-title", title: joined.room }, h("strong", { id: "room-name" }, joined.room), this.count),
      joined.hosting && h("span", { class: "pill", title: "The signaling server runs in this app" }, "Hosting"),
      joined.role === "publisher" && h("span", { class: "pill live", id: "presenting-pill", title: "Viewers see and hear you, not each other" }, "Presenting"),
      this.roomPresenter,
      h("div", { class: "spacer" }),
      this.handButton,
      this.micButton,
      this.cameraButton,
      this.shareButton,
      this.layoutButton,
      settingsButton,
      modeButton,
      chatButton,
      networkButton,
      statsButton,
      inviteButton,
      helpButton,
      leave,
    );

    this.banner = h("div", { class: "banner", id: "banner", role: "status", hidden: true });
    this.toolbar = this.buildToolbar();
    this.waiting = h("p", { class: "stage-waiting", id: "stage-waiting", hidden: true }, "Waiting for the presenter…");
    this.stage = h("section", { class: "stage", "data-mode": this.mode }, this.waiting, this.tiles.element, h("div", { class: "board-area" }, this.toolbar, this.board.element));
    this.help = this.buildHelp();
    this.invite = this.buildInvite();
    this.confirm = h("div", { class: "overlay", hidden: true });
    this.settings = h("div", { class: "overlay", id: "settings", hidden: true });
    this.sharePicker = h("div", { class: "overlay", id: "share-picker", hidden: true });
    this.safety = h("div", { class: "overlay", id: "safety", hidden: true });
    this.tiles.element.addEventListener("click", (e) => {
      const button = (e.target as HTMLElement).closest(".tile-safety") as HTMLElement | null;
      if (button?.dataset.peer) this.showSafety(button.dataset.peer);
    });
    this.toast = h("div", { class: "toast", id: "toast", role: "alert", hidden: true });

    this.element = h(
      "div",
      { class: "call", id: "call" },
      top,
      this.banner,
      h("div", { class: "call-body" }, this.stage, this.audience.element, this.treeStage.element, this.network.element, this.stats.element, this.chat.element),
      this.help,
      this.invite,
      this.confirm,
      this.settings,
      this.sharePicker,
      this.safety,
      this.toast,
    );
    modeButton.textContent = this.mode === "board" ? "Participants" : "Whiteboard";
    this.roster.set(joined.me.id, joined.me);
    this.showRoster([joined.me]);
    // Pictures come over the picture socket (the faster path); the channel stays subscribed
    // and carries them whenever the socket is not open.
    const draw = (buffer: ArrayBuffer) => {
      const picture = readPicture(buffer);
      if (picture && !this.closed) this.tiles.draw(picture);
    };
    if (api.videoSubscribe) {
      void api.videoSubscribe(draw).catch(() => {});
      void this.openPictureSocket(draw);
    }
    api.media?.((tile, stream) => {
      if (!this.closed) this.tiles.attach(tile, stream);
    });
    this.updateCount();
    document.addEventListener("keydown", this.keys);
    // Frames are drawn only while something changes: a cursor easing, a board change, a resize.
    if (typeof ResizeObserver !== "undefined") {
      this.resize = new ResizeObserver(() => {
        this.board.invalidate();
        this.wake();
        this.sendVideoSizes();
      });
      this.resize.observe(this.board.element);
      this.resize.observe(this.tiles.element);
    }
    this.wake();
    if (joined.hosting) this.invite.hidden = false;
  }

  private async openPictureSocket(draw: (buffer: ArrayBuffer) => void): Promise<void> {
    if (typeof WebSocket === "undefined" || !this.api.pictureSocket) return;
    try {
      const { url, token } = await this.api.pictureSocket();
      if (this.closed || !url) return;
      const ws = new WebSocket(`${url}?token=${token}`);
      ws.binaryType = "arraybuffer";
      ws.onmessage = (e) => draw(e.data as ArrayBuffer);
      ws.onopen = () => (this.element.dataset.pictures = "socket");
      ws.onclose = () => delete this.element.dataset.pictures;
      ws.onerror = () => console.warn("picture socket unavailable; pictures come over the channel");
      this.pictureSocket = ws;
    } catch (e) {
      console.warn(`no picture socket: ${errorText(e)}`);
    }
  }
  private pictureSocket: WebSocket | null = null;

  private buildToolbar(): HTMLElement {
    const bar = h("div", { class: "toolbar", id: "board-toolbar", role: "toolbar", "aria-label": "Whiteboard tools" });
    const pen = h("button", { class: "tool active", id: "tool-pen", title: "Pen (P)" }, "Pen");
    const eraser = h("button", { class: "tool", id: "tool-eraser", title: "Eraser (E)" }, "Eraser");
    const setTool = (tool: "pen" | "eraser") => {
      this.board.tool = tool;
      pen.classList.toggle("active", tool === "pen");
      eraser.classList.toggle("active", tool === "eraser");
      this.board.surface.dataset.tool = tool;
    };
    pen.addEventListener("click", () => setTool("pen"));
    eraser.addEventListener("click", () => setTool("eraser"));
    const swatches = COLOURS.map((colour, i) => {
      const b = h("button", { class: `swatch${i === 0 ? " active" : ""}`, title: `Colour ${i + 1}`, "data-colour": colour });
      b.style.background = colour;
      b.addEventListener("click", () => {
        this.board.colour = colour;
        swatches.forEach((s) => s.classList.toggle("active", s === b));
        setTool("pen");
      });
      return b;
    });
    const widths = WIDTHS.map((w, i) => {
      const dot = h("i");
      dot.style.width = dot.style.height = `${4 + i * 5}px`;
      const b = h("button", { class: `width${w === this.board.width ? " active" : ""}`, title: `Width ${w}`, "data-width": w }, dot);
      b.addEventListener("click", () => {
        this.board.width = w;
        widths.forEach((x) => x.classList.toggle("active", x === b));
      });
      return b;
    });
    const undo = h("button", { class: "tool", id: "tool-undo", title: "Undo your last stroke (Ctrl+Z)" }, "Undo");
    undo.addEventListener("click", () => void this.undo());
    const clearBtn = h("button", { class: "tool", id: "tool-clear", title: "Clear the board for everyone" }, "Clear");
    clearBtn.addEventListener("click", () => this.askClear());
    bar.append(pen, eraser, h("span", { class: "sep" }), ...swatches, h("span", { class: "sep" }), ...widths, h("span", { class: "sep" }), undo, clearBtn);
    (bar as HTMLElement & { setTool?: typeof setTool }).setTool = setTool;
    return bar;
  }

  private buildHelp(): HTMLElement {
    const rows = SHORTCUTS.map(([k, what]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, what)));
    const close = h("button", { class: "btn", type: "button" }, "Close");
    const showAbout = this.options.showAbout;
    const about = showAbout && h("button", { class: "btn ghost", type: "button", id: "help-about" }, "About Plenum");
    const el = h(
      "div",
      { class: "overlay", id: "help", hidden: true },
      h("div", { class: "dialog", role: "dialog", "aria-label": "Keyboard shortcuts" }, h("h2", {}, "Keyboard shortcuts"), h("table", { class: "keys" }, ...rows), h("div", { class: "dialog-actions" }, about, close)),
    );
    close.addEventListener("click", () => (el.hidden = true));
    about?.addEventListener("click", () => {
      el.hidden = true;
      showAbout?.();
    });
    el.addEventListener("click", (e) => e.target === el && (el.hidden = true));
    return el;
  }

  /** The safety code shared with `peer`: compare it aloud, then mark the peer verified. */
  showSafety(peerId: string): void {
    const peer = this.roster.get(peerId);
    if (!peer?.safety_code) return;
    const toggle = h("button", { class: "btn primary", id: "safety-verify", type: "button" }, peer.verified ? "Remove verification" : "Mark as verified");
    const close = h("button", { class: "btn", id: "safety-close", type: "button" }, "Close");
    const dialog = h(
      "div",
      { class: "dialog", role: "dialog", "aria-label": "Safety code" },
      h("h2", {}, `Safety code with ${peer.name}`),
      h("p", {}, `Read these numbers to ${peer.name} on a channel you trust (in person, or a call you recognise their voice on). If they see the same, nobody is between you.`),
      h("div", { class: "safety-code", id: "safety-code" }, peer.safety_code),
      h("p", {}, peer.verified ? "You marked this person verified." : "Not verified yet."),
      h("div", { class: "dialog-actions" }, close, toggle),
    );
    this.safety.replaceChildren(dialog);
    close.addEventListener("click", () => (this.safety.hidden = true));
    this.safety.onclick = (e) => e.target === this.safety && (this.safety.hidden = true);
    toggle.addEventListener("click", async () => {
      try {
        await this.api.setVerified(peer.id, !peer.verified);
        this.safety.hidden = true;
      } catch (e) {
        this.notify(String((e as { message?: string }).message ?? e));
      }
    });
    this.safety.hidden = false;
  }

  private buildInvite(): HTMLElement {
    const row = (id: string, value: string) => {
      const link = h("input", { class: "invite-link", id, readonly: true, value });
      link.value = value;
      const copy = h("button", { class: "btn primary", type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        link.select();
        try {
          await navigator.clipboard.writeText(link.value);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy";
        }
      });
      return h("div", { class: "invite-row" }, link, copy);
    };
    const web = this.joined.web_invite;
    const close = h("button", { class: "btn", id: "invite-close", type: "button" }, "Close");
    const el = h(
      "div",
      { class: "overlay", id: "invite", hidden: true },
      h(
        "div",
        { class: "dialog", role: "dialog", "aria-label": "Invite" },
        h("h2", {}, "Invite people"),
        h("p", {}, this.joined.hosting ? "This computer is hosting the room. In Plenum, others on your network paste this link into the join screen:" : "In Plenum, others paste this link into the join screen:"),
        row("invite-link", this.joined.invite),
        web && h("p", { class: "invite-web" }, "Or they open this link in a browser, with nothing to install:"),
        web && h("div", { class: "invite-web" }, row("invite-web-link", web)),
        web && insecure(web) && h("p", { class: "invite-note invite-web", id: "invite-web-note" }, "Browsers allow the camera and microphone only over https, so this link works in a browser on this computer only. For others, give the server a certificate (plenum serve --tls-cert) or put it behind https."),
        h("p", { class: "invite-note", id: "invite-tree-note", hidden: true }, "A browser cannot join this room: its people pass the media on to each other, which only the Plenum app does."),
        this.joined.role === "publisher" &&
          h("p", { class: "invite-note" }, "They join as viewers: they see and hear you, not each other. If you set an access code, tell it to them yourself; it is not in the link."),
        h("div", { class: "dialog-actions" }, close),
      ),
    );
    close.addEventListener("click", () => (el.hidden = true));
    el.addEventListener("click", (e) => e.target === el && (el.hidden = true));
    return el;
  }

  /** A tree's or relay network's links are the overlay's, which a browser cannot join (the
   * server turns it away): the invite offers no browser link and says why. */
  private noBrowsers(): void {
    for (const e of this.invite.querySelectorAll<HTMLElement>(".invite-web")) e.hidden = true;
    (this.invite.querySelector("#invite-tree-note") as HTMLElement).hidden = false;
  }

  /** Opens or closes the network or statistics panel: one of the two at a time, so the tiles
   * keep their room beside the chat and the audience. */
  toggleTool(which: "network" | "stats"): void {
    const [panel, other] = which === "network" ? [this.network, this.stats] : [this.stats, this.network];
    const on = !panel.visible;
    if (on) other.show(false);
    panel.show(on);
  }

  private toggle(el: HTMLElement): void {
    el.hidden = !el.hidden;
  }

  showMic(state: "off" | "on" | "muted"): void {
    this.micButton.dataset.mic = state;
    this.micButton.textContent = state === "on" ? "Mic on" : state === "muted" ? "Muted" : "Mic off";
  }

  /** Shows what the engine answers to `call`, or says why it refused. */
  private async shown<T>(call: Promise<T>, show: (answer: T) => void): Promise<void> {
    try {
      show(await call);
    } catch (e) {
      this.notify(errorText(e));
    }
  }

  async toggleMic(): Promise<void> {
    const on = this.micButton.dataset.mic !== "on";
    await this.shown(this.api.setMic(on), (s) => this.showMic(s));
  }

  /** A large room's presenter, as the pill says it: ours, another's (with what that means
   * for a screen we share), or nobody's. */
  private showRoomPresenter(): void {
    const { name, you } = this.presenting;
    const sharing = this.shareButton.dataset.sharing === "true";
    this.roomPresenter.hidden = !you && name === null;
    this.roomPresenter.classList.toggle("live", you);
    this.roomPresenter.textContent = you ? "Presenting to everyone" : `${name} presents`;
    this.roomPresenter.title = you
      ? "Your camera and screen reach every cell of this large room"
      : sharing
        ? `${name} presents to the whole room: your screen is seen in your cell only, until they stop`
        : `${name} presents to the whole room: their camera and screen reach every cell`;
  }

  private showVideo(state: { camera: boolean; screen: boolean }): void {
    this.cameraButton.dataset.camera = state.camera ? "on" : "off";
    this.cameraButton.textContent = state.camera ? "Camera on" : "Camera off";
    this.shareButton.dataset.sharing = String(state.screen);
    this.shareButton.textContent = state.screen ? "Stop sharing" : "Share screen";
    this.showRoomPresenter();
  }

  async toggleCamera(): Promise<void> {
    const on = this.cameraButton.dataset.camera !== "on";
    await this.shown(this.api.setCamera(on ? (this.camera ?? "default") : null), (s) => this.showVideo(s));
  }

  /** Stops sharing, or asks what to share. */
  async toggleShare(): Promise<void> {
    if (this.shareButton.dataset.sharing === "true") {
      await this.shown(this.api.shareScreen(null), (s) => this.showVideo(s));
      return;
    }
    const { screens } = await this.api.videoDevices();
    const select = h("select", { id: "screen-select", class: "select" });
    for (const s of screens) select.append(h("option", { value: s.id }, s.name));
    const share = h("button", { class: "btn primary", id: "share-start", type: "button", disabled: screens.length === 0 }, "Share");
    const close = h("button", { class: "btn", type: "button" }, "Cancel");
    this.sharePicker.replaceChildren(
      h(
        "div",
        { class: "dialog", role: "dialog", "aria-label": "Share your screen" },
        h("h2", {}, "Share your screen"),
        screens.length === 0
          ? h("p", {}, "There is no screen or window to share (no display).")
          : h("label", { class: "field" }, h("span", { class: "field-label" }, "Screen or window"), select),
        h("div", { class: "dialog-actions" }, close, share),
      ),
    );
    this.sharePicker.hidden = false;
    close.addEventListener("click", () => (this.sharePicker.hidden = true));
    share.addEventListener("click", async () => {
      this.sharePicker.hidden = true;
      await this.shown(this.api.shareScreen(select.value), (s) => this.showVideo(s));
    });
  }

  toggleLayout(): void {
    const presenter = this.tiles.element.dataset.layout !== "presenter";
    this.tiles.setLayout(presenter ? "presenter" : "grid");
    this.showLayout();
    this.sendVideoSizes();
  }

  /** Raises our hand, or lowers it. */
  async toggleHand(): Promise<void> {
    const raise = this.handButton.dataset.hand !== "true";
    const asked = this.shown(this.api.raiseHand(raise), (raised) => this.showHand(raised));
    this.handAsked = asked;
    await asked;
  }

  /** The last hand raised or lowered, until its answer is shown. */
  private handAsked: Promise<void> = Promise.resolve();

  /** Lowers our hand once what was last asked of it is shown (the word that answers a hand
   * can come before the answer to raising it). */
  private async lowerHand(): Promise<void> {
    await this.handAsked;
    if (this.handButton.dataset.hand === "true") await this.toggleHand();
  }

  /** At a tree's root: puts a viewer on stage, or nobody. */
  async setStage(peer: string | null): Promise<void> {
    if (!this.api.setStage) return;
    await this.shown(this.api.setStage(peer), () => {});
  }

  private showHand(raised: boolean): void {
    this.handButton.dataset.hand = String(raised);
    this.handButton.textContent = raised ? "Lower hand" : "Raise hand";
    this.handButton.title = raised ? "Lower your hand (H)" : "Raise your hand (H)";
  }

  /** Shows the roster: every tile, or in a presentation the presenters' tiles and the viewers listed. */
  private showRoster(peers: PeerView[]): void {
    if (!this.webinar && peers.some((p) => p.role !== "both")) {
      // Someone presents or watches: this call is a presentation from now on.
      this.webinar = true;
      this.setMode("grid");
    }
    const presenters = peers.filter((p) => p.role !== "viewer");
    // The presenters first (their first tile is the large one), then anyone taking part.
    presenters.sort((a, b) => Number(b.role === "publisher") - Number(a.role === "publisher"));
    // Watching down a tree: its root, the presenter, first and large; so is a large room's
    // presenter from another cell, whose pictures cross the cells.
    const spotlight = this.presenter ?? peers.find((p) => p.state === "presenting")?.id ?? null;
    const featured = spotlight !== null && peers.some((p) => p.id === spotlight);
    const first = (p: PeerView) => Number(p.id === spotlight);
    this.tiles.setStage(this.webinar || featured);
    this.tiles.update(this.webinar ? presenters : featured ? [...peers].sort((a, b) => first(b) - first(a)) : peers);
    // A viewer in a presentation's tree links to the viewers it passes it on with, not
    // the audience: no list.
    this.audience.show(this.webinar && this.treeRoot !== false);
    // In a tree room every viewer may raise a hand to the root; elsewhere viewers of a
    // presentation may.
    this.handButton.hidden = this.treeRoot ?? (!this.webinar || this.joined.role === "publisher");
    this.waiting.hidden = !this.webinar || presenters.length > 0;
    if (this.webinar) {
      for (const name of this.audience.update(peers)) if (this.joined.role === "publisher") this.notify(`${name} raised a hand`);
    }
  }

  private showLayout(): void {
    this.layoutButton.hidden = !this.tiles.featured;
    this.layoutButton.textContent = this.tiles.element.dataset.layout === "presenter" ? "Grid" : "Presenter";
  }

  notify(text: string): void {
    this.toast.textContent = text;
    this.toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (this.toast.hidden = true), 6000);
  }
  private toastTimer: ReturnType<typeof setTimeout> | undefined;

  async openSettings(): Promise<void> {
    const [devices, video] = await Promise.all([this.api.audioDevices(), this.api.videoDevices()]);
    const camera = h("select", { id: "camera-select", class: "select" });
    camera.append(h("option", { value: "" }, "System default"));
    for (const c of video.cameras) camera.append(h("option", { value: c.id, selected: c.id === this.camera }, c.name));
    const picker = (id: string, list: { id: string; name: string; default: boolean }[], chosen: string | null) => {
      const select = h("select", { id, class: "select" });
      select.append(h("option", { value: "" }, "System default"));
      for (const d of list) select.append(h("option", { value: d.id, selected: d.id === chosen }, d.default ? `${d.name} (default)` : d.name));
      return select;
    };
    const mic = picker("mic-select", devices.microphones, devices.microphone);
    const speaker = picker("speaker-select", devices.speakers, devices.speaker);
    const meter = h("meter", { id: "mic-level", min: -60, max: 0, low: -45, high: -6, optimum: -20, value: -60 });
    const levelText = h("span", { class: "level-text", id: "mic-level-text" }, "Microphone off");
    const poll = setInterval(async () => {
      if (this.settings.hidden || this.closed) return clearInterval(poll);
      const level = await this.api.micLevel().catch(() => null);
      meter.value = level === null ? -60 : Math.max(-60, level);
      levelText.textContent = level === null ? (this.micButton.dataset.mic === "off" ? "Microphone off" : "Silence") : `${Math.round(level)} dBFS`;
    }, 100);
    const apply = h("button", { class: "btn primary", id: "settings-apply", type: "button" }, "Apply");
    const close = h("button", { class: "btn", type: "button" }, "Close");
    this.settings.replaceChildren(
      h(
        "div",
        { class: "dialog", role: "dialog", "aria-label": "Settings" },
        h("h2", {}, "Audio"),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Microphone"), mic),
        h("div", { class: "field" }, h("span", { class: "field-label" }, "Input level"), h("div", { class: "level" }, meter, levelText)),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Speaker"), speaker),
        h("h2", {}, "Video"),
        h("label", { class: "field" }, h("span", { class: "field-label" }, "Camera"), camera),
        h("div", { class: "dialog-actions" }, close, apply),
      ),
    );
    this.settings.hidden = false;
    close.addEventListener("click", () => (this.settings.hidden = true));
    apply.addEventListener("click", async () => {
      try {
        const state = await this.api.setDevices(mic.value || null, speaker.value || null);
        if (state) this.showMic(state);
        const chosen = camera.value || null;
        if (chosen !== this.camera) {
          this.camera = chosen;
          // A camera that is on switches at once.
          if (this.cameraButton.dataset.camera === "on") this.showVideo(await this.api.setCamera(chosen ?? "default"));
        }
        this.settings.hidden = true;
      } catch (e) {
        this.notify(errorText(e));
      }
    });
  }

  /** An invite to another room arrived: resolves whether the user leaves this call for it. */
  confirmSwitch(room: string): Promise<boolean> {
    const yes = h("button", { class: "btn primary", id: "confirm-switch", type: "button" }, `Join ${room}`);
    const no = h("button", { class: "btn", type: "button" }, "Stay here");
    this.confirm.replaceChildren(
      h("div", { class: "dialog", role: "alertdialog" }, h("h2", {}, `Join ${room}?`), h("p", {}, "You opened an invite to another room. Joining it leaves this call."), h("div", { class: "dialog-actions" }, no, yes)),
    );
    this.confirm.hidden = false;
    yes.focus();
    return new Promise((resolve) => {
      no.addEventListener("click", () => {
        this.confirm.hidden = true;
        resolve(false);
      });
      yes.addEventListener("click", () => {
        this.confirm.hidden = true;
        resolve(true);
      });
    });
  }

  askClear(): void {
    const yes = h("button", { class: "btn danger", id: "confirm-clear", type: "button" }, "Clear for everyone");
    const no = h("button", { class: "btn", type: "button" }, "Cancel");
    this.confirm.replaceChildren(
      h("div", { class: "dialog", role: "alertdialog" }, h("h2", {}, "Clear the whiteboard?"), h("p", {}, "Everyone's strokes disappear for everyone in the room."), h("div", { class: "dialog-actions" }, no, yes)),
    );
    this.confirm.hidden = false;
    no.addEventListener("click", () => (this.confirm.hidden = true));
    yes.addEventListener("click", async () => {
      this.confirm.hidden = true;
      this.applyBoard([await this.api.boardClear()]);
    });
    yes.focus();
  }

  async undo(): Promise<void> {
    const change = await this.api.boardUndo();
    if (change) this.applyBoard([change]);
  }

  setMode(mode: "grid" | "board"): void {
    this.mode = mode;
    this.stage.dataset.mode = mode;
    const button = this.element.querySelector("#mode-button");
    if (button) button.textContent = mode === "board" ? "Participants" : "Whiteboard";
    this.board.invalidate();
    this.wake();
  }

  applyBoard(changes: BoardChange[]): void {
    for (const change of changes) this.model.apply(change);
    this.board.surface.dataset.strokes = String(this.model.size);
    this.board.invalidate();
    this.wake();
  }

  /** Schedules a frame unless one is due: ease cursors, redraw the board if it changed. */
  /** Tells the app the size each video tile is shown at: pictures come at that size. */
  private sendVideoSizes(): void {
    const sizes = this.tiles.videoSizes();
    const key = JSON.stringify(sizes);
    if (key === this.lastVideoSizes) return;
    this.lastVideoSizes = key;
    void this.api.videoSizes(sizes).catch(() => {});
  }

  wake(): void {
    if (this.frame || this.closed) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const moving = this.cursors.step();
      this.board.render();
      if (moving) this.wake();
    });
  }

  private updateCount(): void {
    const n = this.roster.size;
    if (this.webinar && this.treeRoot !== null) {
      // A presentation's tree: the presenter counts everyone below it; a viewer knows
      // whom it passes the presentation on to.
      const { subtree, children } = this.treeSize;
      if (this.treeRoot) this.count.textContent = `${Math.max(0, subtree - 1)} watching`;
      else this.count.textContent = children > 0 ? `Watching · passing it on to ${children}` : "Watching";
      return;
    }
    if (this.webinar) {
      const viewers = [...this.roster.values()].filter((p) => p.role === "viewer").length;
      this.count.textContent = `${n - viewers} presenting · ${viewers} watching`;
      return;
    }
    // In a large room the roster holds the peers we link to (and a tree's presenter, whose
    // media comes down the tree), not everyone.
    const linked = [...this.roster.values()].filter((p) => p.state !== "me" && p.state !== "presenting" && p.state !== "on_stage").length;
    if (this.large) this.count.textContent = `Large room · linked to ${linked}`;
    else this.count.textContent = n === 1 ? "Just you" : `${n} people`;
  }

  handle(event: UiEvent): void {
    switch (event.type) {
      case "roster": {
        const ids = new Set(event.peers.map((p) => p.id));
        for (const id of this.roster.keys()) if (!ids.has(id)) this.cursors.remove(id);
        const shows = (peers: Iterable<PeerView>) => [...peers].some((p) => p.state === "presenting");
        const presenterCame = !shows(this.roster.values()) && shows(event.peers);
        this.roster = new Map(event.peers.map((p) => [p.id, p]));
        this.stats.update(event.peers);
        this.chimes.roster(
          event.peers.map((p) => p.id),
          this.large || this.webinar,
        );
        for (const p of event.peers) this.cursors.rename(p.id, p.name);
        const presenting = this.tiles.presenting;
        this.showRoster(event.peers);
        // A screen shared by someone, or a presenter from another cell: show it (the
        // participants view, the screen or presenter large).
        if ((!presenting && this.tiles.presenting) || presenterCame) this.setMode("grid");
        this.showLayout();
        this.sendVideoSizes();
        this.updateCount();
        this.network.showMesh(event.peers.length);
        break;
      }
      case "network":
        // A room of one cell is a full mesh: a call like any other until it grows.
        this.large = event.view.cells > 1;
        this.network.update(event.view);
        this.updateCount();
        break;
      case "tree":
        this.large = true;
        this.network.updateTree(event.parent, event.children, event.depth, event.is_root);
        this.treeSize = { subtree: event.subtree, children: event.children.length };
        this.noBrowsers();
        this.audience.setTotal(event.is_root ? event.subtree - 1 : null);
        if (this.treeRoot !== event.is_root) {
          this.treeRoot = event.is_root;
          this.treeStage.show(event.is_root);
          this.handButton.hidden = event.is_root;
        }
        if (this.presenter !== (event.is_root ? null : event.root)) {
          this.presenter = event.is_root ? null : event.root;
          // A viewer watches the presenter, not the whiteboard.
          if (this.presenter !== null) this.setMode("grid");
          this.showRoster([...this.roster.values()]);
          this.showLayout();
          this.sendVideoSizes();
        } else if (this.webinar) this.showRoster([...this.roster.values()]);
        this.updateCount();
        break;
      case "room_presenter":
        this.presenting = { name: event.name, you: event.you };
        this.showRoomPresenter();
        break;
      case "stage": {
        const before = this.treeStage.announce(this.treeStage.current);
        for (const name of this.treeStage.update(event.speaker, event.hands)) this.notify(`${name} raised a hand`);
        const now = this.treeStage.announce(event.speaker);
        if (now !== before) this.notify(now);
        // On stage, our hand has been answered.
        if (event.speaker?.peer === this.joined.me.id) void this.lowerHand();
        break;
      }
      case "relay":
        this.large = true;
        this.noBrowsers();
        this.network.updateRelay(event.neighbours);
        this.updateCount();
        break;
      case "chat":
        this.chat.add(event.line);
        break;
      case "cursor": {
        const peer = this.roster.get(event.peer);
        this.cursors.move(event.peer, peer?.name ?? "…", peer?.colour ?? "#64748b", event.x, event.y);
        this.wake();
        break;
      }
      case "cursor_gone":
        this.cursors.remove(event.peer);
        break;
      case "board":
        this.applyBoard(event.changes);
        break;
      case "status": {
        const parts: string[] = [];
        if (!event.signaling) parts.push("Lost the connection to the server — people already here stay connected, but nobody new can join.");
        if (event.reconnecting.length > 0) parts.push(`Reconnecting to ${event.reconnecting.join(", ")}…`);
        this.banner.textContent = parts.join(" ");
        this.banner.hidden = parts.length === 0;
        break;
      }
      case "video_error":
        this.notify(event.message);
        break;
      case "audio_error":
        // A missing speaker is a standing condition, said once in the chat; a microphone
        // that fails interrupts what the user just did.
        if (event.device === "speaker") this.chat.note(event.message);
        else this.notify(event.message);
        break;
      case "ignored":
        this.ignored += 1;
        this.element.dataset.ignored = String(this.ignored);
        console.warn(`ignored a message from ${event.peer} on ${event.channel || "the room"}: ${event.reason}`);
        break;
      case "not_verified": {
        const linked = [...this.roster.values()].some((p) => p.state === "connected");
        const text = `${event.name} did not accept your access code.`;
        // Nobody else to see: back to the join screen, which asks for the code.
        if (linked) this.notify(text);
        else void this.leave(text, true);
        break;
      }
      case "closed":
        // A leave we started says so itself.
        if (this.closed) break;
        this.close();
        this.options.onLeft(event.reason);
        break;
    }
  }

  async leave(reason: string | null = null, askCode = false): Promise<void> {
    // Closed first: the `closed` event the leave brings must not end the call a second time.
    if (this.closed) return;
    this.close();
    try {
      await this.api.leave();
    } catch (e) {
      console.warn(errorText(e));
    }
    this.options.onLeft(reason, askCode);
  }

  close(): void {
    this.closed = true;
    this.pictureSocket?.close();
    cancelAnimationFrame(this.frame);
    this.resize?.disconnect();
    document.removeEventListener("keydown", this.keys);
  }

  private key(e: KeyboardEvent): void {
    if (e.key === "Escape") {
      for (const el of [this.help, this.invite, this.confirm, this.settings, this.sharePicker, this.safety]) el.hidden = true;
      if (isTyping(e)) (e.target as HTMLElement).blur();
      return;
    }
    if (isTyping(e)) return;
    const setTool = (this.toolbar as HTMLElement & { setTool?: (t: "pen" | "eraser") => void }).setTool;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      void this.undo();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const swatch = Number.parseInt(e.key, 10);
    if (swatch >= 1 && swatch <= COLOURS.length) {
      this.toolbar.querySelectorAll<HTMLElement>(".swatch")[swatch - 1]?.click();
      return;
    }
    switch (e.key) {
      case "b":
      case "B":
        this.setMode(this.mode === "board" ? "grid" : "board");
        break;
      case "c":
      case "C":
        this.chat.show(!this.chat.visible);
        break;
      case "/":
        e.preventDefault();
        this.chat.show(true);
        this.chat.input.focus();
        break;
      case "p":
      case "P":
        setTool?.("pen");
        break;
      case "e":
      case "E":
        setTool?.("eraser");
        break;
      case "[":
      case "]": {
        const i = WIDTHS.indexOf(this.board.width) + (e.key === "]" ? 1 : -1);
        this.toolbar.querySelectorAll<HTMLElement>(".width")[Math.max(0, Math.min(WIDTHS.length - 1, i))]?.click();
        break;
      }
      case "n":
      case "N":
        e.preventDefault();
        this.toggleTool("network");
        break;
      case "q":
      case "Q":
        e.preventDefault();
        this.toggleTool("stats");
        break;
      case "i":
      case "I":
        this.toggle(this.invite);
        break;
      case "m":
      case "M":
        void this.toggleMic();
        break;
      case "v":
      case "V":
        void this.toggleCamera();
        break;
      case "s":
      case "S":
        void this.toggleShare();
        break;
      case "l":
      case "L":
        if (this.tiles.featured) this.toggleLayout();
        break;
      case "h":
      case "H":
        if (!this.handButton.hidden) void this.toggleHand();
        break;
      case "?":
        this.toggle(this.help);
        break;
    }
  }
}
