import { describe, expect, it } from "vitest";
import { jsonOrText } from "./peer";

describe("jsonOrText", () => {
  it("reads JSON, and text when it is not", () => {
    const utf8 = (text: string) => new TextEncoder().encode(text);
    expect(jsonOrText(utf8('{"text":"hi"}'))).toEqual({ text: "hi" });
    expect(jsonOrText(utf8('"hi"'))).toBe("hi");
    expect(jsonOrText(utf8("hi there"))).toBe("hi there");
  });
});
