#!/usr/bin/env bash
# car.sh measures CAR export and import (package store/car, through
# bench/cartool on temporary stores) of one random file against `cp` of the
# same file, with wall time, MB/s (1 MB = 1e6 bytes) and peak RSS of each
# (/usr/bin/time -v), and what the import costs in disk. Nothing is evicted
# from the page cache between steps (that needs root over the whole
# machine), so the reads are warm where the file fits in memory.
#
# Steps: cp FILE, and cp followed by `sync FILE`; allmende add FILE (a whole
# copy in the store, the source of the export); export the CAR (synced
# before the clock stops); import the CAR into an empty store as a node does
# by default (store.sync false: the writes may still be in the page cache
# when it returns, like cp's), and with store.sync true (every write durable,
# like cp + sync); the store's disk use against the file's size.
#
# Usage: bench/car.sh [--size MiB] [--dir DIR]
#   --size MiB  file size (default 4096)
#   --dir DIR   where the file, CAR and stores go (default: a new directory
#               under $TMPDIR); it needs about 5x the file's size free
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=4096
BASE="${TMPDIR:-/tmp}"
while (($#)); do
	case "$1" in
	--size) SIZE_MIB="$2"; shift 2 ;;
	--dir) BASE="$2"; shift 2 ;;
	*) echo "usage: bench/car.sh [--size MiB] [--dir DIR]" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d "$BASE/allmende-carbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
bytes=$((SIZE_MIB * 1048576))
need=$((bytes * 5 / 1024))
free=$(df -k --output=avail "$work" | tail -1)
if ((free < need)); then
	echo "bench/car.sh: $work has ${free} KiB free, needs ${need} KiB" >&2
	exit 1
fi

go build -o "$work/cartool" ./bench/cartool
echo "writing a random file of $SIZE_MIB MiB" >&2
head -c "$bytes" /dev/urandom >"$work/model.bin"
sync "$work/model.bin"

# measure NAME CMD...: runs CMD under /usr/bin/time -v, prints a table row.
measure() {
	local name="$1"
	shift
	/usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>>"$work/log.txt"
	local wall rss secs
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt")
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
	secs=$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$wall")
	printf '%-24s %9.2f s %9.0f MB/s %9d MiB\n' "$name" "$secs" \
		"$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print (s > 0 ? b / s / 1e6 : 0) }')" $((rss / 1024))
}

printf '%-24s %11s %14s %13s\n' "step ($SIZE_MIB MiB file)" wall rate "peak RSS"
measure "cp" cp "$work/model.bin" "$work/copy.bin"
rm -f "$work/copy.bin"
sync -f "$work"
measure "cp + sync" sh -c "cp '$work/model.bin' '$work/copy.bin' && sync '$work/copy.bin'"
rm -f "$work/copy.bin"
measure "add (store copy)" "$work/cartool" add "$work/src" "$work/model.bin"
root=$(cat "$work/out.txt")
sync -f "$work"
measure "export CAR (+ fsync)" "$work/cartool" export "$work/src" "$root" "$work/model.car"
measure "import CAR" "$work/cartool" import "$work/dst" "$work/model.car"
grep -q "$root" "$work/out.txt" || { echo "the import did not complete $root" >&2; exit 1; }
sync -f "$work"
measure "import CAR, store.sync" "$work/cartool" -sync import "$work/dst-sync" "$work/model.car"
grep -q "$root" "$work/out.txt" || { echo "the import did not complete $root" >&2; exit 1; }

car=$(stat -c %s "$work/model.car")
store=$(du -sb "$work/dst" | cut -f1)
copies=$(du -sb "$work/dst/files" 2>/dev/null | cut -f1 || echo 0)
blocks=$(du -sb "$work/dst/blocks" | cut -f1)
echo
echo "file $bytes bytes, CAR $car bytes (+$((car - bytes)) of CIDs, lengths and inner nodes)"
echo "import: store $store bytes on disk (du -sb): whole-file copies $copies, block store $blocks, the rest metadata"
echo "        = $(awk -v s="$store" -v b="$bytes" 'BEGIN { printf "%.4f", s / b }') x the file; the CAR read from the stick needs no room"
echo "cartool's account (JSON per step):"
cat "$work/log.txt"
