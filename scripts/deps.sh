#!/usr/bin/env bash
# Installs what building and testing Plenum needs on Debian/Ubuntu, if it is missing:
# a C toolchain and pkg-config, the WebKitGTK/GTK libraries the desktop app links, Xvfb and
# WebKitWebDriver for its end-to-end tests, Chromium for the browser-guest tests, Node.js and
# npm for its interface, a Rust toolchain when none is on PATH, nats-server for the NATS
# signaling tests, and tauri-driver.
set -euo pipefail
packages=(
  build-essential pkg-config python3 curl cmake
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev libsoup-3.0-dev
  xvfb xauth webkit2gtk-driver imagemagick chromium firefox-esr
  iproute2 nftables coturn nats-server libvpx-dev libasound2-dev pulseaudio pulseaudio-utils alsa-utils libasound2-plugins
  libclang-dev libv4l-dev libxcb1-dev libxcb-randr0-dev libxcb-shm0-dev libxrandr-dev
  libwayland-dev libpipewire-0.3-dev libdbus-1-dev libegl-dev libgbm-dev libxkbcommon-dev
)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v cargo >/dev/null || packages+=(cargo rustc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js 20 or newer is needed for the interface's build (found $(node --version))" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null; then
  echo "installing: tauri-driver" >&2
  cargo install tauri-driver --version 2.1.0 --locked --quiet
fi
