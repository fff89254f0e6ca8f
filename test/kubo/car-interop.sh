#!/usr/bin/env bash
# car-interop.sh: CAR files between allmende's store/car and Kubo v0.43.1,
# both ways, at the store level (bench/cartool on a temporary store; the
# node's `allmende export`/`import` commands use the same package).
#
#   allmende -> Kubo: a tree added to a store, exported; `ipfs dag import`
#     into a repo initialised with --profile=unixfs-v1-2025; `ipfs get` and
#     `ipfs cat` give the same bytes; Kubo's own `ipfs add` gives the same
#     root and its `ipfs dag export` the same CAR, byte for byte. A model
#     imported in place (leaves read from its files) and the CAR of a named
#     model (three roots: content, manifest, signed record) go in too.
#   Kubo -> allmende: `ipfs add` + `ipfs dag export`, with the 2025 profile
#     and with Kubo's legacy defaults (CIDv0, 256 KiB chunks, DAG-PB
#     leaves), imported; the tree written from the store has the same bytes.
#   The CLI, both ways: `allmende add` + `allmende export` -> `ipfs dag
#     import` pins the same CID, `ipfs get` gives the same tree and `ipfs dag
#     export` the same CAR; `ipfs dag export` -> `allmende import FILE.car`
#     pins the same CID and `allmende fetch` writes the same tree offline; a
#     named model's CAR from `allmende export org/model` pins three roots in
#     Kubo.
#
# Everything is offline (Kubo runs no daemon; nothing touches the network).
# Kubo is built into ~/.cache/allmende-bench by bench/build-kubo.sh (minutes
# the first time); set IPFS=/path/to/ipfs to use another binary.
#
# Usage: test/kubo/car-interop.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

IPFS="${IPFS:-$(bench/build-kubo.sh)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export IPFS_PATH="$work/kubo"

go build -o "$work/cartool" ./bench/cartool
tool() { "$work/cartool" "$@" 2>>"$work/cartool.log"; }
ipfs() { "$IPFS" "$@"; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; exit 1; }

"$IPFS" version
ipfs init --empty-repo --profile=unixfs-v1-2025 >/dev/null

# tree DIR SEED: random files of the sizes that matter.
tree() {
	mkdir -p "$1/sub/deeper"
	head -c 0 /dev/zero >"$1/empty"
	printf 'hello\n' >"$1/hello.txt"
	head -c 1048576 /dev/urandom >"$1/one-chunk.bin"
	head -c 3670017 /dev/urandom >"$1/sub/weights.bin"
	head -c 300000 /dev/urandom >"$1/sub/deeper/small.bin"
}

echo "== allmende -> Kubo"
tree "$work/a"
a=$(tool add "$work/s1" "$work/a")
tool export "$work/s1" "$a" "$work/a.car"
ipfs dag import "$work/a.car" | tee "$work/import.out"
grep -q "Pinned root.*$a.*success" "$work/import.out" || fail "Kubo did not pin $a"
ipfs get -o "$work/a-kubo" "$a" >/dev/null
diff -r "$work/a" "$work/a-kubo" && pass "ipfs get of our CAR's root gives the same tree"
cmp "$work/a/sub/weights.bin" <(ipfs cat "$a/sub/weights.bin") && pass "ipfs cat of a 3.5 MiB file in it gives the same bytes"
k=$(ipfs add -r -Q "$work/a")
[[ "$k" == "$a" ]] && pass "ipfs add of the same tree gives the same root ($a)" || fail "Kubo's root $k, ours $a"
ipfs dag export "$a" >"$work/a-kubo.car" 2>/dev/null
cmp "$work/a.car" "$work/a-kubo.car" && pass "ipfs dag export writes our CAR byte for byte ($(stat -c %s "$work/a.car") bytes)"

tree "$work/inplace"
p=$(tool import-in-place "$work/s1" "$work/inplace")
tool export "$work/s1" "$p" "$work/inplace.car"
ipfs dag import "$work/inplace.car" >/dev/null
ipfs get -o "$work/inplace-kubo" "$p" >/dev/null
diff -r "$work/inplace" "$work/inplace-kubo" && pass "a model imported in place (no-copy leaves) exports and reads back in Kubo"

