import joinUrl from "../../assets/sounds/join.wav";
import leaveUrl from "../../assets/sounds/leave.wav";

/** Calls up to this many people chime as someone joins or leaves; larger ones stay quiet. */
export const CHIME_MAX_PEOPLE = 8;

export const JOIN_CHIME = joinUrl;
export const LEAVE_CHIME = leaveUrl;

/**
 * A short chime (assets/sounds/) when someone joins or leaves a small call: a rising
 * pair of notes for a join, a falling pair for a leave. The first roster (the call as we
 * find it) is not a change, and a large room or a presentation never chimes.
 */
export class Chimes {
  private known: Set<string> | null = null;

  constructor(private readonly play: (url: string) => void = playUrl) {}

  /** The call's people now (us included); `quiet` in a large room or a presentation. */
  roster(ids: readonly string[], quiet: boolean): void {
    const now = new Set(ids);
    const before = this.known;
    this.known = now;
    if (before === null || quiet) return;
    if (ids.some((id) => !before.has(id))) {
      if (now.size <= CHIME_MAX_PEOPLE) this.play(joinUrl);
    } else if ([...before].some((id) => !now.has(id))) {
      if (before.size <= CHIME_MAX_PEOPLE) this.play(leaveUrl);
    }
  }
}

function playUrl(url: string): void {
  try {
    const audio = new Audio(url);
    audio.volume = 0.5;
    // A page may not play before a gesture, and a test DOM may not play at all: a chime
    // is never worth an error.
    const played: Promise<void> | undefined = audio.play();
    played?.catch(() => {});
  } catch {
    // As above.
  }
}
