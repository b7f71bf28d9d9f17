// One peer of the room and our link to it (docs/protocol.md, "Negotiation rules"): who
// offers, perfect negotiation, signed and numbered descriptions, retries with backoff, the
// heartbeat and the silence that closes a link, and the envelopes that arrive on it. All
// of a peer's negotiation runs in order, one step at a time.
import { type Broadcast, readBroadcast } from "./broadcast";
import { controlEnvelope, decodeEnvelope, encodeEnvelope, type Envelope, Kind } from "./envelope";
import type { Emitter } from "./emitter";
import type { RoomEvents } from "./events";
import type { Identity } from "./identity";
import { Link } from "./link";
import type { Lane, LocalTracks } from "./media";
import type { AnswerPayload, OfferPayload, Role, RosterEntry, SignalPayload } from "./signaling";
import { fingerprintList, safetyCode, type SignedDescription, signDescription, verifyDescription } from "./signed";
import { parseAnnouncement, RemoteStreams } from "./streams";

/** A link attempt that has not opened by then has failed. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A link that has heard nothing for this long is closed and made anew. */
const SILENCE_MS = 6_000;
/** After answering an ICE restart, silence is not held against a link for this long. */
const RESTART_GRACE_MS = 10_000;
/** A ping unanswered for this long is given up. */
const PING_TIMEOUT_MS = 10_000;

/** What a peer needs from its room. */
export interface PeerContext {
  readonly events: Emitter<RoomEvents>;
  rtcConfig(): RTCConfiguration;
  tracks(): LocalTracks;
  /** The number of our next description (one counter for all of them). */
  nextSeq(): number;
  /** What our offers and answers present to the peer's check, if anything. */
  credentials(): unknown;
  signal(to: string, payload: SignalPayload): void;
  /** The next id of a data or ping envelope. */
  nextId(): bigint;
  /** Our stream announcements (`add` envelopes), for a link that opens. */
  announcements(): Envelope[];
  /** The peer said goodbye on its link. */
  bye(peer: string): void;
  /** Whether a cells room's broadcast `(origin, id)` is new (and so to be delivered). */
  firstBroadcast(origin: string, id: bigint): boolean;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

/** Retry waits: from 0.5 s, doubling up to 10 s, each plus up to 25 % jitter. */
class Backoff {
  private wait = RETRY_FIRST_MS;

  next(): number {
    const wait = this.wait * (1 + Math.random() * 0.25);
    this.wait = Math.min(this.wait * 2, RETRY_MAX_MS);
    return wait;
  }

  reset(): void {
    this.wait = RETRY_FIRST_MS;
  }
}

export class Peer {
  readonly name: string;
  /** Whether the peer may publish media (its token grants it). */
  private readonly publishes: boolean;
  /** How the peer takes part. */
  readonly role: Role;
  private link: Link | null = null;
  /** Whether we told the page the current link is up. */
  private up = false;
  safetyCode: string | null = null;
  private lastSeq = -1;
  private refused = false;
  private gone = false;
  private readonly backoff = new Backoff();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private attemptTimer: ReturnType<typeof setTimeout> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly streams = new RemoteStreams();
  private readonly pings = new Map<bigint, { sentAt: number; resolve: (rtt: number) => void; reject: (e: Error) => void }>();

  /** The peer's id. */
  readonly id: string;

  constructor(
    private readonly ctx: PeerContext,
    private readonly me: Identity,
    entry: RosterEntry,
  ) {
    this.id = entry.peer;
    this.name = entry.name;
    this.publishes = entry.publish !== false;
    this.role = entry.role ?? "both";
  }

  /** Whether our link to the peer is open. */
  get connected(): boolean {
    return this.up;
  }

  /** The larger id is polite: it gives way when both offer at once. */
  private get polite(): boolean {
    return this.me.id > this.id;
  }

  /** Starts linking: the newcomer offers at once; the peer already in the room waits for
   * the offer, and offers itself if no link opened in time. */
  start(newcomer: boolean): void {
    if (newcomer) this.enqueue(() => this.offer());
    else this.attemptTimer = setTimeout(() => this.timedOut(), CONNECT_TIMEOUT_MS);
  }

  /** A payload the peer sent us through the server. */
  signal(payload: SignalPayload): void {
    this.enqueue(() => this.onSignal(payload));
  }

  /** Keeps the link: a heartbeat, and the check for silence, counted from when the page
   * last woke (`awakeSince`) if that is later than what we last heard. */
  tick(now: number, awakeSince: number): void {
    const link = this.link;
    if (!this.up || !link) return;
    link.send(encodeEnvelope(controlEnvelope(Kind.Heartbeat)));
    if (now - Math.max(link.heardAt, awakeSince) > SILENCE_MS && now > link.graceUntil) this.lost();
  }

