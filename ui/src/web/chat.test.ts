import { describe, expect, it } from "vitest";
import { chatText } from "./chat";

describe("chatText", () => {
  it("takes the trimmed text of a chat message", () => {
    expect(chatText({ text: "  hi  " })).toBe("hi");
    expect(chatText({ text: "x".repeat(4000) })).toHaveLength(4000);
  });

  it("refuses what is not a chat message", () => {
    for (const data of ["hi", null, { text: 5 }, { text: "   " }, { text: "é".repeat(2001) }]) expect(chatText(data)).toBeNull();
  });
});
