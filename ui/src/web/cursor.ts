// The `cursor` channel's messages (docs/protocol.md, section 3): `{"t":"at","x":X,"y":Y}`
// with both in 0..=1, or `{"t":"gone"}`; any other field is refused.
import type { UiEvent } from "../bindings";

export const CURSOR_CHANNEL = "cursor";

/** Our pointer as it travels: over the shared area at `at`, or gone from it. */
export function cursorMessage(at: [number, number] | null): { t: "at"; x: number; y: number } | { t: "gone" } {
  if (!at) return { t: "gone" };
  const fraction = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 10_000) / 10_000;
  return { t: "at", x: fraction(at[0]), y: fraction(at[1]) };
}

/** What a peer's cursor message means to the view; `null` for one that is not valid. */
export function cursorEvent(peer: string, data: unknown): UiEvent | null {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
  const m = data as Record<string, unknown>;
  const keys = Object.keys(m).sort().join(",");
  if (m.t === "gone" && keys === "t") return { type: "cursor_gone", peer };
  if (m.t !== "at" || keys !== "t,x,y") return null;
  const inRange = (v: unknown): v is number => typeof v === "number" && v >= 0 && v <= 1;
  return inRange(m.x) && inRange(m.y) ? { type: "cursor", peer, x: m.x, y: m.y } : null;
}
