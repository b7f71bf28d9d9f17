#!/usr/bin/env bash
# The whole test suite: formatting, lints, the interface's type check and unit tests, then
# unit, property, black-box and end-to-end (real app under Xvfb) tests.
# Builds once into a shared target directory (override with CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plenum/target}"
# Every run builds from a fresh checkout: incremental state only grows the shared target
# directory (tens of GB over a day of runs) without making these builds faster.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR=never
export PLENUM_ARTIFACTS="${PLENUM_ARTIFACTS:-$PWD/target/test-artifacts}"
bash scripts/ui.sh --check
# The browser-guest tests drive Debian's Chromium through playwright-core.
if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm install --no-save --no-audit --no-fund --loglevel=error)
fi
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi
# The app's end-to-end tests start the plenum binary; build every binary first.
cargo build --workspace --locked --bins
cargo test --workspace --locked --no-fail-fast
echo "screenshots: $PLENUM_ARTIFACTS"
