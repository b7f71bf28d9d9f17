// A guest's identity: an Ed25519 key pair made by WebCrypto. Its peer id is the first 20
// bytes of SHA-256 over the 32-byte public key, as 40 lowercase hex digits. The pair is kept
// in IndexedDB, so a guest keeps its id across reloads; the private key is not extractable
// and never leaves the browser. Where IndexedDB cannot be used the key lasts as long as the
// page.
import { fromBase64url, toBase64url, toHex, utf8 } from "./bytes";

const ED25519 = { name: "Ed25519" };
const DATABASE = "plenum-guest";
const STORE = "identity";
const ENTRY = "ed25519";

export class Identity {
  private constructor(
    private readonly privateKey: CryptoKey,
    /** The raw 32-byte public key. */
    readonly publicKey: Uint8Array<ArrayBuffer>,
    /** The peer id the key derives. */
    readonly id: string,
  ) {}

  /** The identity of a key pair whose public key can be exported. */
  static async of(keys: CryptoKeyPair): Promise<Identity> {
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
    return new Identity(keys.privateKey, publicKey, await peerIdOf(publicKey));
  }

  /** A fresh identity, not kept anywhere. */
  static async generate(): Promise<Identity> {
    return Identity.of(await generateKeys());
  }

  /** The public key as it travels: base64url, 43 characters. */
  get key(): string {
    return toBase64url(this.publicKey);
  }

  /** The base64url signature of `text`'s UTF-8 bytes. */
  async sign(text: string): Promise<string> {
    return toBase64url(new Uint8Array(await crypto.subtle.sign(ED25519, this.privateKey, utf8(text))));
  }
}

/** The peer id of a raw public key. */
export async function peerIdOf(publicKey: Uint8Array<ArrayBuffer>): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey)).subarray(0, 20));
}

/** Whether `signature` (base64url) is `key`'s (raw) signature of `text`. */
export async function verifySignature(key: Uint8Array<ArrayBuffer>, text: string, signature: string): Promise<boolean> {
  const sig = fromBase64url(signature);
  if (key.length !== 32 || sig?.length !== 64) return false;
  try {
    const imported = await crypto.subtle.importKey("raw", key, ED25519, false, ["verify"]);
    return await crypto.subtle.verify(ED25519, imported, sig, utf8(text));
  } catch {
    return false;
  }
}

/** The identity kept in this browser, made and kept on first use; a fresh one where
 * IndexedDB is unavailable. */
export async function loadIdentity(): Promise<Identity> {
  try {
    return await Identity.of(await storedKeys());
  } catch (e) {
    console.warn(`no stored identity (${String(e)}); using one for this page only`);
    return Identity.generate();
  }
}

function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

async function storedKeys(): Promise<CryptoKeyPair> {
  const db = await request(openDatabase());
  try {
    const kept = await request<CryptoKeyPair | undefined>(db.transaction(STORE).objectStore(STORE).get(ENTRY));
    if (kept) return kept;
    const keys = await generateKeys();
    // `add` fails if another tab stored a pair meanwhile: that one is taken instead.
    await request(db.transaction(STORE, "readwrite").objectStore(STORE).add(keys, ENTRY)).catch(() => undefined);
    return (await request<CryptoKeyPair | undefined>(db.transaction(STORE).objectStore(STORE).get(ENTRY))) ?? keys;
  } finally {
    db.close();
  }
}

function openDatabase(): IDBOpenDBRequest {
  const open = indexedDB.open(DATABASE, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return open;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
