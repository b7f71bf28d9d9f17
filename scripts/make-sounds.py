#!/usr/bin/env python3
"""Writes the app's chimes into assets/sounds/: join.wav (a rising pair of notes, 660 Hz
then 880 Hz) and leave.wav (the same pair falling), 48 kHz mono 16-bit, half a second
each. The app plays them when someone joins or leaves a small call; the audio tests send
them across a real link as a file source. Deterministic: the same bytes every run."""

import math
import struct
import wave
from pathlib import Path

RATE = 48_000
LEVEL = 0.35  # peak, of full scale
NOTE = 0.18  # seconds per note
GAP = 0.02
LENGTH = 0.5


def note(hz: float, seconds: float) -> list[float]:
    n = int(seconds * RATE)
    out = []
    for i in range(n):
        t = i / RATE
        # 8 ms attack, then a decay to silence at the note's end: no clicks.
        attack = min(1.0, t / 0.008)
        decay = (1.0 - i / n) ** 1.5
        out.append(LEVEL * attack * decay * math.sin(2 * math.pi * hz * t))
    return out


def chime(first: float, second: float) -> list[float]:
    samples = note(first, NOTE) + [0.0] * int(GAP * RATE) + note(second, NOTE)
    return samples + [0.0] * (int(LENGTH * RATE) - len(samples))


def write(path: Path, samples: list[float]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", round(s * 32767)) for s in samples))


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "assets" / "sounds"
    out.mkdir(parents=True, exist_ok=True)
    write(out / "join.wav", chime(660.0, 880.0))
    write(out / "leave.wav", chime(880.0, 660.0))


if __name__ == "__main__":
    main()
