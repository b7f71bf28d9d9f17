import { describe, expect, it, vi } from "vitest";
import { Cursors, throttle } from "./cursors";

describe("Cursors", () => {
  it("shows a named, coloured cursor that eases to its target and goes away", () => {
    const c = new Cursors();
    c.move("p1", "Ada", "rgb(10, 20, 30)", 0, 0);
    const el = c.layer.querySelector(".cursor[data-peer='p1']") as HTMLElement;
    expect(el.querySelector(".cursor-name")?.textContent).toBe("Ada");
    expect(el.querySelector("path")?.getAttribute("fill")).toBe("rgb(10, 20, 30)");
    c.move("p1", "Ada", "x", 1, 0.5);
    expect(el.dataset.x).toBe("1.0000");
    c.step();
    const first = Number.parseFloat(el.style.left);
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(100);
    expect(c.step()).toBe(true);
    for (let i = 0; i < 60; i++) c.step();
    expect(c.step()).toBe(false);
    expect(Number.parseFloat(el.style.left)).toBe(100);
    expect(Number.parseFloat(el.style.top)).toBe(50);
    c.rename("p1", "Ada L");
    expect(el.querySelector(".cursor-name")?.textContent).toBe("Ada L");
    c.remove("p1");
    expect(c.layer.querySelector(".cursor")).toBeNull();
    expect(c.has("p1")).toBe(false);
  });
});

describe("throttle", () => {
  it("sends at most once per interval and always the latest value", () => {
    vi.useFakeTimers();
    const sent: number[] = [];
    const times: number[] = [];
    const t = throttle<number>(
      50,
      (v) => {
        sent.push(v);
        times.push(Date.now());
      },
      () => Date.now(),
    );
    for (let i = 0; i < 100; i++) {
      t(i);
      vi.advanceTimersByTime(1);
    }
    vi.advanceTimersByTime(100);
    // 100 calls in 100 ms: a few sends, never two within 50 ms, the last value last.
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(50);
    expect(sent[0]).toBe(0);
    expect(sent[sent.length - 1]).toBe(99);
    vi.useRealTimers();
  });
});
