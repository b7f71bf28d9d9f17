// About Plenum (version, licence, how it was installed) and updates: a check at start that
// shows a bar only when a newer version is offered, and a check on request that always says
// what it found. Nothing is installed without the user's click.
import type { AboutInfo, UpdateView } from "./bindings";
import { h } from "./dom";
import { errorText } from "./ipc";

/** The commands this needs. */
export type UpdateApi = {
  about: () => Promise<AboutInfo>;
  checkUpdate: () => Promise<UpdateView>;
  /** Installs the offered version and restarts into it (resolves only on failure). */
  installUpdate: () => Promise<null>;
};

const PACKAGES: Record<string, string> = { deb: "Debian package", appimage: "AppImage" };

/** "Install and restart": installs on click, says why when it fails. */
function installButton(api: UpdateApi, version: string, status: HTMLElement): HTMLButtonElement {
  const button = h("button", { class: "btn primary", type: "button", id: "update-install" }, `Install ${version} and restart`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = `Installing Plenum ${version}…`;
    try {
      await api.installUpdate();
    } catch (e) {
      status.textContent = errorText(e);
      button.disabled = false;
    }
  });
  return button;
}

/** The About dialog, in an overlay that `close` hides; "Check for updates" inside it. */
export function aboutDialog(api: UpdateApi, close: () => void): HTMLElement {
  const version = h("p", { id: "about-version" }, "…");
  const licence = h("p", { id: "about-licence" });
  const status = h("p", { id: "update-status", role: "status" });
  const actions = h("div", { class: "dialog-actions" });
  const closeButton = h("button", { class: "btn", type: "button" }, "Close");
  closeButton.addEventListener("click", close);
  const check = h("button", { class: "btn", type: "button", id: "update-check" }, "Check for updates");
  check.addEventListener("click", async () => {
    check.disabled = true;
    status.textContent = "Asking the update server…";
    try {
      const view = await api.checkUpdate();
      if (view.available) {
        status.textContent = `Plenum ${view.available.version} is available (you have ${view.current}).${view.available.notes ? ` ${view.available.notes}` : ""}`;
        actions.replaceChildren(closeButton, installButton(api, view.available.version, status));
      } else {
        status.textContent = view.note ?? `Plenum ${view.current} is up to date.`;
      }
    } catch (e) {
      status.textContent = errorText(e);
    }
    check.disabled = false;
  });
  actions.append(closeButton, check);
  void api
    .about()
    .then((info) => {
      const how = info.package ? PACKAGES[info.package] ?? info.package : "built from source";
      version.textContent = `${info.name} ${info.version} (${how})`;
      licence.textContent = `Licensed under ${info.licence.replace(" OR ", " or ")}.`;
    })
    .catch((e) => (version.textContent = errorText(e)));
  return h(
    "div",
    { class: "dialog", role: "dialog", "aria-label": "About Plenum", id: "about" },
    h("div", { class: "brand" }, h("img", { src: "/icon.png", alt: "", class: "brand-icon" }), h("h2", {}, "Plenum")),
    h("p", {}, "Calls, chat and a shared whiteboard — peer to peer, with no media server in the middle."),
    version,
    licence,
    status,
    actions,
  );
}

/** Asks the update server once; a bar offering the newer version, or `null` when there is
 * none or the server cannot be asked (the About dialog says why on request). */
export async function updateBar(api: UpdateApi): Promise<HTMLElement | null> {
  let view: UpdateView;
  try {
    view = await api.checkUpdate();
  } catch (e) {
    console.info(`no update check: ${errorText(e)}`);
    return null;
  }
  const offered = view.available;
  if (!offered) return null;
  const status = h("span", { class: "update-text" }, `Plenum ${offered.version} is available (you have ${view.current}).`);
  const later = h("button", { class: "btn ghost", type: "button", id: "update-later" }, "Later");
  const bar = h("div", { class: "update-bar", id: "update-bar", role: "status" }, status, installButton(api, offered.version, status), later);
  later.addEventListener("click", () => bar.remove());
  return bar;
}
