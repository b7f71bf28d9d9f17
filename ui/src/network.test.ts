import { describe, expect, it } from "vitest";
import type { NetworkView } from "./bindings";
import { layoutNetwork, layoutRelay, layoutTree, NetworkPanel } from "./network";

const view: NetworkView = {
  cell: 2,
  cells: 9,
  cell_size: 3,
  bridges: [
    { peer: "b1", cell: 5 },
    { peer: "b2", cell: 0 },
  ],
  known: [
    { peer: "me", cell: 2 },
    { peer: "m1", cell: 2 },
    { peer: "m2", cell: 2 },
    { peer: "b1", cell: 5 },
    { peer: "b2", cell: 0 },
    { peer: "far", cell: 7 },
  ],
};

describe("layoutNetwork", () => {
  it("puts every cell on the ring, ours marked, bridged ones marked", () => {
    const picture = layoutNetwork(view, "me");
    expect(picture.cells).toHaveLength(9);
    expect(picture.cells.filter((c) => c.own).map((c) => c.cell)).toEqual([2]);
    expect(picture.cells.filter((c) => c.bridged).map((c) => c.cell)).toEqual([0, 5]);
    expect(picture.cells[7].known).toBe(1);
    expect(picture.cells[2].known).toBe(3);
  });

  it("draws our cell's peers with us among them and a line to each bridged cell", () => {
    const picture = layoutNetwork(view, "me");
    expect(picture.mates.map((m) => m.peer)).toEqual(["me", "m1", "m2"]);
    expect(picture.mates.filter((m) => m.me)).toHaveLength(1);
    expect(picture.bridges.map((b) => [b.peer, b.x, b.y])).toEqual([
      ["b1", picture.cells[5].x, picture.cells[5].y],
      ["b2", picture.cells[0].x, picture.cells[0].y],
    ]);
  });

  it("still shows us before we know any cell mate", () => {
    const picture = layoutNetwork({ ...view, known: [] }, "me");
    expect(picture.mates).toEqual([{ peer: "me", x: 160, y: 160, me: true }]);
  });
});

describe("NetworkPanel", () => {
  it("says how a mesh room links, then draws the cells once the room is large", () => {
    const panel = new NetworkPanel("me");
    panel.showMesh(4);
    expect(panel.element.textContent).toContain("each of the other 3 people");
    panel.update(view);
    expect(panel.element.textContent).toContain("9 cells");
    expect(panel.element.textContent).toContain("bridge to 2 other cells");
    expect(panel.element.querySelectorAll("circle.network-cell")).toHaveLength(9);
    expect(panel.element.querySelectorAll("line.network-bridge")).toHaveLength(2);
    expect(panel.element.querySelectorAll("circle.network-me")).toHaveLength(1);
    // A mesh roster update no longer overrides the cells.
    panel.showMesh(2);
    expect(panel.element.textContent).toContain("9 cells");
    // A room of one cell (one that has not grown yet, or shrank back) reads as a mesh.
    panel.update({ ...view, cells: 1, cell: 0, cell_size: 5, bridges: [] });
    expect(panel.element.textContent).toContain("one cell: you link to each of the other 4 people");
    expect(panel.element.textContent).not.toContain("Large room");
  });
});

describe("trees and relay networks", () => {
  it("puts the parent above, us in the middle and the children below", () => {
    const t = layoutTree("p", ["c1", "c2"], "me");
    expect(t.parent && t.parent.y).toBeLessThan(t.me.y);
    expect(t.children.map((c) => c.peer)).toEqual(["c1", "c2"]);
    expect(t.children.every((c) => c.y > t.me.y)).toBe(true);
    expect(layoutTree(null, [], "me").parent).toBeNull();
  });

  it("says where we are in a tree and in a relay network", () => {
    const panel = new NetworkPanel("me");
    panel.updateTree("p", ["c1"], 2, false);
    expect(panel.element.textContent).toContain("depth 2");
    expect(panel.element.textContent).toContain("1 child");
    expect(panel.element.querySelectorAll("line")).toHaveLength(2);
    // The roster that follows (our links) does not make it a mesh.
    panel.showMesh(3);
    expect(panel.element.textContent).toContain("depth 2");
    expect(panel.element.textContent).not.toContain("Full mesh");
    panel.updateTree(null, ["a", "b"], 0, true);
    expect(panel.element.textContent).toContain("you are its root, with 2 children");
    panel.updateRelay(["n1", "n2", "n3"]);
    expect(panel.element.textContent).toContain("3 peers directly");
    expect(panel.element.dataset.neighbours).toBe("3");
    expect(layoutRelay(["a", "b"], "me").around).toHaveLength(2);
  });
});
