#!/usr/bin/env bash
# Two headless Chromium peers in a call through the network lab (needs root: network
# namespaces, tc, nftables). Makes two namespaces joined by a veth pair (A: va 10.77.0.1/24,
# B: vb 10.77.0.2/24) and a Chromium wrapper for each, runs lab.mjs (which shapes and counts
# A's side, runs the call and prints one JSON object on stdout), and on any exit stops what
# is left in the namespaces by PID and deletes them.
#   bench/browser/run.sh [--scenario narrow|step|loss] [lab.mjs options]
# e.g. run.sh --scenario narrow --rate 600; run.sh --scenario step; run.sh --scenario loss
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "run.sh: needs root (network namespaces, tc, nftables)" >&2
  exit 1
fi
if [ ! -d node_modules/playwright-core ]; then
  echo "run.sh: run 'npm ci' in $PWD first" >&2
  exit 1
fi
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
A=brA$$
B=brB$$
DIR=$(mktemp -d /tmp/plenum-browser-lab.XXXXXX)
DRIVER=

# Stops the driver, then whatever still runs in the namespaces (the browsers), by PID.
cleanup() {
  local status=$? ns pids
  trap - EXIT INT TERM
  if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    for _ in 1 2 3 4 5; do kill -0 "$DRIVER" 2>/dev/null && sleep 1; done
    kill -KILL "$DRIVER" 2>/dev/null || true
  fi
  for ns in "$A" "$B"; do
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      sleep 1
      pids=$(ip netns pids "$ns" || true)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns"
  done
  rm -rf "$DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev va
ip -n "$B" addr add 10.77.0.2/24 dev vb
ip -n "$A" link set va up
ip -n "$B" link set vb up

for ns in "$A" "$B"; do
  printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "$CHROMIUM" > "$DIR/chromium-$ns"
  chmod +x "$DIR/chromium-$ns"
done

LAB_NS_A=$A LAB_NS_B=$B LAB_DIR=$DIR \
  LAB_CHROMIUM_A=$DIR/chromium-$A LAB_CHROMIUM_B=$DIR/chromium-$B \
  node lab.mjs "$@" &
DRIVER=$!
wait "$DRIVER"
