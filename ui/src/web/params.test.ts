import { describe, expect, it } from "vitest";
import { guestParams } from "./params";

const at = (url: string) => {
  const u = new URL(url);
  return guestParams({ pathname: u.pathname, search: u.search, hash: u.hash, protocol: u.protocol, host: u.host });
};

describe("guestParams", () => {
  it("takes the room from /r/ROOM and the server from the page's host", () => {
    expect(at("http://127.0.0.1:8080/r/stand%20up?name=Ada")).toEqual({ room: "stand up", server: "ws://127.0.0.1:8080/", name: "Ada", token: null, role: "both", credentials: false });
    expect(at("https://plenum.example/r/standup/").server).toBe("wss://plenum.example/");
  });

  it("takes ?room= and ?server= when given", () => {
    expect(at("http://localhost:4173/guest.html?room=standup&server=ws://127.0.0.1:9/")).toEqual({ room: "standup", server: "ws://127.0.0.1:9/", name: null, token: null, role: "both", credentials: false });
    expect(at("http://localhost/r/%E0%A4").room).toBeNull();
    expect(at("http://localhost/").room).toBeNull();
  });

  it("takes the role to join as, refusing one that is not a role", () => {
    expect(at("http://localhost/r/talk?role=viewer").role).toBe("viewer");
    expect(at("http://localhost/r/talk").role).toBe("both");
    expect(at("http://localhost/r/talk?role=king").role).toBeNull();
  });

  it("says whether an access code is asked for, never taking one from the address", () => {
    expect(at("http://localhost/r/talk?role=viewer&credentials=required").credentials).toBe(true);
    expect(at("http://localhost/r/talk?credentials=no").credentials).toBe(false);
    expect(at("http://localhost/r/talk?code=1234")).not.toHaveProperty("code");
  });

  it("takes a room token from the fragment, else from the query", () => {
    expect(at("http://localhost/r/standup#token=v1.abc.def").token).toBe("v1.abc.def");
    expect(at("http://localhost/r/standup?token=v1.q.r#token=v1.f.g").token).toBe("v1.f.g");
    expect(at("http://localhost/r/standup?token=v1.q.r").token).toBe("v1.q.r");
  });
});
