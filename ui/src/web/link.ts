// One connection to one peer: an RTCPeerConnection with the data channel `plenum` and the
// three media transceivers, its offer/answer state, and the candidates that wait on either
// side (ours until our description has gone out, theirs until theirs is set). A link that
// is replaced or closed is dead: nothing it reports afterwards reaches its owner.
import { fingerprintList } from "./signed";
import { addTransceivers, type Lane, lanesByMid, type LocalTracks, takeTransceivers } from "./media";

/** The data channel's label. */
export const CHANNEL_LABEL = "plenum";
/** Remote candidates held until the remote description is set; the oldest are kept. */
const EARLY_CANDIDATES = 64;

/** A candidate as signaling carries it. */
export interface CandidatePayload {
  kind: "candidate";
  candidate: string;
  sdp_mid?: string;
  sdp_mline_index?: number;
}

export interface LinkEvents {
  /** A local candidate, ready to go to the peer. */
  candidate(payload: CandidatePayload): void;
  /** The data channel opened. */
  open(): void;
  /** Bytes arrived on the data channel. */
  message(bytes: Uint8Array): void;
  /** The data channel closed. */
  closed(): void;
  /** A track of the peer's arrived on `lane`. */
  track(lane: Lane, track: MediaStreamTrack): void;
}

export class Link {
  private readonly pc: RTCPeerConnection;
  private channel: RTCDataChannel | null = null;
  private transceivers = new Map<Lane, RTCRtpTransceiver>();
  private earlyRemote: RTCIceCandidateInit[] = [];
  /** Our candidates, held until our latest description has been sent; `null` once it has. */
  private earlyLocal: CandidatePayload[] | null = [];
  private dead = false;
  /** We sent an offer and have no answer yet. */
  offering = false;
  /** The number of our outstanding offer, which the answer names. */
  offeredSeq: number | null = null;
  /** The far side's fingerprints (`F`) once its description is set. */
  remotePrints = "";
  /** When anything last arrived on the data channel (ms). */
  heardAt = 0;
  /** Silence is not held against the link before this time (ms). */
  graceUntil = 0;

  constructor(
    config: RTCConfiguration,
    private readonly events: LinkEvents,
  ) {
    this.pc = new RTCPeerConnection(config);
    this.pc.onicecandidate = (e) => this.localCandidate(e.candidate);
    this.pc.ondatachannel = (e) => {
      if (e.channel.label === CHANNEL_LABEL && !this.channel) this.attach(e.channel);
    };
    this.pc.ontrack = (e) => this.remoteTrack(e);
  }

  /** Whether the data channel is open. */
  get open(): boolean {
    return this.channel?.readyState === "open";
  }

  /** Whether the far side's description is set. */
  get remoteSet(): boolean {
    return this.pc.remoteDescription !== null;
  }

  /** Makes our offer: the transceivers, the data channel, the local description. */
  async offer(tracks: LocalTracks): Promise<string> {
    this.offering = true;
    this.transceivers = addTransceivers(this.pc, tracks);
    this.attach(this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true }));
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    return offer.sdp ?? "";
  }

  /** Answers the far side's offer (a new connection, or a renegotiation of this one). */
  async answer(offer: string, tracks: LocalTracks): Promise<string> {
    this.earlyLocal ??= [];
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer });
    this.remotePrints = fingerprintList(offer);
    this.transceivers = await takeTransceivers(this.pc, offer, tracks);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await this.addEarlyCandidates();
    return answer.sdp ?? "";
  }

  /** Takes the far side's answer to our offer. */
  async accept(answer: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer });
    this.offering = false;
    this.remotePrints = fingerprintList(answer);
    await this.addEarlyCandidates();
  }

  /** Our description went out: our candidates may follow it. */
  described(): void {
    const held = this.earlyLocal ?? [];
    this.earlyLocal = null;
    for (const candidate of held) this.events.candidate(candidate);
  }

  /** A candidate of the far side: added now, or held until its description is set. */
  async remoteCandidate(payload: CandidatePayload): Promise<void> {
    if (!payload.candidate) return;
    const init: RTCIceCandidateInit = { candidate: payload.candidate };
    if (payload.sdp_mid) init.sdpMid = payload.sdp_mid;
    else init.sdpMLineIndex = payload.sdp_mline_index ?? 0;
    if (this.remoteSet) return this.addCandidate(init);
    if (this.earlyRemote.length < EARLY_CANDIDATES) this.earlyRemote.push(init);
  }

  /** Puts `track` on our sender of `lane`. */
  async setTrack(lane: Lane, track: MediaStreamTrack | null): Promise<void> {
    await this.transceivers.get(lane)?.sender.replaceTrack(track);
  }

  /** Sends bytes on the data channel if it is open; whether it was. */
  send(bytes: Uint8Array<ArrayBuffer>): boolean {
    if (!this.channel || !this.open) return false;
    this.channel.send(bytes);
    return true;
  }

  /** Resolves once what was sent on the data channel has left, or after `ms`. */
  async drain(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.open && (this.channel?.bufferedAmount ?? 0) > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Closes the connection; the link reports nothing more. */
  close(): void {
    this.dead = true;
    this.pc.close();
  }

  private attach(channel: RTCDataChannel): void {
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    channel.onopen = () => {
      if (this.dead) return;
      this.heardAt = Date.now();
      this.events.open();
    };
    channel.onmessage = (e: MessageEvent<ArrayBuffer>) => {
      if (this.dead) return;
      this.heardAt = Date.now();
      this.events.message(new Uint8Array(e.data));
    };
    channel.onclose = () => {
      if (!this.dead) this.events.closed();
    };
  }

  private localCandidate(candidate: RTCIceCandidate | null): void {
    if (this.dead || !candidate?.candidate) return;
    const payload: CandidatePayload = { kind: "candidate", candidate: candidate.candidate };
    if (candidate.sdpMid !== null) payload.sdp_mid = candidate.sdpMid;
    if (candidate.sdpMLineIndex !== null) payload.sdp_mline_index = candidate.sdpMLineIndex;
    if (this.earlyLocal) this.earlyLocal.push(payload);
    else this.events.candidate(payload);
  }

  private remoteTrack(e: RTCTrackEvent): void {
    const sdp = this.pc.remoteDescription?.sdp ?? "";
    const lane = e.transceiver.mid === null ? undefined : lanesByMid(sdp).get(e.transceiver.mid);
    if (!this.dead && lane) this.events.track(lane, e.track);
  }

  private async addEarlyCandidates(): Promise<void> {
    const held = this.earlyRemote;
    this.earlyRemote = [];
    for (const candidate of held) await this.addCandidate(candidate);
  }

  private async addCandidate(init: RTCIceCandidateInit): Promise<void> {
    // A candidate of a connection since replaced fails here, harmlessly.
    await this.pc.addIceCandidate(init).catch(() => undefined);
  }
}
