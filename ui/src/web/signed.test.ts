// @vitest-environment node
import { describe, expect, it } from "vitest";
import { fromBase64url } from "./bytes";
import { ADA, BOB, keysOfSeed, plenumSdp, SAFETY_CODE } from "./fixtures";
import { Identity, verifySignature } from "./identity";
import { fingerprintList, joinMessage, linkMessage, safetyCode, signDescription, verifyDescription } from "./signed";

const key = (text: string) => fromBase64url(text) as Uint8Array<ArrayBuffer>;
const identityOf = async (who: typeof ADA | typeof BOB) => Identity.of(await keysOfSeed(who.seedHex, key(who.key)));

/** Bob's offer and Ada's answer as the example exchange carried them. */
const bobsOffer = { sdp: plenumSdp(BOB.fingerprint), key: BOB.key, seq: BOB.offerSeq, sig: BOB.offerSig };
const adasAnswer = { sdp: plenumSdp(ADA.fingerprint), key: ADA.key, seq: ADA.answerSeq, sig: ADA.answerSig };

describe("fingerprintList", () => {
  it("takes a browser's fingerprint, written in every media section, once", () => {
    const browser = [
      "v=0",
      "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
      "s=-",
      "t=0 0",
      "a=group:BUNDLE 0 1 2 3",
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "a=fingerprint:sha-256 8E:6A:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:D8:E9:FA:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:5D",
      "a=mid:0",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "a=fingerprint:sha-256 8E:6A:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:D8:E9:FA:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:5D",
      "a=mid:1",
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      "  a=fingerprint:SHA-256 8e:6a:0b:1c:2d:3e:4f:50:61:72:83:94:a5:b6:c7:d8:e9:fa:0b:1c:2d:3e:4f:50:61:72:83:94:a5:b6:c7:5d  ",
      "a=mid:2",
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=fingerprint:sha-256 8E:6A:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:D8:E9:FA:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:5D",
      "a=mid:3",
      "",
    ].join("\r\n");
    expect(fingerprintList(browser)).toBe("sha-256 8E:6A:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:D8:E9:FA:0B:1C:2D:3E:4F:50:61:72:83:94:A5:B6:C7:5D");
  });

  it("takes Plenum's session-level fingerprint", () => {
    expect(fingerprintList(plenumSdp(BOB.fingerprint))).toBe(BOB.fingerprint);
  });

  it("sorts several certificates and is empty with none", () => {
    expect(fingerprintList("a=fingerprint:sha-256 BB\na=fingerprint:sha-1 AA\r\na=fingerprint:sha-256 bb")).toBe("sha-1 AA\nsha-256 BB");
    expect(fingerprintList("v=0\r\ns=-\r\n")).toBe("");
    expect(linkMessage("offer", BOB.id, ADA.id, 1, "v=0\r\n")).toBeNull();
  });
});

describe("signed texts", () => {
  it("makes the join message the doc's proofs sign", async () => {
    expect(joinMessage(ADA.challenge, "standup")).toBe(`plenum-join-v2\n${ADA.challenge}\nstandup`);
    const ada = await identityOf(ADA);
    expect(await ada.sign(joinMessage(ADA.challenge, "standup"))).toBe(ADA.proof);
    expect(await verifySignature(key(BOB.key), joinMessage(BOB.challenge, "standup"), BOB.proof)).toBe(true);
    expect(await verifySignature(key(BOB.key), joinMessage(BOB.challenge, "standup2"), BOB.proof)).toBe(false);
  });

  it("makes the link message of Bob's offer", () => {
    expect(linkMessage("offer", BOB.id, ADA.id, BOB.offerSeq, bobsOffer.sdp)).toBe(
      `plenum-link-v2\noffer\n${BOB.id}\n${ADA.id}\n1796511660627109\n${BOB.fingerprint}`,
    );
  });

  it("derives the example's ids and safety code", async () => {
    expect((await identityOf(ADA)).id).toBe(ADA.id);
    expect((await identityOf(BOB)).id).toBe(BOB.id);
    expect(await safetyCode(key(ADA.key), key(BOB.key))).toBe(SAFETY_CODE);
    expect(await safetyCode(key(BOB.key), key(ADA.key))).toBe(SAFETY_CODE);
  });
});

describe("verifyDescription", () => {
  it("accepts the example's signed offer and answer", async () => {
    const offer = await verifyDescription("offer", BOB.id, ADA.id, bobsOffer, -1);
    expect(offer).toEqual({ ok: true, key: key(BOB.key) });
    const answer = await verifyDescription("answer", ADA.id, BOB.id, adasAnswer, -1);
    expect(answer).toEqual({ ok: true, key: key(ADA.key) });
  });

  it("refuses a changed fingerprint", async () => {
    const swapped = { ...bobsOffer, sdp: plenumSdp(BOB.fingerprint.replace("90:A0", "90:A1")) };
    expect(await verifyDescription("offer", BOB.id, ADA.id, swapped, -1)).toEqual({ ok: false, reason: "the signature does not verify" });
  });

  it("refuses a replay, a key that is not the sender's, another kind and another receiver", async () => {
    const replay = await verifyDescription("offer", BOB.id, ADA.id, bobsOffer, BOB.offerSeq);
    expect(replay.ok).toBe(false);
    const stolen = await verifyDescription("offer", BOB.id, ADA.id, { ...bobsOffer, key: ADA.key }, -1);
    expect(stolen).toEqual({ ok: false, reason: `the key is not ${BOB.id}'s` });
    expect((await verifyDescription("answer", BOB.id, ADA.id, bobsOffer, -1)).ok).toBe(false);
    expect((await verifyDescription("offer", BOB.id, BOB.id, bobsOffer, -1)).ok).toBe(false);
    expect((await verifyDescription("offer", BOB.id, ADA.id, { ...bobsOffer, sig: "x" }, -1)).ok).toBe(false);
  });

  it("accepts what signDescription signs", async () => {
    const ada = await identityOf(ADA);
    const signed = await signDescription(ada, "answer", BOB.id, 7, plenumSdp(ADA.fingerprint));
    expect(await verifyDescription("answer", ADA.id, BOB.id, signed, 6)).toEqual({ ok: true, key: key(ADA.key) });
    await expect(signDescription(ada, "offer", BOB.id, 8, "v=0\r\n")).rejects.toThrow(/fingerprint/);
  });
});
