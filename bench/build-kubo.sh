#!/usr/bin/env bash
# build-kubo.sh builds Kubo into the benchmark cache (outside the repo) and
# prints the path of the ipfs binary. Kubo v0.43.1 cannot be `go install`ed
# here: its go.mod replaces go-libp2p with a fork the module proxy does not
# serve, so we download the module, drop that replace and pin the upstream
# go-libp2p release it was built against.
set -euo pipefail

KUBO_VERSION="${KUBO_VERSION:-v0.43.1}"
LIBP2P_VERSION="${LIBP2P_VERSION:-v0.51.0}"
CACHE="${ALLMENDE_BENCH_CACHE:-$HOME/.cache/allmende-bench}"
BIN="$CACHE/kubo-$KUBO_VERSION/ipfs"

if [[ -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi
mkdir -p "$CACHE"
dir=$(go mod download -json "github.com/ipfs/kubo@$KUBO_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
src="$CACHE/kubo-$KUBO_VERSION-src"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
cd "$src"
sed -i '/^replace github.com\/libp2p\/go-libp2p /d; /^\s*github.com\/libp2p\/go-libp2p => /d' go.mod
GOFLAGS=-mod=mod go get "github.com/libp2p/go-libp2p@$LIBP2P_VERSION" >&2
GOFLAGS=-mod=mod go build -o "$BIN.tmp" ./cmd/ipfs >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
