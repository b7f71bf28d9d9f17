#!/usr/bin/env bash
# Runs `plenum bench rooms --json` next to webrtc-rs's own data-channels-stress-bench,
# built from the published webrtc crate (unpatched) in the same run, and prints the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p plenum-cli >&2
cargo fetch --locked >&2
registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/webrtc-0.21.1 | head -n 1)
work="$CARGO_TARGET_DIR/baseline/webrtc-0.21.1"
if [ ! -x "$CARGO_TARGET_DIR/baseline/target/release/examples/data-channels-stress-bench" ]; then
  rm -rf "$work" && mkdir -p "$(dirname "$work")" && cp -r "$registry" "$work"
  chmod -R u+w "$work" && printf '\n[workspace]\n' >> "$work/Cargo.toml"
  (cd "$work" && cargo build --release --example data-channels-stress-bench \
    --target-dir "$CARGO_TARGET_DIR/baseline/target" >&2)
fi
"$CARGO_TARGET_DIR/release/plenum" bench rooms --json \
  --baseline-bin "$CARGO_TARGET_DIR/baseline/target/release/examples/data-channels-stress-bench" "$@"
