#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and black-box tests.
# Builds once into a shared target directory (override with CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plenum/target}"
export CARGO_TERM_COLOR=never
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi
cargo test --workspace --locked --no-fail-fast
