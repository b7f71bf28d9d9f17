import { afterEach, describe, expect, it, vi } from "vitest";
import { aboutDialog, type UpdateApi, updateBar } from "./about";

const current = { current: "0.1.0", server: "https://updates.example/latest.json", available: null, note: "Plenum 0.1.0 is up to date." };
const offered = { ...current, available: { version: "0.1.1", notes: "Fixes.", date: null }, note: null };

function fakeApi(view: unknown = offered) {
  return {
    about: vi.fn(async () => ({ name: "Plenum", version: "0.1.0", licence: "MIT OR Apache-2.0", package: "appimage" })),
    checkUpdate: vi.fn(async () => view),
    installUpdate: vi.fn(async () => null),
  } as unknown as UpdateApi & { installUpdate: ReturnType<typeof vi.fn>; checkUpdate: ReturnType<typeof vi.fn> };
}

const $ = (id: string) => document.getElementById(id) as HTMLElement;

afterEach(() => document.body.replaceChildren());

describe("updates", () => {
  it("offers a newer version in a bar and installs it only on a click", async () => {
    const api = fakeApi();
    const bar = await updateBar(api);
    expect(bar?.textContent).toContain("Plenum 0.1.1 is available (you have 0.1.0)");
    document.body.append(bar as HTMLElement);
    expect(api.installUpdate).not.toHaveBeenCalled();
    $("update-install").click();
    await vi.waitFor(() => expect(api.installUpdate).toHaveBeenCalledTimes(1));
  });

  it("shows no bar when up to date or when the server cannot be asked", async () => {
    expect(await updateBar(fakeApi(current))).toBeNull();
    const failing = fakeApi();
    failing.checkUpdate.mockRejectedValueOnce({ kind: "update", message: "unreachable" });
    expect(await updateBar(failing)).toBeNull();
  });

  it("says why an install failed and lets the user try again", async () => {
    const api = fakeApi();
    api.installUpdate.mockRejectedValueOnce({ kind: "update", message: "the update's signature does not match this app's release key" });
    document.body.append((await updateBar(api)) as HTMLElement);
    const install = $("update-install") as HTMLButtonElement;
    install.click();
    await vi.waitFor(() => expect($("update-bar").textContent).toContain("signature does not match"));
    expect(install.disabled).toBe(false);
  });
});

describe("about", () => {
  it("shows the version, the licence and how Plenum was installed, and checks on request", async () => {
    const api = fakeApi(current);
    document.body.append(aboutDialog(api, () => {}));
    await vi.waitFor(() => expect($("about-version").textContent).toBe("Plenum 0.1.0 (AppImage)"));
    expect($("about-licence").textContent).toBe("Licensed under MIT or Apache-2.0.");
    expect(api.checkUpdate).not.toHaveBeenCalled();
    $("update-check").click();
    await vi.waitFor(() => expect($("update-status").textContent).toBe("Plenum 0.1.0 is up to date."));
  });

  it("reports an unreachable server and offers a newer version when there is one", async () => {
    const api = fakeApi();
    api.checkUpdate.mockRejectedValueOnce({ kind: "update", message: "the update server at https://updates.example/latest.json could not be reached" });
    document.body.append(aboutDialog(api, () => {}));
    $("update-check").click();
    await vi.waitFor(() => expect($("update-status").textContent).toContain("could not be reached"));
    $("update-check").click();
    await vi.waitFor(() => expect($("update-install")).not.toBeNull());
    expect($("update-status").textContent).toContain("Plenum 0.1.1 is available");
  });
});
