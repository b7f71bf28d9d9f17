#!/usr/bin/env bash
# Builds the desktop app (installing what it needs on Debian/Ubuntu) and opens it.
# Arguments go to the app, e.g. --server ws://host:7878 --room standup --name Ada.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plenum/target}"
bash scripts/ui.sh
cargo build --locked -p plenum-app -p plenum-cli
exec "$CARGO_TARGET_DIR/debug/plenum-app" "$@"
