#!/usr/bin/env bash
# Builds plenum, starts a signaling server and a room of three headless peers that chat,
# and shows what each of them sees. Ends by itself after about 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plenum/target}"
cargo build --release --locked -p plenum-cli
bin="$CARGO_TARGET_DIR/release/plenum"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --bind 127.0.0.1:0 --json > "$work/server" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/server" ] && break; sleep 0.1; done
url=$(head -n 1 "$work/server" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
echo "signaling server: $url"

peer() { # name, then lines to say with pauses
  local name=$1; shift
  { sleep 2; for line in "$@"; do echo "$line"; sleep 1.5; done; sleep 3; echo /peers; sleep 1; echo /leave; } |
    "$bin" join --server "$url" --room demo --name "$name" --bind-ip 127.0.0.1 2>/dev/null |
    sed -u "s/^/[$name] /" &
  pids+=($!)
}
peer Ada "Hello, I'm Ada." "Shall we start?"
sleep 0.3
peer Bob "Hi Ada, Bob here." "Ready."
sleep 0.3
peer Cy "Cy joining, hello both."
wait "${pids[@]:1}" 2>/dev/null || true
