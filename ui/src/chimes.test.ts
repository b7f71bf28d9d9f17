import { CHIME_MAX_PEOPLE, Chimes, JOIN_CHIME, LEAVE_CHIME } from "./chimes";

describe("chimes", () => {
  it("chime when someone joins or leaves a small call, not for the call as we find it", () => {
    const played: string[] = [];
    const chimes = new Chimes((url) => played.push(url));
    chimes.roster(["me", "ada"], false);
    expect(played).toEqual([]);
    chimes.roster(["me", "ada", "bo"], false);
    expect(played).toEqual([JOIN_CHIME]);
    chimes.roster(["me", "bo"], false);
    expect(played).toEqual([JOIN_CHIME, LEAVE_CHIME]);
    // A roster that names the same people again is no change.
    chimes.roster(["bo", "me"], false);
    expect(played.length).toBe(2);
    expect(JOIN_CHIME).not.toBe(LEAVE_CHIME);
    expect(JOIN_CHIME).toMatch(/join.*\.wav/);
  });

  it("stay quiet in a large call and in a presentation", () => {
    const played: string[] = [];
    const chimes = new Chimes((url) => played.push(url));
    const people = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`);
    chimes.roster(people(CHIME_MAX_PEOPLE), false);
    chimes.roster(people(CHIME_MAX_PEOPLE + 1), false);
    chimes.roster(people(CHIME_MAX_PEOPLE + 2), false);
    expect(played).toEqual([]);
    chimes.roster(people(3), false);
    chimes.roster(people(4), true);
    chimes.roster(people(2), true);
    expect(played).toEqual([]);
    chimes.roster(people(3), false);
    expect(played).toEqual([JOIN_CHIME]);
  });
});
