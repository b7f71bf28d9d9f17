#!/usr/bin/env bash
# The network lab by hand (needs root: network namespaces, tc, nftables): two namespaces
# joined by a veth pair, the sender's side shaped with tbf to RATE kbit/s (200 ms of
# queue) and its bytes counted by nftables before the shaper; a server and a receiving
# peer in the other. Prints, once a second, the bytes the sender has put on the wire;
# both peers' `stats` events go to $OUT/a.out and $OUT/b.out.
#   scripts/netlab.sh [RATE_KBIT] [SECONDS] [VIDEO]     (default: 600 30 testsrc:1280x720@30)
# The same lab, with its assertions, is tests/cli/calls-fit-their-path.rs.
set -u
RATE=${1:-600}; SECS=${2:-30}; VIDEO=${3:-testsrc:1280x720@30}
P=${PLENUM:-target/debug/plenum}
OUT=${OUT:-/tmp/plenum-lab}; mkdir -p "$OUT"
A=labA$$; B=labB$$
ip netns add $A; ip netns add $B
ip -n $A link set lo up; ip -n $B link set lo up
ip -n $A link add va type veth peer name vb netns $B
ip -n $A addr add 10.77.0.1/24 dev va; ip -n $B addr add 10.77.0.2/24 dev vb
ip -n $A link set va up; ip -n $B link set vb up
ip netns exec $A tc qdisc add dev va root tbf rate ${RATE}kbit burst 4kb latency 200ms
cat > $OUT/rules.nft <<'NFT'
table inet lab {
  counter out_bytes {
  }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "va" counter name out_bytes
  }
}
NFT
ip netns exec $A nft -f $OUT/rules.nft
ip netns exec $B $P serve --bind 10.77.0.2:7700 > $OUT/serve.log 2>&1 &
SP=$!
sleep 0.5
mkfifo $OUT/ain$$ $OUT/bin$$
(ip netns exec $A $P join --server ws://10.77.0.2:7700 --room lab --name a --json --bind-ip 10.77.0.1 --video $VIDEO --audio sine:440 < $OUT/ain$$ > $OUT/a.out 2>$OUT/a.err) &
(ip netns exec $B $P join --server ws://10.77.0.2:7700 --room lab --name b --json --bind-ip 10.77.0.2 < $OUT/bin$$ > $OUT/b.out 2>$OUT/b.err) &
exec 3>$OUT/ain$$ 4>$OUT/bin$$
for i in $(seq 1 $SECS); do
  sleep 1
  echo '{"cmd":"stats"}' >&3; echo '{"cmd":"stats"}' >&4
  echo "t=$i out_bytes=$(ip netns exec $A nft list counter inet lab out_bytes | grep -o 'bytes [0-9]*')"
done
echo '{"cmd":"leave"}' >&3; echo '{"cmd":"leave"}' >&4
sleep 2; exec 3>&- 4>&-
kill $SP; wait
ip netns del $A; ip netns del $B; rm -f $OUT/ain$$ $OUT/bin$$
