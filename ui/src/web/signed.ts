// The texts peers sign (docs/protocol.md, "Identity" and "Signed descriptions"), the check
// of a peer's signed offer or answer, and the safety code two linked peers compare aloud.
import { bytesBefore, fromBase64url, utf8 } from "./bytes";
import { type Identity, peerIdOf, verifySignature } from "./identity";

/** The text a join's `proof` signs: the challenge exactly as the `hello` gave it. */
export function joinMessage(challenge: string, room: string): string {
  return `plenum-join-v2\n${challenge}\n${room}`;
}

/**
 * `F`: the distinct DTLS fingerprints of an SDP, each `algorithm VALUE` (the algorithm
 * lower-cased, the value upper-cased), sorted and joined by newlines. A certificate written
 * in every media section counts once.
 */
export function fingerprintList(sdp: string): string {
  const prints = new Set<string>();
  for (const line of sdp.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed.startsWith("a=fingerprint:")) continue;
    const [algorithm = "", value = ""] = trimmed.slice("a=fingerprint:".length).trim().split(/\s+/);
    prints.add(`${asciiLower(algorithm)} ${asciiUpper(value)}`);
  }
  return [...prints].sort(byBytes).join("\n");
}

/** The text an offer's or answer's `sig` signs; `null` when the SDP has no fingerprint. */
export function linkMessage(kind: "offer" | "answer", from: string, to: string, seq: number, sdp: string): string | null {
  const prints = fingerprintList(sdp);
  return prints ? `plenum-link-v2\n${kind}\n${from}\n${to}\n${seq}\n${prints}` : null;
}

/** An offer's or answer's signed fields. */
export interface SignedDescription {
  sdp: string;
  key: string;
  seq: number;
  sig: string;
}

/** Signs our description for `to`, numbered `seq`. */
export async function signDescription(
  identity: Identity,
  kind: "offer" | "answer",
  to: string,
  seq: number,
  sdp: string,
): Promise<SignedDescription> {
  const text = linkMessage(kind, identity.id, to, seq, sdp);
  if (text === null) throw new Error(`our ${kind} has no DTLS fingerprint`);
  return { sdp, key: identity.key, seq, sig: await identity.sign(text) };
}

/** What checking a peer's description found: its proven key, or why it is refused. */
export type Verdict = { ok: true; key: Uint8Array<ArrayBuffer> } | { ok: false; reason: string };

/**
 * Checks `from`'s description for us (`to`): its key derives `from`, its signature holds,
 * and its number is higher than `lastSeq`, the last accepted from that peer.
 */
export async function verifyDescription(
  kind: "offer" | "answer",
  from: string,
  to: string,
  description: SignedDescription,
  lastSeq: number,
): Promise<Verdict> {
  const key = fromBase64url(description.key);
  if (!key || key.length !== 32) return { ok: false, reason: "not a public key" };
  if ((await peerIdOf(key)) !== from) return { ok: false, reason: `the key is not ${from}'s` };
  if (!Number.isSafeInteger(description.seq) || description.seq < 0) return { ok: false, reason: "bad number" };
  const text = linkMessage(kind, from, to, description.seq, description.sdp);
  if (text === null) return { ok: false, reason: "no DTLS fingerprint" };
  if (!(await verifySignature(key, text, description.sig))) return { ok: false, reason: "the signature does not verify" };
  if (description.seq <= lastSeq) {
    return { ok: false, reason: `replayed description (number ${description.seq}, last ${lastSeq})` };
  }
  return { ok: true, key };
}

/** The 20 digits two peers holding keys `a` and `b` both show, in four groups of five. */
export async function safetyCode(a: Uint8Array, b: Uint8Array): Promise<string> {
  const [low, high] = bytesBefore(b, a) ? [b, a] : [a, b];
  const input = new Uint8Array([...utf8("plenum-safety-v1"), ...low, ...high]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  const groups = [0, 5, 10, 15].map((at) => {
    const n = digest.subarray(at, at + 5).reduce((acc, byte) => acc * 256n + BigInt(byte), 0n);
    return String(n % 100_000n).padStart(5, "0");
  });
  return groups.join(" ");
}

const asciiLower = (text: string) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());
const asciiUpper = (text: string) => text.replace(/[a-z]/g, (c) => c.toUpperCase());

/** Orders strings by their UTF-8 bytes. */
function byBytes(a: string, b: string): number {
  if (a === b) return 0;
  return bytesBefore(utf8(a), utf8(b)) ? -1 : 1;
}
