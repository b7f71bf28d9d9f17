import { describe, expect, it } from "vitest";
import { Delivered, readBroadcast } from "./broadcast";

const text = (s: string) => [...new TextEncoder().encode(s)];

/** A broadcast's payload as docs/protocol.md lays it out. */
function frame(origin: string, rest: number[]): Uint8Array {
  const id = text(origin);
  return Uint8Array.from([4, 255, 1, 0, 0, 0, 2, 0, 0, 0, 0, id.length, ...id, ...rest]);
}

describe("a cells room's broadcast", () => {
  it("reads a channel message from its origin", () => {
    const got = readBroadcast(frame("ada", [1, 4, ...text("chat"), ...text('{"text":"hi"}')]));
    expect(got?.origin).toBe("ada");
    expect(got?.channel).toBe("chat");
    expect(new TextDecoder().decode(got?.payload)).toBe('{"text":"hi"}');
  });

  it("passes over an application's own bytes", () => {
    expect(readBroadcast(frame("ada", [0, 1, 2, 3]))).toBeNull();
  });

  it("refuses what does not decode", () => {
    expect(() => readBroadcast(Uint8Array.from([4, 255, 1]))).toThrow(/truncated/);
    expect(() => readBroadcast(frame("ada", []))).toThrow(/origin/);
    expect(() => readBroadcast(frame("ada", [1, 9, ...text("chat")]))).toThrow(/channel name/);
    expect(() => readBroadcast(frame("ada", [1, 0]))).toThrow(/channel name/);
    // Whole, but not a name any peer may send: longer than a channel name may be, or with
    // a control character.
    const long = "c".repeat(13);
    expect(() => readBroadcast(frame("ada", [1, long.length, ...text(long), 1]))).toThrow(/not a channel name/);
    expect(() => readBroadcast(frame("ada", [1, 3, ...text("a\nb"), 1]))).toThrow(/not a channel name/);
  });

  it("is delivered once, and forgets the oldest beyond its memory", () => {
    const delivered = new Delivered(2);
    expect(delivered.first("ada", 1n)).toBe(true);
    expect(delivered.first("ada", 1n)).toBe(false);
    expect(delivered.first("bob", 1n)).toBe(true);
    expect(delivered.first("ada", 2n)).toBe(true);
    expect(delivered.first("ada", 1n)).toBe(true);
  });
});