  /** Sends an envelope on the open link; whether it went. */
  send(bytes: Uint8Array<ArrayBuffer>): boolean {
    return this.up && (this.link?.send(bytes) ?? false);
  }

  /** The round trip of a ping to the peer, in milliseconds. */
  ping(): Promise<number> {
    const id = this.ctx.nextId();
    if (!this.send(encodeEnvelope(controlEnvelope(Kind.Ping, id)))) return Promise.reject(new Error(`no link to ${this.id}`));
    return new Promise((resolve, reject) => {
      this.pings.set(id, { sentAt: performance.now(), resolve, reject });
      setTimeout(() => this.settle(id)?.reject(new Error("no answer to the ping")), PING_TIMEOUT_MS);
    });
  }

  /** Puts our `track` on the link's sender of `lane` (`null`: sends nothing there). */
  async setTrack(lane: Lane, track: MediaStreamTrack | null): Promise<void> {
    await this.link?.setTrack(lane, track);
  }

  /** Says goodbye on the open link at once; resolves once it has left (0.5 s at most). */
  async bye(): Promise<void> {
    if (this.send(encodeEnvelope(controlEnvelope(Kind.Bye)))) await this.link?.drain(500);
  }

  /** The peer is gone: the link closes and nothing is tried again. */
  close(): void {
    this.gone = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.attemptTimer);
    this.drop();
    for (const ping of this.pings.values()) ping.reject(new Error(`${this.id} left`));
    this.pings.clear();
  }

  private enqueue(step: () => Promise<void>): void {
    this.queue = this.queue.then(step).catch((e: unknown) => this.failed(e instanceof Error ? e.message : String(e)));
  }

  private async onSignal(payload: SignalPayload): Promise<void> {
    if (this.gone || this.refused) return;
    switch (payload.kind) {
      case "offer":
        return this.onOffer(payload);
      case "answer":
        return this.onAnswer(payload);
      case "candidate":
        return this.link?.remoteCandidate(payload);
      case "refused":
        return this.onRefused(payload.reason);
    }
  }

  /** A new link (closing the one we had), given up if it has not opened in time. */
  private newLink(): Link {
    this.drop();
    clearTimeout(this.retryTimer);
    clearTimeout(this.attemptTimer);
    this.attemptTimer = setTimeout(() => this.timedOut(), CONNECT_TIMEOUT_MS);
    const link: Link = new Link(this.ctx.rtcConfig(), {
      candidate: (payload) => this.ctx.signal(this.id, payload),
      open: () => this.opened(),
      message: (bytes) => this.onEnvelope(bytes),
      closed: () => this.lost(),
      track: (lane, track) => this.ctx.events.emit("track", { peer: this.id, lane, track }),
    });
    this.link = link;
    return link;
  }

  private async offer(): Promise<void> {
    if (this.gone || this.refused) return;
    const link = this.newLink();
    const sdp = await link.offer(this.ctx.tracks());
    const signed = await signDescription(this.me, "offer", this.id, this.ctx.nextSeq(), sdp);
    if (link !== this.link) return;
    link.offeredSeq = signed.seq;
    this.ctx.signal(this.id, { kind: "offer", ...signed, ...this.presented() });
    link.described();
  }

  private async onOffer(offer: OfferPayload): Promise<void> {
    if (!(await this.proven("offer", offer)) || this.gone) return;
    const current = this.link;
    if (current?.offering && !this.polite) return;
    const restart = current && !current.offering && current.remoteSet && current.remotePrints === fingerprintList(offer.sdp);
    const link = restart ? current : this.newLink();
    if (restart) link.graceUntil = Date.now() + RESTART_GRACE_MS;
    const sdp = await link.answer(offer.sdp, this.ctx.tracks());
    const signed = await signDescription(this.me, "answer", this.id, this.ctx.nextSeq(), sdp);
    if (link !== this.link) return;
    this.ctx.signal(this.id, { kind: "answer", ...signed, answers: offer.seq, ...this.presented() });
    link.described();
  }

  /** `credentials`, where we present any. */
  private presented(): { credentials?: unknown } {
    const credentials = this.ctx.credentials();
    return credentials === undefined ? {} : { credentials };
  }

  private async onAnswer(answer: AnswerPayload): Promise<void> {
    if (!(await this.proven("answer", answer))) return;
    const link = this.link;
    if (!link?.offering) return;
    if (answer.answers !== undefined && answer.answers !== link.offeredSeq) return;
    await link.accept(answer.sdp);
  }

