#!/usr/bin/env bash
# The release check: builds the packages twice with scripts/release.sh (version N, the
# workspace's, and N+1, signed with the same fresh key), then tests them as users get them
# (tests/release/): the .deb installed with apt, started, joined, opened from an invite link
# and removed; the AppImage started; updates from N to N+1 through a local server, and the
# refusals. Needs root (the .deb is installed system-wide, then removed). About 40 minutes
# on 2 cores from a cold target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "$(id -u)" -ne 0 ]; then
  echo "the release check installs a .deb: run it as root" >&2
  exit 1
fi
bash scripts/deps.sh
# The test's own desktop session: a session bus (the single-instance hand-over), xdg-open, and
# sudo (how the updater gets root's rights for dpkg with no desktop to ask for a password).
for p in dbus-daemon xdg-utils sudo; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >&2
done
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
work="$root/target/release-check"
rm -rf "$work"
mkdir -p "$work"

n=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
next=$(python3 -c 'import sys; a, b, c = sys.argv[1].split("."); print(f"{a}.{b}.{int(c) + 1}")' "$n")
export PLENUM_SIGNING_KEY="$work/updater.key"
for version in "$n" "$next"; do
  dir="$work/$([ "$version" = "$n" ] && echo n || echo next)"
  PLENUM_VERSION="$version" bash scripts/release.sh
  mkdir -p "$dir/deb" "$dir/appimage"
  cp target/release/bundle/deb/Plenum_"${version}"_amd64.deb* "$dir/deb/"
  cp target/release/bundle/appimage/Plenum_"${version}"_amd64.AppImage* "$dir/appimage/"
done

# N+1 signed with a key the app does not trust.
cargo tauri signer generate --ci --password "" --write-keys "$work/other.key" >/dev/null
forged="$work/forged/Plenum.AppImage"
mkdir -p "$(dirname "$forged")"
cp "$work/next/appimage/Plenum_${next}_amd64.AppImage" "$forged"
cargo tauri signer sign --private-key-path "$work/other.key" --password "" "$forged" >/dev/null
cp "$forged.sig" "$work/other.sig"

PLENUM_RELEASE_DIR="$work" PLENUM_CLI="$CARGO_TARGET_DIR/release/plenum" \
  cargo test --locked -p plenum-e2e --features release-check --test release-packages -- --test-threads=1
