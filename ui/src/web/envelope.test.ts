import { describe, expect, it } from "vitest";
import { controlEnvelope, dataEnvelope, decodeEnvelope, encodeEnvelope, Kind, MAX_ENVELOPE_BYTES, validChannel } from "./envelope";

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("envelope", () => {
  it("writes the documented layout", () => {
    const encoded = encodeEnvelope(dataEnvelope("chat", 0x0102n, new TextEncoder().encode("hi")));
    expect([...encoded]).toEqual([1, 0, 0, 4, ...new TextEncoder().encode("chat"), 0, 0, 0, 0, 0, 0, 1, 2, 104, 105]);
    expect([...encodeEnvelope(controlEnvelope(Kind.Heartbeat))]).toEqual([1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("round-trips every kind", () => {
    for (const kind of Object.values(Kind)) {
      const envelope = kind === Kind.Data ? dataEnvelope("board", 42n, bytes(1, 2, 3)) : controlEnvelope(kind, 2n ** 64n - 1n, bytes(9));
      expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual(envelope);
    }
  });

  it("fits the largest payload with the longest channel name, and no more", () => {
    const name = "abcdefghijkl";
    const payload = new Uint8Array(MAX_ENVELOPE_BYTES - 24);
    const encoded = encodeEnvelope(dataEnvelope(name, 1n, payload));
    expect(encoded.length).toBe(MAX_ENVELOPE_BYTES);
    expect(decodeEnvelope(encoded).payload.length).toBe(262_120);
    expect(() => encodeEnvelope(dataEnvelope(name, 1n, new Uint8Array(262_121)))).toThrow(/over/);
  });

  it("refuses bad channel names when writing", () => {
    expect(validChannel("abcdefghijkl")).toBe(true);
    expect(validChannel("€€€€")).toBe(true);
    expect(validChannel("€€€€é")).toBe(false);
    expect(validChannel("")).toBe(false);
    expect(validChannel("a\nb")).toBe(false);
    expect(() => encodeEnvelope(dataEnvelope("abcdefghijklm", 1n, bytes()))).toThrow(/channel/);
    expect(() => encodeEnvelope({ ...controlEnvelope(Kind.Data), channel: null })).toThrow(/channel/);
  });

  it("refuses bytes that are not an envelope", () => {
    const refused = [
      bytes(1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0), // short
      bytes(2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), // version
      bytes(1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), // kind
      bytes(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), // data without a channel
      bytes(1, 0, 0, 13, ...new Array(21).fill(97)), // name too long
      bytes(1, 0, 0, 4, 99, 104, 97, 116, 0, 0, 0), // truncated id
      bytes(1, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1), // not UTF-8
      bytes(1, 0, 0, 1, 10, 0, 0, 0, 0, 0, 0, 0, 1), // a control character
      new Uint8Array(MAX_ENVELOPE_BYTES + 1).fill(1, 0, 1), // too large
    ];
    for (const b of refused) expect(() => decodeEnvelope(b)).toThrow();
  });

  it("reads a control envelope that carries a channel name", () => {
    const heartbeat = decodeEnvelope(bytes(1, 3, 0, 1, 120, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(heartbeat.kind).toBe(Kind.Heartbeat);
  });
});
