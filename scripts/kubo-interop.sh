#!/usr/bin/env bash
# kubo-interop.sh: shows that allmende and Kubo (IPFS) exchange content both
# ways, on loopback only. Not part of the default CI run: building Kubo
# takes a few minutes (cached outside the repo afterwards).
#
#   scripts/kubo-interop.sh
#
# 1. Kubo v0.43.1 is built by bench/build-kubo.sh (module download, the
#    go-libp2p fork's replace line removed, go-libp2p v0.51.0) into
#    $ALLMENDE_BENCH_CACHE (default ~/.cache/allmende-bench), or taken from
#    $KUBO if set.
# 2. Kubo is initialised with --profile=unixfs-v1-2025,test (loopback, no
#    bootstrap, no mDNS; the same import settings as allmende), allmende
#    runs under profile test.
# 3. allmende adds a directory; Kubo computes the same CID with
#    `ipfs add --only-hash` and then fetches it from allmende (ipfs get).
# 4. Kubo adds a directory; allmende fetches it by CID.
# Exit status 0 only if both directions give identical trees.
set -euo pipefail
cd "$(dirname "$0")/.."

READY_TRIES=300 # x 0.1 s: how long a daemon may take to start

work=$(mktemp -d /tmp/allmende-kubo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

say() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

KUBO=${KUBO:-$(bench/build-kubo.sh)}
say "kubo: $KUBO ($("$KUBO" version))"
go build -o "$work/allmende" ./cmd/allmende
AM="$work/allmende"

# Content: a directory with a 20 MiB file (20 chunks), a nested file and
# a small config, random so nobody else has it.
mkdata() { # mkdata DIR SEED
	mkdir -p "$1/sub"
	head -c $((20 << 20)) /dev/urandom >"$1/weights.bin"
	echo "{\"seed\": $2}" >"$1/config.json"
	head -c 3000 /dev/urandom >"$1/sub/vocab.txt"
}
same_tree() { diff -r "$1" "$2" >/dev/null || fail "trees differ: $1 $2"; }

export IPFS_PATH="$work/kubo"
"$KUBO" init --profile=unixfs-v1-2025,test >/dev/null
"$KUBO" daemon >"$work/kubo.log" 2>&1 &
pids+=($!)
for ((i = 0; i < READY_TRIES; i++)); do grep -q "Daemon is ready" "$work/kubo.log" && break; sleep 0.1; done
grep -q "Daemon is ready" "$work/kubo.log" || fail "kubo did not start: $(cat "$work/kubo.log")"
kubo_addr=$("$KUBO" id -f '<addrs>\n' | grep '/ip4/127.0.0.1/tcp/' | head -1)
say "kubo listens on $kubo_addr"

export ALLMENDE_HOME="$work/allmende-home" ALLMENDE_PROFILE=test
"$AM" daemon >"$work/allmende.log" 2>&1 &
pids+=($!)
for ((i = 0; i < READY_TRIES; i++)); do [ -s "$ALLMENDE_HOME/api" ] && break; sleep 0.1; done
[ -s "$ALLMENDE_HOME/api" ] || fail "allmende did not start: $(cat "$work/allmende.log")"
am_addr=$("$AM" id --json | jq -r '.addrs[] | select(contains("/tcp/"))' | head -1)
say "allmende listens on $am_addr"

say "allmende -> kubo"
mkdata "$work/from-allmende" 1
cid=$("$AM" add "$work/from-allmende" | tail -1)
kubo_cid=$("$KUBO" add -r -Q --only-hash "$work/from-allmende")
echo "   allmende add: $cid"
echo "   kubo add --only-hash: $kubo_cid"
[ "$cid" = "$kubo_cid" ] || fail "the same directory got different CIDs"
"$KUBO" swarm connect "$am_addr" >/dev/null
"$KUBO" get "$cid" -o "$work/kubo-got" >/dev/null
same_tree "$work/from-allmende" "$work/kubo-got"
echo "   kubo fetched it from allmende: identical tree"

say "kubo -> allmende"
mkdata "$work/from-kubo" 2
cid=$("$KUBO" add -r -Q "$work/from-kubo")
echo "   kubo add: $cid"
"$AM" connect "$kubo_addr" >/dev/null
"$AM" fetch "$cid" -o "$work/allmende-got"
same_tree "$work/from-kubo" "$work/allmende-got"
echo "   allmende fetched it from kubo: identical tree"
say "interop OK both ways"
