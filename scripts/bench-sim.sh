#!/usr/bin/env bash
# Runs `plenum sim` over the rooms docs/benchmarks.md records (cells at 100 to 10,000 peers,
# with churn and loss; the full mesh at 100 to 1,000) and prints one JSON object per line,
# each after a `# ARGS` line. Takes about ten minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --locked -p plenum-cli >&2
  bin="$CARGO_TARGET_DIR/release/plenum"
else
  cargo build --locked -p plenum-cli >&2
  bin="$CARGO_TARGET_DIR/debug/plenum"
fi
while read -r args; do
  [ -z "$args" ] && continue
  echo "# $args"
  # shellcheck disable=SC2086
  "$bin" sim $args --seed "${SEED:-1}" --broadcasts 100 --json
done <<'RUNS'
--topology cells --peers 10000
--topology cells --peers 10000 --churn 5
--topology cells --peers 10000 --loss 1
--topology cells --peers 1000
--topology mesh --peers 1000
--topology cells --peers 300
--topology mesh --peers 300
--topology cells --peers 100
--topology mesh --peers 100
--topology cells --peers 3000 --cell-size 24
--topology cells --peers 10000 --cell-size 24
RUNS
