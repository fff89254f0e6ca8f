#!/usr/bin/env bash
# Runs every FuzzXxx target in the module for a short time each (default
# 10s; e.g. `scripts/fuzz.sh 1m` for longer). The seed corpora also run in
# the ordinary `go test ./...`; this explores beyond them. A failing input
# is saved under the package's testdata/fuzz/ and makes the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"

for pkg in $(go list ./...); do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for target in $targets; do
		echo "== $pkg $target ($fuzztime)"
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime"
	done
done
