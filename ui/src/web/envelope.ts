// The peer envelope, version 1: every data-channel message between two peers.
//
//   offset  size  field
//   0       1     version = 1
//   1       1     kind
//   2       1     hops (0 from the sender)
//   3       1     n = channel name length, 0..=12 (0 for control kinds)
//   4       n     channel name, UTF-8 without control characters
//   4+n     8     message id, big-endian u64
//   12+n    rest  payload

export const ENVELOPE_VERSION = 1;
/** The largest envelope, header included: the SCTP message size both sides announce. */
export const MAX_ENVELOPE_BYTES = 262_144;
/** The longest channel name, in bytes of UTF-8. */
export const MAX_CHANNEL_BYTES = 12;
const HEADER_BYTES = 12;

export const Kind = {
  Data: 0,
  Ping: 1,
  Pong: 2,
  Heartbeat: 3,
  Bye: 4,
  Stream: 5,
  Mesh: 6,
  Tree: 7,
  Relay: 8,
  Host: 9,
  State: 10,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export interface Envelope {
  kind: Kind;
  hops: number;
  /** The channel name: data (and host) envelopes only; `null` when the name is empty. */
  channel: string | null;
  /** The message id; the nonce of a ping or pong. */
  id: bigint;
  payload: Uint8Array;
}

/** Why bytes are not an envelope, or an envelope cannot be written. */
export class EnvelopeError extends Error {}

/** Whether `name` can name a channel: 1 to 12 bytes of UTF-8 without control characters. */
export function validChannel(name: string): boolean {
  const bytes = new TextEncoder().encode(name).length;
  return bytes >= 1 && bytes <= MAX_CHANNEL_BYTES && !/\p{Cc}/u.test(name);
}

/** A data envelope of `channel`. */
export function dataEnvelope(channel: string, id: bigint, payload: Uint8Array): Envelope {
  return { kind: Kind.Data, hops: 0, channel, id, payload };
}

/** A control envelope (ping, pong, heartbeat, bye, stream, state): no channel. */
export function controlEnvelope(kind: Kind, id = 0n, payload: Uint8Array = new Uint8Array()): Envelope {
  return { kind, hops: 0, channel: null, id, payload };
}

export function encodeEnvelope(envelope: Envelope): Uint8Array<ArrayBuffer> {
  const { kind, hops, channel, id, payload } = envelope;
  if (channel !== null && !validChannel(channel)) throw new EnvelopeError(`bad channel name ${JSON.stringify(channel)}`);
  if (kind === Kind.Data && channel === null) throw new EnvelopeError("a data envelope needs a channel");
  const name = new TextEncoder().encode(channel ?? "");
  const size = HEADER_BYTES + name.length + payload.length;
  if (size > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`an envelope of ${size} bytes is over ${MAX_ENVELOPE_BYTES}`);
  const out = new Uint8Array(size);
  out.set([ENVELOPE_VERSION, kind, hops, name.length]);
  out.set(name, 4);
  new DataView(out.buffer).setBigUint64(4 + name.length, id);
  out.set(payload, HEADER_BYTES + name.length);
  return out;
}

/** Reads an envelope from untrusted bytes; throws `EnvelopeError` on anything else. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length < HEADER_BYTES) throw new EnvelopeError(`envelope truncated: ${bytes.length} bytes`);
  if (bytes.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError(`an envelope of ${bytes.length} bytes`);
  const [version, kind, hops, nameLength] = bytes;
  if (version !== ENVELOPE_VERSION) throw new EnvelopeError(`envelope version ${version} is not supported`);
  if (kind > Kind.State) throw new EnvelopeError(`unknown envelope kind ${kind}`);
  if (nameLength > MAX_CHANNEL_BYTES) throw new EnvelopeError("bad channel name in envelope");
  if (bytes.length < HEADER_BYTES + nameLength) throw new EnvelopeError(`envelope truncated: ${bytes.length} bytes`);
  const channel = nameLength === 0 ? null : channelName(bytes.subarray(4, 4 + nameLength));
  if (kind === Kind.Data && channel === null) throw new EnvelopeError("a data envelope with no channel");
  const id = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(4 + nameLength);
  return { kind: kind as Kind, hops, channel, id, payload: bytes.slice(HEADER_BYTES + nameLength) };
}

function channelName(bytes: Uint8Array): string {
  let name: string;
  try {
    name = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new EnvelopeError("bad channel name in envelope");
  }
  if (!validChannel(name)) throw new EnvelopeError("bad channel name in envelope");
  return name;
}
