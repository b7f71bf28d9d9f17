// Stream announcements (the `stream` envelope): what a peer says about its media streams,
// and the streams each peer has announced, within the protocol's bounds.

/** The longest stream id, in bytes of UTF-8. */
export const MAX_STREAM_ID_BYTES = 64;
/** The most streams one peer may announce. */
export const MAX_STREAMS_PER_PEER = 8;

export interface StreamInfo {
  stream: string;
  kind: string;
  metadata: unknown;
  muted: boolean;
}

export type Announcement =
  | ({ op: "add" } & StreamInfo)
  | { op: "remove"; stream: string }
  | { op: "muted"; stream: string; muted: boolean };

const FIELDS: Record<Announcement["op"], string[]> = {
  add: ["op", "stream", "kind", "metadata", "muted"],
  remove: ["op", "stream"],
  muted: ["op", "stream", "muted"],
};

/** Reads an announcement's JSON text; `null` unless it is exactly one of the three shapes. */
export function parseAnnouncement(text: string): Announcement | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const a = value as Record<string, unknown>;
  const op = a.op;
  if (op !== "add" && op !== "remove" && op !== "muted") return null;
  const keys = Object.keys(a);
  if (keys.length !== FIELDS[op].length || !FIELDS[op].every((k) => k in a)) return null;
  if (typeof a.stream !== "string") return null;
  if (op !== "remove" && typeof a.muted !== "boolean") return null;
  if (op === "add" && typeof a.kind !== "string") return null;
  return a as Announcement;
}

/** What an announcement did: a change for the room's events, nothing (an unknown id), or
 * nothing because it broke a bound. */
export type StreamChange =
  | { type: "added"; info: StreamInfo }
  | { type: "removed"; stream: string }
  | { type: "muted"; stream: string; muted: boolean }
  | { type: "ignored" }
  | { type: "refused"; reason: string };

/** The streams one peer has announced. */
export class RemoteStreams {
  private readonly streams = new Map<string, StreamInfo>();

  apply(a: Announcement): StreamChange {
    switch (a.op) {
      case "add": {
        if (new TextEncoder().encode(a.stream).length > MAX_STREAM_ID_BYTES) {
          return { type: "refused", reason: `a stream id longer than ${MAX_STREAM_ID_BYTES} bytes` };
        }
        if (!this.streams.has(a.stream) && this.streams.size >= MAX_STREAMS_PER_PEER) {
          return { type: "refused", reason: `more than ${MAX_STREAMS_PER_PEER} streams` };
        }
        const info = { stream: a.stream, kind: a.kind, metadata: a.metadata, muted: a.muted };
        this.streams.set(a.stream, info);
        return { type: "added", info };
      }
      case "remove":
        return this.streams.delete(a.stream) ? { type: "removed", stream: a.stream } : { type: "ignored" };
      case "muted": {
        const info = this.streams.get(a.stream);
        if (!info) return { type: "ignored" };
        info.muted = a.muted;
        return { type: "muted", stream: a.stream, muted: a.muted };
      }
    }
  }

  /** Forgets every stream (the link closed); their ids. */
  clear(): string[] {
    const ids = [...this.streams.keys()];
    this.streams.clear();
    return ids;
  }
}
