#!/usr/bin/env bash
# run.sh is allmende's benchmark harness (issue 7). One run prints one table:
#
#   fetch:  allmende daemon -> daemon (from a store copy over TCP, over QUIC,
#           and over the connection the dial ranker picks given both; from a
#           file imported in place), curl from nginx, Kubo two-node `ipfs get`
#   http:   curl of a CAR from allmende's mirror (trustless gateway), curl of a
#           held file (imported in place) from the mirror's hub API /resolve
#   import: allmende add, allmende import (no-copy), sha256sum, Go's
#           crypto/sha256 (bench/gosha256), cp (the cost of the copy alone),
#           ipfs add
#
# of the same random file, with wall time, MB/s, CPU seconds and peak RSS of
# every process involved, and the ratios issue 7 asks for. Everything runs
# on 127.0.0.1 under ALLMENDE_PROFILE=test; Kubo runs with its test profile
# and no bootstrap peers. It installs what it needs (nginx and curl through
# apt-get, Kubo built into ~/.cache/allmende-bench) and cleans up its data.
#
# Usage: bench/run.sh [--size MiB] [--repeat N] [--no-kubo] [--no-mirror] [--pprof FILE] [all|mirror]
#   all           every row (default)
#   mirror        only the HTTP rows and what they need: curl from nginx,
#                 allmende add and import, the mirror's CAR and /resolve
#   --size MiB    file size (default 1024)
#   --repeat N    run every fetch and add N times and keep the fastest (default 3;
#                 shared machines are noisy), clearing the fetching store
#                 between runs
#   --no-kubo     skip Kubo (no build needed)
#   --no-mirror   skip the mirror downloads (CAR and /resolve)
#   --pprof FILE  write a CPU profile of the fetching daemon during the fetch
#                 (with `mirror`: of the mirror during its first /resolve)
set -euo pipefail

SIZE_MIB=1024
REPEAT=3
KUBO=1
MIRROR=1
PPROF=""
PART=all
while (($#)); do
	case "$1" in
	--size) SIZE_MIB="$2"; shift 2 ;;
	--no-kubo) KUBO=0; shift ;;
	--no-mirror) MIRROR=0; shift ;;
	--pprof) PPROF="$2"; shift 2 ;;
	--repeat) REPEAT="$2"; shift 2 ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	all|mirror) PART="$1"; shift ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
if [[ "$PART" == mirror ]]; then
	KUBO=0
	MIRROR=1
fi

# readyTimeout is how many 0.1 s polls a daemon gets to come up.
readonly READY_POLLS=300
readonly REPO="$(cd "$(dirname "$0")/.." && pwd)"
readonly CLK_TCK="$(getconf CLK_TCK)"

log() { echo "bench: $*" >&2; }

ensure_tools() {
	local missing=()
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
	command -v curl >/dev/null || missing+=(curl)
	[[ -x /usr/bin/time ]] || missing+=(time)
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		local sudo=""
		((EUID == 0)) || sudo=sudo
		$sudo apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
	fi
}