mkdir -p "$work/model"
printf '{"hidden": 64}' >"$work/model/config.json"
head -c 2500000 /dev/urandom >"$work/model/model.bin"
mapfile -t roots < <(tool export-model "$work/s1" "$work/model" "$work/model.car")
ipfs dag import "$work/model.car" | tee "$work/model-import.out"
[[ $(grep -c "Pinned root.*success" "$work/model-import.out") == 3 ]] || fail "Kubo did not pin the model CAR's three roots"
ipfs cat "${roots[2]}" | grep -q '"name":"acme/tiny"' && pass "the record (root 3) reads back from Kubo: $(ipfs cat "${roots[2]}" | head -c 80)..."
ipfs cat "${roots[1]}" | grep -q "\"root\":\"${roots[0]}\"" && pass "the manifest (root 2) names the content (root 1)"
cmp "$work/model/model.bin" <(ipfs cat "${roots[0]}/model.bin") && pass "the model's content reads back from Kubo"

echo "== Kubo -> allmende"
tree "$work/b"
b=$(ipfs add -r -Q "$work/b")
ipfs dag export "$b" >"$work/b.car" 2>/dev/null
tool import "$work/s2" "$work/b.car" | grep -q "$b" || fail "our import did not complete $b"
tool get "$work/s2" "$b" "$work/b-ours"
diff -r "$work/b" "$work/b-ours" && pass "ipfs add + dag export (unixfs-v1-2025) imports and writes out the same tree"

tree "$work/c"
c=$(ipfs add -r -Q --cid-version=0 --raw-leaves=false --chunker=size-262144 "$work/c")
ipfs dag export "$c" >"$work/c.car" 2>/dev/null
tool import "$work/s2" "$work/c.car" | grep -q "$c" || fail "our import did not complete $c"
tool get "$work/s2" "$c" "$work/c-ours"
diff -r "$work/c" "$work/c-ours" && pass "a legacy Kubo DAG ($c: CIDv0, 256 KiB chunks, DAG-PB leaves) imports and writes out the same tree"

echo "== the CLI: allmende export -> ipfs dag import, ipfs dag export -> allmende import"
# Real commands on a real home (embedded node, profile test: loopback only,
# no peers), as a user with a stick would run them.
go build -o "$work/allmende" ./cmd/allmende
export ALLMENDE_PROFILE=test ALLMENDE_HOME="$work/home"
am() { "$work/allmende" "$@"; }
tree "$work/d"
d=$(am add "$work/d" 2>/dev/null | tail -n1)
am export "$d" -o "$work/d.car"
kd=$(ipfs dag import "$work/d.car" | sed -n 's/^Pinned root[[:space:]]*\([^[:space:]]*\).*success.*/\1/p')
[[ "$kd" == "$d" ]] && pass "allmende export $d -> ipfs dag import pins the same CID" || fail "Kubo pinned '$kd', we exported $d"
ipfs get -o "$work/d-kubo" "$d" >/dev/null
diff -r "$work/d" "$work/d-kubo" && pass "ipfs get of it gives the same tree"
ipfs dag export "$d" >"$work/d-kubo.car" 2>/dev/null
cmp "$work/d.car" "$work/d-kubo.car" && pass "ipfs dag export of it is our CAR byte for byte"

tree "$work/e"
e=$(ipfs add -r -Q "$work/e")
ipfs dag export "$e" >"$work/e.car" 2>/dev/null
ae=$(am import "$work/e.car" 2>/dev/null | tail -n1)
[[ "$ae" == "$e" ]] && pass "ipfs dag export $e -> allmende import pins the same CID" || fail "we pinned '$ae', Kubo exported $e"
am fetch "$e" -o "$work/e-ours" --fetch-timeout 10s >/dev/null
diff -r "$work/e" "$work/e-ours" && pass "allmende fetch of it (offline, from the imported blocks) gives the same tree"

mkdir -p "$work/named"
printf '{"hidden": 64}' >"$work/named/config.json"
head -c 2500000 /dev/urandom >"$work/named/model.bin"
am import "$work/named" --name acme/named >/dev/null 2>&1
am publish acme/named >/dev/null
am export acme/named -o "$work/named.car" --json >"$work/named.json"
ipfs dag import "$work/named.car" | tee "$work/named-import.out"
[[ $(grep -c "Pinned root.*success" "$work/named-import.out") == 3 ]] && pass "ipfs dag import pins the named model's three roots (files, manifest, record)" || fail "Kubo did not pin the three roots"

echo "== cartool's account"
cat "$work/cartool.log"
echo "ALL PASS"
