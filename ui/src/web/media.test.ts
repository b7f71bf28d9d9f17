import { describe, expect, it } from "vitest";
import { plenumSdp } from "./fixtures";
import { lanesByMid } from "./media";

describe("lanesByMid", () => {
  it("reads Plenum's sections: audio, camera, screen", () => {
    expect([...lanesByMid(plenumSdp("sha-256 AA"))]).toEqual([
      ["0", "audio"],
      ["1", "camera"],
      ["2", "screen"],
    ]);
  });

  it("goes by section order, not by mid, and leaves extra sections out", () => {
    const sdp = ["v=0", "m=application 9 x", "a=mid:data", "m=video 9 x", "a=mid:v1", "m=audio 9 x", "a=mid:a", "m=video 9 x", "a=mid:v0", "m=video 9 x", "a=mid:v2", ""].join("\n");
    expect(Object.fromEntries(lanesByMid(sdp))).toEqual({ v1: "camera", a: "audio", v0: "screen" });
  });
});
