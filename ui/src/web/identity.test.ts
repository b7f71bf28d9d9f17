// @vitest-environment node
import { describe, expect, it, vi } from "vitest";
import { fromBase64url, toBase64url } from "./bytes";
import { loadIdentity, verifySignature } from "./identity";

describe("bytes", () => {
  it("round-trips base64url without padding and refuses other text", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(fromBase64url(toBase64url(all))).toEqual(all);
    expect(toBase64url(Uint8Array.of(0xfb, 0xff))).toBe("-_8");
    expect(fromBase64url("-_8=")).toBeNull();
    expect(fromBase64url("a+b/")).toBeNull();
    expect(fromBase64url("abcde")).toBeNull();
  });
});

describe("loadIdentity", () => {
  it("makes a key for the page alone where there is no IndexedDB, and signs with it", async () => {
    expect(globalThis.indexedDB).toBeUndefined();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const identity = await loadIdentity();
    expect(identity.id).toMatch(/^[0-9a-f]{40}$/);
    expect(identity.key).toHaveLength(43);
    const sig = await identity.sign("hello");
    expect(await verifySignature(identity.publicKey, "hello", sig)).toBe(true);
    expect((await loadIdentity()).id).not.toBe(identity.id);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/for this page only/));
    warn.mockRestore();
  });
});
