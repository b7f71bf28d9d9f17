// What a room tells its page.
import type { Lane } from "./media";
import type { Role } from "./signaling";
import type { StreamInfo } from "./streams";

export interface RoomEvents {
  /** The server let us in; `peer` is our id. */
  joined: { peer: string; room: string };
  /** A peer is in the room (named by the welcome, or it came in later). */
  "peer-joined": { peer: string; name: string; role: Role };
  /** A peer left the room (or said goodbye on its link). */
  "peer-left": { peer: string };
  /** Our link to a peer opened; both sides show the same safety code. */
  linked: { peer: string; name: string; safetyCode: string | null };
  /** Our link to a peer closed; it is made anew. */
  unlinked: { peer: string };
  /** A message of a named channel: the JSON value sent, or a string if it is not JSON. */
  message: { from: string; channel: string; data: unknown };
  "stream-added": { peer: string } & StreamInfo;
  "stream-removed": { peer: string; stream: string };
  "stream-muted": { peer: string; stream: string; muted: boolean };
  /** A peer's media track arrived; `lane` says what it carries. */
  track: { peer: string; lane: Lane; track: MediaStreamTrack };
  /** Our track on `lane` ended by itself (the user stopped sharing, a device went away). */
  "local-ended": { lane: Lane };
  /** A peer's shared state. */
  state: { peer: string; state: unknown };
  /** The server connection is back after `signaling_lost` (our session resumed, or
   * joined anew under the same id). */
  "signaling-back": Record<string, never>;
  /** Something failed. `fatal`: we are out of the room. */
  error: { code: string; message: string; peer?: string; fatal: boolean };
}
