#!/usr/bin/env bash
# testbed.sh: a LAN on this machine for trying allmende by hand. It builds a
# Linux bridge and N network namespaces attached by veth pairs, addressed in
# the private test subnet 10.77.0.0/24 (host i is 10.77.0.(10+i)); the root
# namespace gets no address on the bridge, so traffic stays among the
# namespaces. Links can be shaped with tc (tbf for rate; netem for delay and
# loss, if the kernel has it). Needs root and iproute2.
#
#   scripts/testbed.sh up N [RATE [DELAY [LOSS]]]  e.g. up 4 8mbit 20ms 1%
#   scripts/testbed.sh exec I CMD...   run CMD in namespace I, e.g.
#       scripts/testbed.sh exec 0 env ALLMENDE_HOME=/tmp/n0 \
#           ALLMENDE_LISTEN=/ip4/10.77.0.10/tcp/4001 ALLMENDE_PROFILE=test \
#           ALLMENDE_MDNS_ENABLED=true allmende daemon
#   scripts/testbed.sh status
#   scripts/testbed.sh down            kill what runs inside, remove it all
#
# A failure during `up` tears down what was built. The Go tests use the same
# layout through package test/netns (with their own random prefix).
set -euo pipefail

PREFIX=${TESTBED_PREFIX:-amtb}
BRIDGE=${PREFIX}br
SUBNET=10.77.0
FIRST_HOST=10
MAX_HOSTS=200

die() { echo "testbed: $*" >&2; exit 2; }
ns() { echo "${PREFIX}-$1"; }

namespaces() { ip netns list | awk '{print $1}' | grep "^${PREFIX}-" || true; }

down() {
	local n
	for n in $(namespaces); do
		for pid in $(ip netns pids "$n"); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del "$n"
	done
	for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${PREFIX}v" || true); do
		ip link del "$l" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
}

shape() { # shape NS RATE DELAY LOSS
	local n=$1 rate=$2 delay=$3 loss=$4 parent=root
	ip netns exec "$n" tc qdisc del dev eth0 root 2>/dev/null || true
	if [ -n "$rate" ] && [ "$rate" != - ]; then
		ip netns exec "$n" tc qdisc add dev eth0 root handle 1: tbf rate "$rate" burst 256kb latency 100ms
		parent="parent 1:1"
	fi
	local args=()
	[ -n "$delay" ] && [ "$delay" != - ] && args+=(delay "$delay")
	[ -n "$loss" ] && [ "$loss" != - ] && args+=(loss "$loss")
	if [ ${#args[@]} -gt 0 ]; then
		# shellcheck disable=SC2086
		ip netns exec "$n" tc qdisc add dev eth0 $parent handle 10: netem "${args[@]}" ||
			die "netem failed: this kernel may lack sch_netem (rate shaping with tbf still works)"
	fi
}

up() {
	local count=${1:-} rate=${2:-} delay=${3:-} loss=${4:-}
	[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le $MAX_HOSTS ] || die "up N: N must be 1..$MAX_HOSTS"
	[ -z "$(namespaces)" ] || die "a test bed with prefix $PREFIX exists; run: $0 down"
	up_done=0
	trap 'if [ "$up_done" != 1 ]; then echo "testbed: up failed, tearing down" >&2; down; fi' EXIT
	ip link add "$BRIDGE" type bridge
	echo 1 > "/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6" || true
	ip link set "$BRIDGE" up
	local i n v
	for ((i = 0; i < count; i++)); do
		n=$(ns "$i") v=${PREFIX}v$i
		ip netns add "$n"
		ip link add "$v" type veth peer name "${v}p"
		echo 1 > "/proc/sys/net/ipv6/conf/$v/disable_ipv6" || true
		ip link set "$v" master "$BRIDGE"
		ip link set "$v" up
		ip link set "${v}p" netns "$n"
		ip netns exec "$n" ip link set "${v}p" name eth0
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$n" ip addr add "$SUBNET.$((FIRST_HOST + i))/24" dev eth0
		ip netns exec "$n" ip link set eth0 up
		ip netns exec "$n" ip link set lo up
		if [ -n "$rate$delay$loss" ]; then shape "$n" "$rate" "$delay" "$loss"; fi
		echo "$n $SUBNET.$((FIRST_HOST + i))"
	done
	up_done=1
}

status() {
	local n
	for n in $(namespaces); do
		echo "== $n: $(ip netns exec "$n" ip -4 -o addr show dev eth0 | awk '{print $4}')"
		ip netns exec "$n" tc qdisc show dev eth0
		echo "   pids: $(ip netns pids "$n" | tr '\n' ' ')"
	done
}

[ "$(id -u)" -eq 0 ] || die "needs root (ip netns, tc)"
command -v ip >/dev/null || die "needs iproute2 (ip, tc)"
cmd=${1:-}; shift || true
case "$cmd" in
up) up "$@" ;;
down) down ;;
status) status ;;
exec)
	[ $# -ge 2 ] || die "exec I CMD..."
	i=$1; shift
	exec ip netns exec "$(ns "$i")" "$@"
	;;
*) die "usage: $0 up N [RATE [DELAY [LOSS]]] | exec I CMD... | status | down" ;;
esac
