// A cells room's broadcast (`mesh`, kind 6; docs/protocol.md, section 2) as a browser
// guest reads it. A guest is let only into a cells room of one cell, where a broadcast
// comes straight from its origin (who sends it to every cell mate): the guest delivers it
// and passes nothing on. A message on a channel to every peer travels this way in a cells
// room, not as a data envelope.
//
//   offset  size  field
//   0       1     ttl
//   1       1     dim
//   2       1     flags
//   3       4     epoch of the origin's layout
//   7       4     the origin's cell
//   11      1     n = length of the origin's peer id
//   12      n     the origin's peer id
//   12+n    rest  a kind (0: mesh_send bytes; 1: a channel message) and its bytes:
//                 1 byte the channel name's length, the name, the message

import { validChannel } from "./envelope";

/** A channel message broadcast to every peer of a cells room. */
export interface Broadcast {
  origin: string;
  channel: string;
  payload: Uint8Array;
}

const FIXED = 12;
const CHANNEL_MESSAGE = 1;

/** Reads a broadcast's payload: its channel message, `null` for another kind (an
 * application's `mesh_send` bytes, which the page has no use for). Throws on bytes that do
 * not decode. */
export function readBroadcast(payload: Uint8Array): Broadcast | null {
  if (payload.length < FIXED) throw new Error(`a broadcast of ${payload.length} bytes is truncated`);
  const n = payload[11] as number;
  const rest = FIXED + n;
  if (n === 0 || payload.length < rest + 1) throw new Error("a broadcast's origin is truncated");
  const origin = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(FIXED, rest));
  if (payload[rest] !== CHANNEL_MESSAGE) return null;
  const length = payload[rest + 1];
  if (length === undefined || length === 0 || payload.length < rest + 2 + length) throw new Error("a broadcast's channel name is truncated");
  const channel = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(rest + 2, rest + 2 + length));
  // A channel name no peer may send (too long, control characters) is malformed, as in a
  // data envelope.
  if (!validChannel(channel)) throw new Error(`a broadcast's channel name ${JSON.stringify(channel)} is not a channel name`);
  return { origin, channel, payload: payload.subarray(rest + 2 + length) };
}

/** Which broadcasts were delivered, by (origin, id): the newest few thousand. */
export class Delivered {
  private readonly seen = new Set<string>();

  constructor(private readonly most = 4096) {}

  /** Whether `(origin, id)` is new; it is remembered as delivered. */
  first(origin: string, id: bigint): boolean {
    const key = `${origin}:${id}`;
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    if (this.seen.size > this.most) {
      const oldest = this.seen.values().next().value as string;
      this.seen.delete(oldest);
    }
    return true;
  }
}
