#!/usr/bin/env bash
# car.sh measures CAR export and import of one random file, through the
# allmende CLI (`allmende export`, `allmende import FILE.car`, each an
# embedded node on its own home, profile test: no network), against `cp`
# of the same file, with wall time, MB/s (1 MB = 1e6 bytes) and peak RSS of
# each (/usr/bin/time -v), and what the import costs in disk. Nothing is
# evicted from the page cache between steps (that needs root over the
# whole machine), so the reads are warm where the file fits in memory.
#
# Steps: cp FILE, and cp followed by `sync FILE`; `allmende add FILE` (a
# whole copy in the store, the source of the export); `allmende export CID
# -o FILE.car` (written, synced and renamed before it returns); `allmende
# import FILE.car` into an empty home as a node does by default
# (store.sync false: the writes may still be in the page cache when it
# returns, like cp's), and with store.sync true (every write durable, like
# cp + sync); the store's disk use against the file's size. With
# --store-level, the same export and import through bench/cartool (package
# store/car with no node) as well.
#
# Usage: bench/car.sh [--size MiB] [--dir DIR] [--store-level]
#   --size MiB  file size (default 4096)
#   --dir DIR   where the file, CAR and homes go (default: a new directory
#               under $TMPDIR); it needs about 4x the file's size free
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=4096
BASE="${TMPDIR:-/tmp}"
STORE_LEVEL=""
while (($#)); do
	case "$1" in
	--size) SIZE_MIB="$2"; shift 2 ;;
	--dir) BASE="$2"; shift 2 ;;
	--store-level) STORE_LEVEL=1; shift ;;
	*) echo "usage: bench/car.sh [--size MiB] [--dir DIR] [--store-level]" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d "$BASE/allmende-carbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
bytes=$((SIZE_MIB * 1048576))
need=$((bytes * 4 / 1024))
free=$(df -k --output=avail "$work" | tail -1)
if ((free < need)); then
	echo "bench/car.sh: $work has ${free} KiB free, needs ${need} KiB" >&2
	exit 1
fi

go build -o "$work/cartool" ./bench/cartool
go build -o "$work/allmende" ./cmd/allmende
export ALLMENDE_PROFILE=test
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

echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %11s %14s %13s\n' "step ($SIZE_MIB MiB file)" wall rate "peak RSS"
measure "cp" cp "$work/model.bin" "$work/copy.bin"
rm -f "$work/copy.bin"
sync -f "$work"
measure "cp + sync" sh -c "cp '$work/model.bin' '$work/copy.bin' && sync '$work/copy.bin'"
rm -f "$work/copy.bin"
# am HOME [KEY=VALUE...]: the allmende command line on the home $work/HOME,
# with those variables set.
am() { echo env ALLMENDE_HOME="$work/$1" "${@:2}" "$work/allmende"; }
measure "allmende add" $(am src) add "$work/model.bin"
root=$(tail -n1 "$work/out.txt")
sync -f "$work"
measure "allmende export" $(am src) export "$root" -o "$work/model.car" --json
cat "$work/out.txt" >>"$work/log.txt"
if [[ -n "$STORE_LEVEL" ]]; then
	measure "cartool export (+fsync)" "$work/cartool" export "$work/src/store" "$root" "$work/model-st.car"
	cmp "$work/model.car" "$work/model-st.car" || { echo "cartool and allmende wrote different CARs" >&2; exit 1; }
	rm -f "$work/model-st.car"
fi
rm -rf "$work/src"
sync -f "$work"
measure "allmende import" $(am dst) import "$work/model.car"
grep -qx "$root" "$work/out.txt" || { echo "the import did not pin $root" >&2; exit 1; }
store_bytes=$(du -sb "$work/dst/store" | cut -f1)
copies=$(du -sb "$work/dst/store/files" 2>/dev/null | cut -f1 || echo 0)
blocks=$(du -sb "$work/dst/store/blocks" | cut -f1)
rm -rf "$work/dst"
sync -f "$work"
measure "allmende import, sync" $(am dst-sync ALLMENDE_STORE_SYNC=true) import "$work/model.car"
grep -qx "$root" "$work/out.txt" || { echo "the import did not pin $root" >&2; exit 1; }
rm -rf "$work/dst-sync"
if [[ -n "$STORE_LEVEL" ]]; then
	sync -f "$work"
	measure "cartool import" "$work/cartool" import "$work/dst-st" "$work/model.car"
	rm -rf "$work/dst-st"
fi

car=$(stat -c %s "$work/model.car")
echo
echo "file $bytes bytes, CAR $car bytes (+$((car - bytes)) of CIDs, lengths and inner nodes)"
echo "import: store $store_bytes bytes on disk (du -sb): whole-file copies $copies, block store $blocks, the rest metadata"
echo "        = $(awk -v s="$store_bytes" -v b="$bytes" 'BEGIN { printf "%.4f", s / b }') x the file; the CAR read from the stick needs no room"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "the commands' accounts:"
cat "$work/log.txt"