WORK="$(mktemp -d /tmp/allmende-bench.XXXXXX)"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# cpu_ticks PID: user+system clock ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# reset_hwm PID: restart a process's peak RSS (VmHWM) count.
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
# hwm_mb PID: peak RSS in MB since the last reset.
hwm_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
ticks_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}'; }
now() { date +%s.%N; }
# settle: write back dirty pages left by earlier steps, so no timed
# transfer pays for another's writes (the VM's disk throttles writers once
# a few GB are dirty).
settle() { sync; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

ROWS=()
# row PHASE TOOL SECONDS CPU_DETAIL RSS_DETAIL
# row PHASE TOOL SECONDS CPU_DETAIL RSS_DETAIL; of repeated runs of one tool
# the fastest is kept.
row() {
	local i tool secs
	for i in "${!ROWS[@]}"; do
		IFS='|' read -r _ tool secs _ _ <<<"${ROWS[$i]}"
		[[ "$tool" == "$2" ]] || continue
		awk -v a="$3" -v b="$secs" 'BEGIN {exit !(a < b)}' && ROWS[$i]="$1|$2|$3|$4|$5"
		return 0
	done
	ROWS+=("$1|$2|$3|$4|$5")
}
rate() { awk -v s="$1" -v b="$BYTES" 'BEGIN {printf "%.0f", b / s / 1e6}'; }

# timed OUTVAR CMD...: runs CMD under /usr/bin/time; sets OUTVAR to
# "wall user+sys maxrss_mb".
timed() {
	local var="$1"; shift
	local tf="$WORK/time.$$"
	/usr/bin/time -f '%e %U %S %M' -o "$tf" "$@"
	printf -v "$var" '%s' "$(awk '{printf "%s %.2f %.0f", $1, $2 + $3, $4 / 1024}' "$tf")"
}

# --- allmende ---------------------------------------------------------------

BIN="$WORK/allmende"
start_allmende() { # NAME [ENV...]
	local home="$WORK/$1"; shift
	mkdir -p "$home"
	env ALLMENDE_PROFILE=test ALLMENDE_HOME="$home" "$@" "$BIN" daemon >"$home.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$(basename "$home")=$!"
	local i
	for ((i = 0; i < READY_POLLS; i++)); do
		[[ -s "$home/api" ]] && return 0
		sleep 0.1
	done
	log "daemon $home did not start:"; cat "$home.log" >&2; exit 1
}
am() { local home="$WORK/$1"; shift; ALLMENDE_PROFILE=test ALLMENDE_HOME="$home" "$BIN" "$@"; }
# profile_cpu NAME: writes a CPU profile of daemon NAME over PROFILE_SECONDS
# to $PPROF, from its API with the token it keeps in HOME/api.token.
profile_cpu() {
	local home="$WORK/$1"
	curl -s -H "Authorization: Bearer $(cat "$home/api.token")" -o "$PPROF" \
		"$(cat "$home/api")/debug/pprof/profile?seconds=$PROFILE_SECONDS"
}

bench_allmende() {
	local seed_env=()
	((MIRROR)) && seed_env=(ALLMENDE_MIRROR_ADDR=127.0.0.1:0 ALLMENDE_MIRROR_ALLOW=127.0.0.0/8)
	start_allmende seed "${seed_env[@]}"
	[[ "$PART" == mirror ]] || start_allmende leech
	local s0 t0 t1 s1 out rep
	for ((rep = 0; rep < REPEAT; rep++)); do
		if ((rep > 0)); then # start from an empty store again
			am seed rm "$CID" >/dev/null
			am seed gc >/dev/null
		fi
		settle
		s0=$(cpu_ticks "$PID_seed"); reset_hwm "$PID_seed"
		t0=$(now)
		CID=$(am seed add "$DATA" 2>"$WORK/add.log" | tail -n1) || { log "allmende add failed:"; cat "$WORK/add.log" >&2; exit 1; }
		t1=$(now)
		row import "allmende add" "$(elapsed "$t0" "$t1")" \
			"daemon $(ticks_s $(($(cpu_ticks "$PID_seed") - s0)))" "daemon $(hwm_mb "$PID_seed")"
	done
	log "allmende CID $CID"

	local addr
	if [[ "$PART" == all ]]; then
		addr=$(am seed id --json | grep -o '/ip4/127.0.0.1/tcp/[^"]*' | head -n1)
		am leech connect "$addr" >/dev/null
		for ((rep = 0; rep < REPEAT; rep++)); do
			fetch_allmende "$rep" seed leech "allmende fetch"
		done
		bench_transports
	fi

	if ((MIRROR)); then
		local url r
		url="$(cat "$WORK/seed/mirror")/ipfs/$CID?format=car"
		for ((rep = 0; rep < REPEAT; rep++)); do
			s0=$(cpu_ticks "$PID_seed"); reset_hwm "$PID_seed"
			timed r curl -sf -o "$WORK/mirror.car" "$url"
			read -r wall cpu rss <<<"$r"
			row http "curl <- mirror (CAR)" "$wall" \
				"seed $(ticks_s $(($(cpu_ticks "$PID_seed") - s0))) + curl $cpu" "seed $(hwm_mb "$PID_seed") curl $rss"
			rm -f "$WORK/mirror.car"
		done
	fi
}

# bench_transports: the fetch of "allmende fetch" by daemons connected to
# seed by its QUIC address (allmende connect then moves the connection to
# TCP, which seed also listens on), and over what the host's dial ranker
# picks when it knows both the seed's TCP and QUIC addresses (as after mDNS
# or a bootstrap list); and from a seed that listens on QUIC alone, so the
# bytes do ride on QUIC. The test profile listens on loopback TCP and QUIC
# with the transports, security and muxers of the default profile; it only
# keeps discovery and NAT off, so nothing leaves loopback.
bench_transports() {
	local id tcp quic rep
	id=$(am seed id --json)
	tcp=$(grep -o '/ip4/127.0.0.1/tcp/[^"]*' <<<"$id" | head -n1)
	quic=$(grep -o '/ip4/127.0.0.1/udp/[^"]*/quic-v1/p2p/[^"]*' <<<"$id" | head -n1)
	[[ -n "$quic" ]] || { log "seed has no QUIC address: $id"; exit 1; }
	start_allmende quic
	am quic connect "$quic" >/dev/null
	log "connected by the seed's QUIC address, now over $(am quic peers)"
	for ((rep = 0; rep < REPEAT; rep++)); do
		fetch_allmende "$rep" seed quic "allmende fetch, by QUIC address"
	done
	start_allmende both "ALLMENDE_BOOTSTRAP=$tcp,$quic"
	local i peers=""
	for ((i = 0; i < READY_POLLS; i++)); do
		peers=$(am both peers)
		[[ -n "$peers" ]] && break
		sleep 0.1
	done
	[[ -n "$peers" ]] || { log "daemon both did not connect to its bootstrap peer"; exit 1; }
	log "the ranked dial connected over $peers"
	for ((rep = 0; rep < REPEAT; rep++)); do
		fetch_allmende "$rep" seed both "allmende fetch, TCP+QUIC"
	done
	# A seed on QUIC alone: the rate of QUIC itself (quic-go).
	start_allmende qseed ALLMENDE_LISTEN=/ip4/127.0.0.1/udp/0/quic-v1
	am qseed add "$DATA" >/dev/null 2>&1
	quic=$(am qseed id --json | grep -o '/ip4/127.0.0.1/udp/[^"]*/quic-v1/p2p/[^"]*' | head -n1)
	start_allmende qonly
	am qonly connect "$quic" >/dev/null
	log "connected to the QUIC-only seed over $(am qonly peers)"
	for ((rep = 0; rep < REPEAT; rep++)); do
		fetch_allmende "$rep" qseed qonly "allmende fetch, QUIC only"
	done
}

# bench_resolve: curl of a held file from the mirror's hub API /resolve,
# next to curl from nginx. A daemon of its own imports the file in place
# (no-copy, the default of `allmende import`), so its leaves are references
# into the file rather than the copies `allmende add` made on seed.
bench_resolve() {
	local model="$WORK/model" s0 t0 t1 url r wall cpu rss rep prof_pid
	mkdir -p "$model"
	ln "$DATA" "$model/data.bin"
	start_allmende held ALLMENDE_MIRROR_ADDR=127.0.0.1:0 ALLMENDE_MIRROR_ALLOW=127.0.0.0/8
	settle
	s0=$(cpu_ticks "$PID_held"); reset_hwm "$PID_held"
	t0=$(now)
	am held import "$model" --name bench/model >/dev/null
	t1=$(now)
	row import "allmende import" "$(elapsed "$t0" "$t1")" \
		"daemon $(ticks_s $(($(cpu_ticks "$PID_held") - s0)))" "daemon $(hwm_mb "$PID_held")"
	url="$(cat "$WORK/held/mirror")/bench/model/resolve/main/data.bin"
	for ((rep = 0; rep < REPEAT; rep++)); do
		prof_pid=""
		if [[ -n "$PPROF" && "$PART" == mirror && "$rep" == 0 ]]; then
			profile_cpu held &
			prof_pid=$!
		fi
		s0=$(cpu_ticks "$PID_held"); reset_hwm "$PID_held"
		timed r curl -sf -o "$WORK/fetched.resolve" "$url"
		read -r wall cpu rss <<<"$r"
		row http "curl <- mirror /resolve" "$wall" \
			"mirror $(ticks_s $(($(cpu_ticks "$PID_held") - s0))) + curl $cpu" "mirror $(hwm_mb "$PID_held") curl $rss"
		[[ -n "$prof_pid" ]] && wait "$prof_pid"
		cmp -s "$DATA" "$WORK/fetched.resolve" || { log "mirror /resolve output differs"; exit 1; }
		rm -f "$WORK/fetched.resolve"
	done
	[[ "$PART" == all ]] || return 0
	# The same fetch from a seeder that imported the file in place: it
	# serves the verified file's leaves without hashing them again.
	local addr
	start_allmende leech2
	addr=$(am held id --json | grep -o '/ip4/127.0.0.1/tcp/[^"]*' | head -n1)
	am leech2 connect "$addr" >/dev/null
	for ((rep = 0; rep < REPEAT; rep++)); do
		fetch_allmende "$rep" held leech2 "allmende fetch (in place)"
	done
}

# fetch_allmende REP SEED LEECH LABEL: one fetch from daemon SEED to the
# emptied store of daemon LEECH, as row LABEL.
fetch_allmende() {
	local rep="$1" seed="$2" leech="$3" label="$4" s0 l0 t0 t1 out prof_pid=""
	local spid="PID_$seed" lpid="PID_$leech"
	am "$leech" rm "$CID" >/dev/null 2>&1 || true
	am "$leech" gc >/dev/null
	s0=$(cpu_ticks "${!spid}"); l0=$(cpu_ticks "${!lpid}")
	reset_hwm "${!spid}"; reset_hwm "${!lpid}"
	if [[ -n "$PPROF" && "$rep" == 0 && "$leech" == leech ]]; then
		profile_cpu "$leech" &
		prof_pid=$!
	fi
	out="$WORK/fetched.allmende"
	settle
	t0=$(now)
	am "$leech" fetch "$CID" -o "$out" >/dev/null
	t1=$(now)
	[[ -n "$prof_pid" ]] && wait "$prof_pid"
	row fetch "$label" "$(elapsed "$t0" "$t1")" \
		"seed $(ticks_s $(($(cpu_ticks "${!spid}") - s0))) + leech $(ticks_s $(($(cpu_ticks "${!lpid}") - l0)))" \
		"seed $(hwm_mb "${!spid}") leech $(hwm_mb "${!lpid}")"
	cmp -s "$DATA" "$out" || { log "allmende fetch output differs"; exit 1; }
	rm -f "$out"
}

# --- nginx and sha256sum ----------------------------------------------------

bench_nginx() {
	local root="$WORK/www" port
	mkdir -p "$root" "$WORK/nginx"
	ln "$DATA" "$root/data"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
	cat >"$WORK/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		worker_processes 1;
		pid $WORK/nginx/nginx.pid;
		error_log $WORK/nginx/error.log;
		events { worker_connections 64; }
		http {
		  access_log off;
		  sendfile on;
		  client_body_temp_path $WORK/nginx/body;
		  proxy_temp_path $WORK/nginx/proxy;
		  fastcgi_temp_path $WORK/nginx/fastcgi;
		  uwsgi_temp_path $WORK/nginx/uwsgi;
		  scgi_temp_path $WORK/nginx/scgi;
		  server { listen 127.0.0.1:$port; root $root; }
		}
	EOF
	local nginx_bin
	nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
	"$nginx_bin" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr" &
	local pid=$!
	PIDS+=($pid)
	local i
	for ((i = 0; i < READY_POLLS; i++)); do
		curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port/data" && break
		sleep 0.1
	done
	local s0 r wall cpu rss rep
	for ((rep = 0; rep < REPEAT; rep++)); do
		settle
		s0=$(cpu_ticks "$pid"); reset_hwm "$pid"
		timed r curl -sf -o "$WORK/fetched.curl" "http://127.0.0.1:$port/data"
		read -r wall cpu rss <<<"$r"
		row fetch "curl <- nginx" "$wall" "nginx $(ticks_s $(($(cpu_ticks "$pid") - s0))) + curl $cpu" "nginx $(hwm_mb "$pid") curl $rss"
		cmp -s "$DATA" "$WORK/fetched.curl" || { log "curl output differs"; exit 1; }
		rm -f "$WORK/fetched.curl"
	done
}

bench_sha256sum() {
	local r wall cpu rss
	timed r sha256sum "$DATA" >/dev/null
	read -r wall cpu rss <<<"$r"
	row import "sha256sum" "$wall" "$cpu" "$rss"
	timed r "$WORK/gosha256" "$DATA" >/dev/null
	read -r wall cpu rss <<<"$r"
	row import "Go crypto/sha256" "$wall" "$cpu" "$rss"
	# What copying the file costs on this disk, without hashing: the floor
	# of any import that keeps a copy (add, ipfs add).
	local rep
	for ((rep = 0; rep < REPEAT; rep++)); do
		settle
		timed r cp "$DATA" "$WORK/copy.bin"
		read -r wall cpu rss <<<"$r"
		row import "cp" "$wall" "$cpu" "$rss"
		rm -f "$WORK/copy.bin"
	done
}

# --- Kubo -------------------------------------------------------------------

start_kubo() { # NAME
	local repo="$WORK/$1"
	IPFS_PATH="$repo" "$IPFS" init --profile=test,unixfs-v1-2025 >/dev/null
	IPFS_PATH="$repo" "$IPFS" config --json Bootstrap '[]'
	IPFS_PATH="$repo" "$IPFS" config Routing.Type none
	IPFS_PATH="$repo" "$IPFS" daemon >"$repo.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$1=$!"
	local i
	for ((i = 0; i < READY_POLLS; i++)); do
		grep -q "Daemon is ready" "$repo.log" && return 0
		sleep 0.1
	done
	log "kubo $1 did not start:"; cat "$repo.log" >&2; exit 1
}
ipfs_() { local repo="$WORK/$1"; shift; IPFS_PATH="$repo" "$IPFS" "$@"; }

bench_kubo() {
	start_kubo kseed
	start_kubo kleech
	local s0 l0 t0 t1 kcid rep
	for ((rep = 0; rep < REPEAT; rep++)); do
		if ((rep > 0)); then # start from an empty repo again
			ipfs_ kseed pin rm "$kcid" >/dev/null
			ipfs_ kseed repo gc >/dev/null
		fi
		settle
		s0=$(cpu_ticks "$PID_kseed"); reset_hwm "$PID_kseed"
		t0=$(now)
		kcid=$(ipfs_ kseed add -Q "$DATA")
		t1=$(now)
		row import "ipfs add" "$(elapsed "$t0" "$t1")" \
			"daemon $(ticks_s $(($(cpu_ticks "$PID_kseed") - s0)))" "daemon $(hwm_mb "$PID_kseed")"
	done
	[[ "$kcid" == "$CID" ]] || log "WARNING: Kubo CID $kcid differs from allmende's $CID"
	ipfs_ kleech swarm connect "$(ipfs_ kseed id -f '<addrs>' | grep /tcp/ | head -n1)/p2p/$(ipfs_ kseed id -f '<id>')" >/dev/null
	for ((rep = 0; rep < REPEAT; rep++)); do
		fetch_kubo "$kcid"
	done
}

# fetch_kubo CID: one `ipfs get` from kseed to an emptied kleech repo.
fetch_kubo() {
	local kcid="$1" s0 l0 t0 t1
	ipfs_ kleech pin rm "$kcid" >/dev/null 2>&1 || true
	ipfs_ kleech repo gc >/dev/null 2>&1 || true
	s0=$(cpu_ticks "$PID_kseed"); l0=$(cpu_ticks "$PID_kleech")
	reset_hwm "$PID_kseed"; reset_hwm "$PID_kleech"
	settle
	t0=$(now)
	ipfs_ kleech get -o "$WORK/fetched.kubo" "$kcid" >/dev/null 2>&1
	t1=$(now)
	row fetch "ipfs get (Kubo)" "$(elapsed "$t0" "$t1")" \
		"seed $(ticks_s $(($(cpu_ticks "$PID_kseed") - s0))) + leech $(ticks_s $(($(cpu_ticks "$PID_kleech") - l0)))" \
		"seed $(hwm_mb "$PID_kseed") leech $(hwm_mb "$PID_kleech")"
	cmp -s "$DATA" "$WORK/fetched.kubo" || { log "kubo output differs"; exit 1; }
	rm -f "$WORK/fetched.kubo"
}

# --- table --------------------------------------------------------------------

seconds_of() { # TOOL
	local r
	for r in "${ROWS[@]}"; do
		IFS='|' read -r _ tool secs _ _ <<<"$r"
		[[ "$tool" == "$1" ]] && { echo "$secs"; return; }
	done
	return 0 # a row that was not run (e.g. with `mirror`) has no ratio
}
ratio() { # NAME NUM_TOOL DEN_TOOL: speed of NUM relative to DEN
	local a b
	a=$(seconds_of "$2"); b=$(seconds_of "$3")
	[[ -n "$a" && -n "$b" ]] || return 0
	awk -v n="$1" -v a="$a" -v b="$b" 'BEGIN {printf "  %-34s %6.2fx\n", n, b / a}'
}

seed_cpu_of() { # TOOL: the seeder's CPU seconds per GiB served in TOOL's row
	local r tool cpu
	for r in "${ROWS[@]}"; do
		IFS='|' read -r _ tool _ cpu _ <<<"$r"
		[[ "$tool" == "$1" ]] || continue
		awk -v c="$cpu" -v b="$BYTES" 'BEGIN {split(c, f, " "); printf "%.2f", f[2] / (b / 2^30)}'
		return
	done
}
seed_cpu() { # NAME TOOL: seeder CPU per GiB, and its ratio to Kubo's (<1 means allmende uses less)
	local a k
	a=$(seed_cpu_of "$2"); k=$(seed_cpu_of "ipfs get (Kubo)")
	[[ -n "$a" ]] || return 0
	if [[ -n "$k" ]]; then
		awk -v n="$1" -v a="$a" -v k="$k" 'BEGIN {printf "  %-34s %6.2f CPU-s/GiB, %.2fx Kubo'"'"'s %.2f\n", n, a, a / k, k}'
	else
		printf '  %-34s %6.2f CPU-s/GiB\n' "$1" "$a"
	fi
}

print_table() {
	echo
	echo "allmende benchmark: $SIZE_MIB MiB random file, fetches and adds best of $REPEAT, loopback, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo +changes)"
	printf '%-7s %-32s %8s %8s  %-32s %s\n' phase tool seconds MB/s "CPU seconds" "peak RSS MB"
	local r want phase tool secs cpu rss
	for want in fetch http import; do
		for r in "${ROWS[@]}"; do
			IFS='|' read -r phase tool secs cpu rss <<<"$r"
			[[ "$phase" == "$want" ]] || continue
			printf '%-7s %-32s %8.2f %8s  %-32s %s\n' "$phase" "$tool" "$secs" "$(rate "$secs")" "$cpu" "$rss"
		done
	done
	echo "ratios (speed, >1 means allmende is faster):"
	ratio "fetch: allmende / curl<-nginx" "allmende fetch" "curl <- nginx"
	ratio "fetch: allmende / Kubo" "allmende fetch" "ipfs get (Kubo)"
	ratio "fetch: by QUIC address / TCP" "allmende fetch, by QUIC address" "allmende fetch"
	ratio "fetch: TCP+QUIC (ranked) / TCP" "allmende fetch, TCP+QUIC" "allmende fetch"
	ratio "fetch: QUIC only / TCP" "allmende fetch, QUIC only" "allmende fetch"
	ratio "fetch: in-place seeder / Kubo" "allmende fetch (in place)" "ipfs get (Kubo)"
	ratio "import: allmende add / sha256sum" "allmende add" "sha256sum"
	ratio "import: allmende add / ipfs add" "allmende add" "ipfs add"
	ratio "import: allmende add / cp" "allmende add" "cp"
	ratio "import: in place / Go sha256" "allmende import" "Go crypto/sha256"
	ratio "http: mirror CAR / nginx" "curl <- mirror (CAR)" "curl <- nginx"
	ratio "http: mirror /resolve / nginx" "curl <- mirror /resolve" "curl <- nginx"
	echo "seeder CPU per GiB served (<1x means allmende spends less than Kubo):"
	seed_cpu "seeder: from its store" "allmende fetch"
	seed_cpu "seeder: file imported in place" "allmende fetch (in place)"
}

main() {
	ensure_tools
	if ((KUBO)); then
		IPFS=$("$REPO/bench/build-kubo.sh") || { log "Kubo build failed; continuing without it (--no-kubo)"; KUBO=0; }
	fi
	log "building allmende"
	(cd "$REPO" && go build -o "$BIN" ./cmd/allmende && go build -o "$WORK/gosha256" ./bench/gosha256)
	BYTES=$((SIZE_MIB << 20))
	PROFILE_SECONDS=$((SIZE_MIB / 100 + 3))
	DATA="$WORK/data.bin"
	log "writing $SIZE_MIB MiB of random data to $DATA"
	head -c "$BYTES" /dev/urandom >"$DATA"
	cat "$DATA" >/dev/null # warm the page cache for everyone alike

	[[ "$PART" == mirror ]] || bench_sha256sum
	bench_nginx
	bench_allmende
	((MIRROR)) && bench_resolve
	((KUBO)) && bench_kubo
	print_table
}

main
