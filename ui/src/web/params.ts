// What the guest page's address says: the room (`/r/ROOM`, or `?room=`), the signaling
// server (`?server=`, else the server that served the page), the name (`?name=`) and a room
// token (`#token=`, which never reaches a server's log, or `?token=`); whether an access code
// is asked for (`?credentials=required`; the code itself is typed in, never in the address).

import type { Role } from "./signaling";

export interface GuestParams {
  room: string | null;
  server: string;
  name: string | null;
  token: string | null;
  /** How to take part (`?role=`): `viewer` watches a presentation; `null` for a role that
   * is not one. */
  role: Role | null;
  /** The room's presenter asks for an access code (`?credentials=required`). */
  credentials: boolean;
}

export function guestParams(location: Pick<Location, "pathname" | "search" | "hash" | "protocol" | "host">): GuestParams {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const path = /^\/r\/([^/]+)\/?$/.exec(location.pathname);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return {
    room: path ? safeDecode(path[1]) : query.get("room") || null,
    server: query.get("server") || `${scheme}://${location.host}/`,
    name: query.get("name") || null,
    token: fragment.get("token") || query.get("token") || null,
    role: roleOf(query.get("role")),
    credentials: query.get("credentials") === "required",
  };
}

function roleOf(text: string | null): Role | null {
  if (text === null || text === "") return "both";
  return text === "viewer" || text === "publisher" || text === "both" ? text : null;
}

function safeDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