  /** Checks a description's key, signature and number; the key proven gives the safety code. */
  private async proven(kind: "offer" | "answer", description: SignedDescription): Promise<boolean> {
    const verdict = await verifyDescription(kind, this.id, this.me.id, description, this.lastSeq);
    if (!verdict.ok) {
      this.error("identity_mismatch", `${kind}: ${verdict.reason}`);
      return false;
    }
    this.lastSeq = description.seq;
    this.safetyCode = await safetyCode(this.me.publicKey, verdict.key);
    return true;
  }

  private onRefused(reason: string): void {
    this.refused = true;
    this.close();
    this.error("not_verified", `refused by the peer: ${reason}`);
  }

  private opened(): void {
    clearTimeout(this.attemptTimer);
    this.backoff.reset();
    this.up = true;
    this.ctx.events.emit("linked", { peer: this.id, name: this.name, safetyCode: this.safetyCode });
    for (const envelope of this.ctx.announcements()) this.send(encodeEnvelope(envelope));
  }

  /** The link went silent or closed: made anew after a wait. */
  private lost(): void {
    this.drop();
    this.retry();
  }

  /** A link attempt failed: reported, and tried again after a wait. */
  private failed(reason: string): void {
    if (this.gone) return;
    this.error("link_failed", reason);
    this.lost();
  }

  /** No link opened in time (ours, theirs, or none at all). */
  private timedOut(): void {
    if (this.link) this.failed(`no link in ${CONNECT_TIMEOUT_MS / 1000} s`);
    else this.retry();
  }

  private retry(): void {
    if (this.gone || this.refused) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.enqueue(() => this.offer()), this.backoff.next());
  }

  /** Closes the link we have; if it was up, the page hears it went, with its streams. */
  private drop(): void {
    this.link?.close();
    this.link = null;
    if (!this.up) return;
    this.up = false;
    for (const stream of this.streams.clear()) this.ctx.events.emit("stream-removed", { peer: this.id, stream });
    this.ctx.events.emit("unlinked", { peer: this.id });
  }

  private onEnvelope(bytes: Uint8Array): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(bytes);
    } catch (e) {
      return this.error("malformed_message", e instanceof Error ? e.message : String(e));
    }
    switch (envelope.kind) {
      case Kind.Data:
        return this.ctx.events.emit("message", { from: this.id, channel: envelope.channel ?? "", data: jsonOrText(envelope.payload) });
      case Kind.Ping:
        this.send(encodeEnvelope(controlEnvelope(Kind.Pong, envelope.id)));
        return;
      case Kind.Pong: {
        const ping = this.settle(envelope.id);
        return ping?.resolve(performance.now() - ping.sentAt);
      }
      case Kind.Bye:
        return this.ctx.bye(this.id);
      case Kind.Stream:
        return this.announced(envelope.payload);
      case Kind.State:
        return this.stated(envelope.payload);
      case Kind.Mesh:
        return this.broadcast(envelope);
    }
  }

  /** A cells room's broadcast: its channel message, delivered once from its origin. */
  private broadcast(envelope: Envelope): void {
    let message: Broadcast | null;
    try {
      message = readBroadcast(envelope.payload);
    } catch (e) {
      return this.error("malformed_message", e instanceof Error ? e.message : String(e));
    }
    if (!message || !this.ctx.firstBroadcast(message.origin, envelope.id)) return;
    this.ctx.events.emit("message", { from: message.origin, channel: message.channel, data: jsonOrText(message.payload) });
  }

  /** Takes ping `id` off the waiting list. */
  private settle(id: bigint) {
    const ping = this.pings.get(id);
    this.pings.delete(id);
    return ping;
  }

  private announced(payload: Uint8Array): void {
    if (!this.publishes) return;
    const announcement = parseAnnouncement(new TextDecoder().decode(payload));
    if (!announcement) return this.error("malformed_message", "a bad stream announcement");
    const change = this.streams.apply(announcement);
    const peer = this.id;
    switch (change.type) {
      case "added":
        return this.ctx.events.emit("stream-added", { peer, ...change.info });
      case "removed":
        return this.ctx.events.emit("stream-removed", { peer, stream: change.stream });
      case "muted":
        return this.ctx.events.emit("stream-muted", { peer, stream: change.stream, muted: change.muted });
      case "refused":
        return this.error("malformed_message", change.reason);
    }
  }

  private stated(payload: Uint8Array): void {
    let state: unknown;
    try {
      state = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return this.error("malformed_message", "a state that is not JSON");
    }
    this.ctx.events.emit("state", { peer: this.id, state });
  }

  private error(code: string, message: string): void {
    this.ctx.events.emit("error", { code, message, peer: this.id, fatal: false });
  }
}

/** A payload as the JSON value it holds, or as text when it is not JSON. */
export function jsonOrText(payload: Uint8Array): unknown {
  const text = new TextDecoder().decode(payload);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
