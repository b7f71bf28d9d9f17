// The signaling connection to `plenum serve` (docs/protocol.md, section 1): one JSON text
// frame per message. The server says `hello` with a challenge, we `join` with our key and
// our signature over it, the server answers `welcome`; after that it tells us who comes and
// goes and relays the peers' `signal` payloads.
import type { Identity } from "./identity";
import type { CandidatePayload } from "./link";
import { joinMessage, type SignedDescription } from "./signed";

export const SIGNALING_VERSION = 2;
/** How long a join may take before it is given up. */
const JOIN_TIMEOUT_MS = 15_000;
/** How often we ping the server while joined. */
const KEEPALIVE_MS = 10_000;

export interface JoinRequest {
  room: string;
  name: string;
  password?: string;
  token?: string;
  /** The `resume` of our last welcome: takes that session's place. */
  resume?: string;
  /** How we take part: `viewer` watches the publishers (and links to no other viewer);
   * absent means `both`. */
  role?: Role;
}

export type Role = "publisher" | "viewer" | "both";

export interface RosterEntry {
  peer: string;
  name: string;
  /** `false` for a peer whose token does not grant publishing. */
  publish?: boolean;
  role?: Role;
}

/** Our place in a cells room (docs/protocol.md, `cell`): we link to exactly its `members`.
 * A browser is let only into a cells room that is one cell, and the room stays one cell
 * while it is there, so it has no bridges. */
export interface CellPlan {
  epoch: number;
  members: RosterEntry[];
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface Welcome {
  type: "welcome";
  room: string;
  peer: string;
  peers: RosterEntry[];
  peer_count: number;
  ice_servers?: IceServer[];
  topology?: { kind: string };
  /** What our token lets us do (everything, without a token). */
  grants?: Grants;
  /** Resumes this session once, after a dropped connection. */
  resume?: string;
}

export interface Grants {
  publish: boolean;
  subscribe: boolean;
  admin: boolean;
}

export interface OfferPayload extends SignedDescription {
  kind: "offer";
  /** What we present to the receiver's check (an access code: `{"code": C}`). */
  credentials?: unknown;
}

export interface AnswerPayload extends SignedDescription {
  kind: "answer";
  credentials?: unknown;
  /** The `seq` of the offer it answers. */
  answers?: number;
}

export interface RefusedPayload {
  kind: "refused";
  reason: string;
}

export type SignalPayload = OfferPayload | AnswerPayload | CandidatePayload | RefusedPayload;

/** What the server sends once we are in the room. */
export type ServerFrame =
  | ({ type: "peer_joined" } & RosterEntry)
  | { type: "cell"; plan: CellPlan }
  | { type: "stage" }
  | { type: "peer_left"; peer: string }
  | { type: "signal"; from: string; payload: SignalPayload }
  | { type: "ice_servers"; ice_servers: IceServer[] }
  | { type: "error"; code: string; message: string; fatal: boolean }
  | { type: "pong"; nonce: number };

/** A refusal by the server, or the connection failing; `code` is the server's error code
 * (docs/protocol.md, "Error codes") or `signaling_lost`. */
export class SignalingError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fatal: boolean,
  ) {
    super(message);
  }
}

export interface SignalingHandlers {
  frame(frame: ServerFrame): void;
  /** The connection ended without our leaving; the links carry on, but no peer can join
   * us any more. */
  lost(error: SignalingError): void;
}

export class Signaling {
  private pings = 0;
  private readonly keepalive: ReturnType<typeof setInterval>;
  private left = false;

  private constructor(
    private readonly socket: WebSocket,
    handlers: SignalingHandlers,
  ) {
    socket.onmessage = (e) => {
      const frame = parseFrame(e.data);
      if (frame) handlers.frame(frame as ServerFrame);
    };
    socket.onclose = (e) => {
      clearInterval(this.keepalive);
      if (this.left) return;
      handlers.lost(new SignalingError("signaling_lost", `the server connection closed (${e.code}); the links carry on`, false));
    };
    this.keepalive = setInterval(() => this.send({ type: "ping", nonce: ++this.pings }), KEEPALIVE_MS);
  }

  /** Connects to `server` and joins; resolves once the server welcomed us. */
  static connect(
    server: string,
    identity: Identity,
    join: JoinRequest,
    handlers: SignalingHandlers,
  ): Promise<{ signaling: Signaling; welcome: Welcome }> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(server);
      const fail = (error: SignalingError) => {
        clearTimeout(timer);
        socket.onclose = socket.onmessage = null;
        socket.close();
        reject(error);
      };
      const late = () => fail(new SignalingError("join_failed", "the server did not welcome us in time", true));
      const timer = setTimeout(late, JOIN_TIMEOUT_MS);
      socket.onclose = () => fail(new SignalingError("join_failed", `cannot reach ${server}`, true));
      socket.onmessage = async (e) => {
        const frame = parseFrame(e.data);
        if (frame?.type === "hello" && typeof frame.challenge === "string") {
          const proof = await identity.sign(joinMessage(frame.challenge, join.room));
          // We link only in a full mesh: a cells room holds us only while it is one cell,
          // and stays one while we are there (docs/protocol.md, `join`).
          socket.send(JSON.stringify({ type: "join", version: SIGNALING_VERSION, ...join, key: identity.key, proof, mesh_only: true }));
        } else if (frame?.type === "error") {
          fail(new SignalingError(String(frame.code), String(frame.message), true));
        } else if (frame?.type === "welcome") {
          clearTimeout(timer);
          resolve({ signaling: new Signaling(socket, handlers), welcome: frame as unknown as Welcome });
        }
      };
    });
  }

  /** Relays `payload` to peer `to`. */
  signal(to: string, payload: SignalPayload): void {
    this.send({ type: "signal", to, payload });
  }

  /** Leaves the room; the server closes the connection. */
  leave(): void {
    this.left = true;
    clearInterval(this.keepalive);
    this.send({ type: "leave" });
    this.socket.close();
  }

  private send(frame: object): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }
}

/** A server frame: a JSON object with a string `type`; `null` for anything else. */
function parseFrame(data: unknown): ({ type: string } & Record<string, unknown>) | null {
  if (typeof data !== "string") return null;
  try {
    const frame: unknown = JSON.parse(data);
    const ok = typeof frame === "object" && frame !== null && typeof (frame as { type?: unknown }).type === "string";
    return ok ? (frame as { type: string } & Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
