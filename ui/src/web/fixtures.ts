// The example exchange of docs/protocol.md ("Example exchange"): Ada (secret seed 32 bytes
// 0x01) and Bob (0x02) in room `standup`, with their keys, proofs and signed descriptions.

export const ADA = {
  seedHex: "01".repeat(32),
  key: "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w",
  id: "34750f98bd59fcfc946da45aaabe933be154a4b5",
  challenge: "hsfNDh0tIuOXAPhmvn8tq1JBXzzk8sXh3dgdHGkEzLk",
  proof: "u0OhzBVkBsxS0r_wCg6aoahd7ka2iIdS4ShMr3hkac_ACvq32bOWTnqlVhrROxIqRUKCj9Cebr-P0RHuBhooDA",
  fingerprint: "sha-256 22:1C:A7:BD:2E:9A:AE:29:08:FA:12:E1:B7:36:CA:26:CF:2B:55:79:22:CD:9B:3C:78:3F:AF:FC:D7:21:D4:05",
  answerSeq: 1796511657623352,
  answerSig: "cus8ALQWphX0vY3D1JxjFX8LySfkNfoQYYs4sULH-JakgGdrNUPdIu_MxBlHNO_vAIX1wuo9tabhhm1u3tgPDw",
};

export const BOB = {
  seedHex: "02".repeat(32),
  key: "gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q",
  id: "6a3803d5f059902a1c6dafbc9ba4729212f7caac",
  challenge: "XjUQLKoKXKKeuV5lYIAdFVYaQ5uiJpuUoaiUwJeeWuI",
  proof: "alSgLEs5e4SAP32TYEi2D0C88QIynrPWqpK4dZsoeRXg8qCrNn6-xDwjkaRRSyR4of1G3JRammESZo80NdbOCQ",
  fingerprint: "sha-256 90:A0:49:B8:38:6C:6C:F1:58:05:39:DD:FA:7A:DF:01:7F:09:52:18:59:0E:AE:29:FE:06:09:FE:CA:79:6A:27",
  offerSeq: 1796511660627109,
  offerSig: "0NMoIb3xluecKPjpv482iQylUz9JtcF0yH6cwLPA2IQv4SB5nPEE7IWAapadJ-kgRnl4S3UHCzU4yfIgXDSoDA",
};

/** The safety code both of them show. */
export const SAFETY_CODE = "65622 62991 81220 14432";

/** A Plenum-style SDP: the fingerprint once, at session level. */
export function plenumSdp(fingerprint: string): string {
  return [
    "v=0",
    "o=- 713680589567209862 628570315 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    `a=fingerprint:${fingerprint}`,
    "a=group:BUNDLE 0 1 2 3",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "a=mid:0",
    "a=sendrecv",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "a=mid:1",
    "a=sendrecv",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "a=mid:2",
    "a=sendrecv",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=mid:3",
    "",
  ].join("\r\n");
}

/** The identity of a secret seed (64 hex digits, as `plenum join --identity` reads). */
export async function keysOfSeed(seedHex: string, publicKey: Uint8Array<ArrayBuffer>): Promise<CryptoKeyPair> {
  const pkcs8 = Uint8Array.from((`302e020100300506032b657004220420${seedHex}`.match(/../g) ?? []).map((b) => parseInt(b, 16)));
  return {
    privateKey: await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]),
    publicKey: await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, true, ["verify"]),
  };
}
