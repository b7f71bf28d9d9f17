#!/usr/bin/env bash
# Starts coturn on 127.0.0.1 (a free port, use-auth-secret), runs `plenum bench turn`
# against it (a relayed link beside a direct one) and prints the JSON. coturn is ended by
# its process id, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
command -v turnserver >/dev/null || { echo "install coturn (scripts/deps.sh does)" >&2; exit 2; }
cargo build --release --locked -p plenum-cli >&2
work=$(mktemp -d)
secret="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$secret" > "$work/secret"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$port" \
  --use-auth-secret --static-auth-secret "$secret" --realm plenum.bench \
  --allow-loopback-peers --no-tls --no-dtls --no-cli --log-file stdout --simple-log \
  --min-port 50000 --max-port 50500 --pidfile "$work/turn.pid" > "$work/turn.log" 2>&1 &
turn=$!
trap 'status=$?; kill "$turn" 2>/dev/null; wait "$turn" 2>/dev/null; rm -rf "$work"; exit $status' EXIT
for _ in $(seq 50); do grep -q "Total General servers" "$work/turn.log" && break; sleep 0.1; done
"$CARGO_TARGET_DIR/release/plenum" bench turn --turn-url "turn:127.0.0.1:$port" \
  --turn-secret-file "$work/secret" "$@"
