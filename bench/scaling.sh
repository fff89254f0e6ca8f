#!/usr/bin/env bash
# scaling.sh measures how allmende scales in the namespace test bed (issue 7,
# item 4) and prints one table from one run:
#
#   seeders:   fetch rate from 1, 2 and 4 seeders, each limited by tc to R,
#              as a multiple of R (TestSwarming);
#   classroom: time for 8 clients to get one model from one mirror limited
#              to R while they also serve each other, against the same 8
#              over plain HTTP from that mirror (TestClassroom).
#
# Rates are ratios to R because the machine is shared and noisy. Both tests
# build their own bridge and namespaces on 10.77.0.0/24 (root and iproute2
# needed; traffic never leaves them) and run every daemon under profile
# test. The figures come from the tests' logs, which stay in the log
# directory. Exit status: 0 if both tests passed, 1 if one failed or was
# skipped, 2 on bad usage.
#
# Usage: bench/scaling.sh [--slow] [--logs DIR]
#   --slow      classroom with the 512 MiB model over a 32 MiB/s mirror link
#               (ALLMENDE_SLOW_TESTS=1) instead of 48 MiB over 8 MiB/s
#   --logs DIR  keep the test logs in DIR (default: a new temporary directory)
set -euo pipefail

SLOW=""
LOGS=""
while (($#)); do
	case "$1" in
	--slow) SLOW=1; shift ;;
	--logs) LOGS="$2"; shift 2 ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

readonly REPO="$(cd "$(dirname "$0")/.." && pwd)"
# TEST_TIMEOUT bounds each go test run.
readonly TEST_TIMEOUT=20m

log() { echo "scaling: $*" >&2; }

# run_test NAME LOGFILE ENV... runs one e2e test verbosely into LOGFILE and
# reports whether it passed.
run_test() {
	local name="$1" out="$2"
	shift 2
	log "running $name (log: $out)"
	(cd "$REPO" && env "$@" go test -count=1 -timeout "$TEST_TIMEOUT" -run "^${name}\$" -v ./test/e2e/) >"$out" 2>&1 || true
	if grep -q "^--- PASS: $name " "$out"; then
		return 0
	fi
	grep -q "^--- SKIP: $name " "$out" && log "$name skipped: $(grep -m1 -A1 "^--- SKIP: $name" "$out" | tail -1 | sed 's/^ *//')"
	grep -q "^--- FAIL: $name " "$out" && log "$name failed; see $out"
	return 1
}

# swarm_rows prints one table row per "scaling:" line of TestSwarming.
swarm_rows() {
	sed -n 's/.*scaling: \([0-9]*\) seeders at R = \([0-9]*\) MiB\/s: .* = \([0-9.]*\) MiB\/s = \([0-9.]*\) x R (\([0-9.]*\) x R per seeder).*/\1 \2 \3 \4 \5/p' "$1" |
		while read -r n r rate ratio per; do
			printf '| %-54s | %-44s |\n' "fetch from $n seeder(s), each at R = $r MiB/s" \
				"$rate MiB/s = $ratio x R ($per x R per seeder)"
		done
}

# room_rows prints the classroom rows from TestClassroom's log.
room_rows() {
	local head one all http
	head="$(sed -n 's/.*classroom, \([0-9]*\) MiB model, mirror uplink R = \([0-9]*\) MiB\/s:.*/\1 MiB model, mirror at R = \2 MiB\/s/p' "$1")"
	one="$(sed -n 's/.*1 client alone over allmende: *\([0-9.]*\) s.*/\1 s/p' "$1")"
	all="$(sed -n 's/.*8 clients over allmende: *\([0-9.]*\) s = \([0-9.]*\) x one client.*/\1 s = \2 x one client/p' "$1")"
	http="$(sed -n 's/.*8 clients over plain HTTP: *\([0-9.]*\) s = \([0-9.]*\) x one client; allmende is \([0-9.]*\) x faster.*/\1 s = \2 x one client|\3 x/p' "$1")"
	[[ -n "$head" ]] || return 0
	printf '| %-54s | %-44s |\n' \
		"classroom ($head)" "" \
		"  1 client alone, allmende" "$one" \
		"  8 clients, allmende (they serve each other)" "$all" \
		"  8 clients, plain HTTP from the mirror" "${http%%|*}" \
		"  allmende against HTTP, 8 clients" "${http##*|} faster"
}

main() {
	if ((EUID != 0)); then
		echo "scaling.sh needs root to build network namespaces" >&2
		exit 1
	fi
	[[ -n "$LOGS" ]] || LOGS="$(mktemp -d -t allmende-scaling-XXXXXX)"
	mkdir -p "$LOGS"
	local swarm="$LOGS/swarming.log" room="$LOGS/classroom.log" status=0
	run_test TestSwarming "$swarm" ALLMENDE_SLOW_TESTS=1 || status=1
	local roomEnv=(ALLMENDE_ROOM_TEST=1)
	[[ -z "$SLOW" ]] || roomEnv+=(ALLMENDE_SLOW_TESTS=1)
	run_test TestClassroom "$room" "${roomEnv[@]}" || status=1

	printf '| %-54s | %-44s |\n' "measurement" "result"
	printf '|%s|%s|\n' "$(printf -- '-%.0s' {1..56})" "$(printf -- '-%.0s' {1..46})"
	swarm_rows "$swarm"
	room_rows "$room"
	exit "$status"
}

main
