import { describe, expect, it } from "vitest";
import { parseAnnouncement, RemoteStreams } from "./streams";

const add = (stream: string) => ({ op: "add" as const, stream, kind: "video", metadata: { type: "camera" }, muted: false });

describe("parseAnnouncement", () => {
  it("reads the three shapes", () => {
    expect(parseAnnouncement(JSON.stringify(add("video-1")))).toEqual(add("video-1"));
    expect(parseAnnouncement('{"op":"remove","stream":"a"}')).toEqual({ op: "remove", stream: "a" });
    expect(parseAnnouncement('{"op":"muted","stream":"a","muted":true}')).toEqual({ op: "muted", stream: "a", muted: true });
    expect(parseAnnouncement('{"op":"add","stream":"a","kind":"audio","metadata":null,"muted":false}')).not.toBeNull();
  });

  it("refuses anything else", () => {
    for (const text of [
      "nope",
      "[]",
      '{"op":"add","stream":"a","kind":"audio","muted":false}',
      '{"op":"add","stream":"a","kind":"audio","metadata":{},"muted":false,"extra":1}',
      '{"op":"remove","stream":1}',
      '{"op":"muted","stream":"a"}',
      '{"op":"rename","stream":"a"}',
    ]) {
      expect(parseAnnouncement(text)).toBeNull();
    }
  });
});

describe("RemoteStreams", () => {
  it("adds, mutes and removes, and ignores unknown ids", () => {
    const streams = new RemoteStreams();
    expect(streams.apply(add("a"))).toEqual({ type: "added", info: { stream: "a", kind: "video", metadata: { type: "camera" }, muted: false } });
    expect(streams.apply({ op: "muted", stream: "a", muted: true })).toEqual({ type: "muted", stream: "a", muted: true });
    expect(streams.apply({ op: "muted", stream: "b", muted: true })).toEqual({ type: "ignored" });
    expect(streams.apply({ op: "remove", stream: "a" })).toEqual({ type: "removed", stream: "a" });
    expect(streams.apply({ op: "remove", stream: "a" })).toEqual({ type: "ignored" });
  });

  it("holds at most eight streams with ids of at most 64 bytes", () => {
    const streams = new RemoteStreams();
    for (let i = 1; i <= 8; i++) expect(streams.apply(add(`s${i}`)).type).toBe("added");
    expect(streams.apply(add("s9")).type).toBe("refused");
    expect(streams.apply(add("s8")).type).toBe("added");
    expect(new RemoteStreams().apply(add("x".repeat(65))).type).toBe("refused");
    expect(streams.clear()).toHaveLength(8);
  });
});
