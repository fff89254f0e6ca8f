//go:build linux

// Package netns builds a throwaway LAN on this machine for tests: a Linux
// bridge and network namespaces joined to it by veth pairs, addressed in
// the private test subnet 10.77.0.0/24, with optional traffic shaping by
// tc. The root namespace gets no address on the bridge, so traffic stays
// among the namespaces. Everything is removed when the test ends, also
// after a failure. It needs root and iproute2; tests skip otherwise.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addressing of a test bed.
const (
	// SubnetPrefix is the first three octets of every bed's addresses; host
	// i gets SubnetPrefix.(firstHost+i)/subnetBits.
	SubnetPrefix = "10.77.0"
	firstHost    = 10
	subnetBits   = 24
	// MaxHosts bounds a bed's size (addresses and interface names).
	MaxHosts = 200
	// ifaceInNS is the veth end's name inside every namespace.
	ifaceInNS = "eth0"
	// nsRunDir is where `ip netns` keeps its namespace handles.
	nsRunDir = "/run/netns"
	// cmdTimeout bounds one ip or tc command.
	cmdTimeout = 10 * time.Second
	// minBurst is the smallest token bucket for tbf: veths pass GSO
	// packets of up to 64 KiB, which a smaller bucket would drop.
	minBurst = 256 << 10
	// burstPerSecond sizes the bucket as a fraction of the rate (1/50 s).
	burstPerSecond = 50
	// tbfLatency bounds how long a packet may wait in the shaper's queue.
	tbfLatency = "100ms"
)

// Bed is a bridge with namespaces attached.
type Bed struct {
	// ID prefixes every name the bed creates ("am" + 4 hex digits).
	ID     string
	Bridge string
	Hosts  []*Host
}

// Host is one network namespace on the bed.
type Host struct {
	// NS is the namespace name (for `ip netns exec`).
	NS string
	// IP is the host's address on the bed.
	IP string
	// veth is the root-namespace end of its link to the bridge.
	veth string
}

// Wrap is the command prefix that runs a program inside the namespace.
func (h *Host) Wrap() []string { return []string{"ip", "netns", "exec", h.NS} }

// cmd is argv run inside the namespace (a fresh slice every call).
func (h *Host) cmd(argv ...string) []string { return append(h.Wrap(), argv...) }

// Require skips the test unless namespaces can be made here.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (ip netns, tc)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespace tests need iproute2's ip command")
	}
}

// New builds a bed of n namespaces on one bridge. It skips the test when
// not root or when `ip netns` does not work, and removes the bed when the
// test ends.
func New(t testing.TB, n int) *Bed {
	t.Helper()
	Require(t)
	if n < 1 || n > MaxHosts {
		t.Fatalf("netns.New: %d hosts, want 1..%d", n, MaxHosts)
	}
	b := &Bed{ID: newID()}
	b.Bridge = b.ID + "br"
	// Test whether namespaces work before building anything.
	probe := b.ID + "-probe"
	if out, err := run("ip", "netns", "add", probe); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add): %v: %s", err, out)
	}
	run("ip", "netns", "del", probe)

	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("tear down test bed %s: %v", b.ID, err)
		}
	})
	if err := b.build(n); err != nil {
		t.Fatalf("build test bed %s: %v", b.ID, err)
	}
	return b
}

// newID returns a short random name prefix; interface names must stay
// under 16 bytes.
func newID() string {
	var r [2]byte
	rand.Read(r[:])
	return "am" + hex.EncodeToString(r[:])
}

func (b *Bed) build(n int) error {
	if err := runAll(
		[]string{"ip", "link", "add", b.Bridge, "type", "bridge"},
		[]string{"ip", "link", "set", b.Bridge, "up"},
	); err != nil {
		return err
	}
	disableIPv6(b.Bridge)
	for i := range n {
		h := &Host{
			NS:   fmt.Sprintf("%s-%d", b.ID, i),
			IP:   fmt.Sprintf("%s.%d", SubnetPrefix, firstHost+i),
			veth: fmt.Sprintf("%sv%d", b.ID, i),
		}
		b.Hosts = append(b.Hosts, h)
		if err := b.addHost(h); err != nil {
			return fmt.Errorf("host %d: %w", i, err)
		}
	}
	return nil
}

// addHost creates h's namespace, links it to the bridge and brings up its
// loopback (each namespace has its own) and LAN interface.
func (b *Bed) addHost(h *Host) error {
	peer := h.veth + "p"
	defer disableIPv6(h.veth)
	return runAll(
		[]string{"ip", "netns", "add", h.NS},
		[]string{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", peer},
		[]string{"ip", "link", "set", h.veth, "master", b.Bridge},
		[]string{"ip", "link", "set", h.veth, "up"},
		[]string{"ip", "link", "set", peer, "netns", h.NS},
		h.cmd("ip", "link", "set", peer, "name", ifaceInNS),
		h.cmd("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"),
		h.cmd("ip", "addr", "add", h.IP+"/"+strconv.Itoa(subnetBits), "dev", ifaceInNS),
		h.cmd("ip", "link", "set", ifaceInNS, "up"),
		h.cmd("ip", "link", "set", "lo", "up"),
	)
}

// Close kills what still runs in the bed's namespaces and removes them and
// the bridge. It is safe to call more than once.
func (b *Bed) Close() error {
	var errs []error
	for _, h := range b.Hosts {
		killAll(h.NS)
		if out, err := run("ip", "netns", "del", h.NS); err != nil && !strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", h.NS, err, out))
		}
		// Deleting the namespace deletes the veth pair; this is for a
		// half-built host whose peer never moved.
		run("ip", "link", "del", h.veth)
	}
	if out, err := run("ip", "link", "del", b.Bridge); err != nil && !strings.Contains(string(out), "Cannot find device") {
		errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", b.Bridge, err, out))
	}
	b.Hosts = nil
	return errors.Join(errs...)
}

// killAll kills, by PID, the processes left in namespace ns.
func killAll(ns string) {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		// A thread of this very process may have entered the namespace
		// (see DialContext), so it is listed too: spare it.
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// Shape limits what h sends to the bed. Zero fields are not limited.
type Shape struct {
	// Rate is bytes per second (tc tbf).
	Rate int64
	// Delay and Loss (percent) need the kernel's netem qdisc.
	Delay time.Duration
	Loss  float64
}

// Shape applies s to h's outgoing traffic, replacing any earlier shape.
func (h *Host) Shape(s Shape) error {
	run(h.cmd("tc", "qdisc", "del", "dev", ifaceInNS, "root")...)
	var cmds [][]string
	parent := []string{"root"}
	if s.Rate > 0 {
		burst := max(minBurst, s.Rate/burstPerSecond)
		cmds = append(cmds, h.cmd("tc", "qdisc", "add", "dev", ifaceInNS, "root", "handle", "1:", "tbf",
			"rate", fmt.Sprintf("%dbps", s.Rate), "burst", strconv.FormatInt(burst, 10), "latency", tbfLatency))
		parent = []string{"parent", "1:1"}
	}
	if s.Delay > 0 || s.Loss > 0 {
		netem := append(append(h.cmd("tc", "qdisc", "add", "dev", ifaceInNS), parent...), "handle", "10:", "netem")
		if s.Delay > 0 {
			netem = append(netem, "delay", fmt.Sprintf("%dus", s.Delay.Microseconds()))
		}
		if s.Loss > 0 {
			netem = append(netem, "loss", strconv.FormatFloat(s.Loss, 'f', -1, 64)+"%")
		}
		cmds = append(cmds, netem)
	}
	return runAll(cmds...)
}

// SentBytes is what h has sent on the bed so far: the bytes its link's
// bridge end received (the kernel's counter, headers included).
func (h *Host) SentBytes() (int64, error) {
	b, err := os.ReadFile("/sys/class/net/" + h.veth + "/statistics/rx_bytes")
	if err != nil {
		return 0, fmt.Errorf("bytes sent by %s: %w", h.NS, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bytes sent by %s: %w", h.NS, err)
	}
	return n, nil
}

// HTTPClient is an HTTP client whose connections start inside h's
// namespace, to reach a daemon's API on the namespace's own loopback.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true},
	}
}

// DialContext dials addr from inside h's namespace. The socket is made on
// an OS thread moved into the namespace; that thread is never handed back
// to other goroutines (it ends with the dialling goroutine).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread must die with us
		c, err := h.dialLocked(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (h *Host) dialLocked(ctx context.Context, network, addr string) (net.Conn, error) {
	f, err := os.Open(nsRunDir + "/" + h.NS)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", h.NS, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter namespace %s: %w", h.NS, err)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func run(argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

func runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := run(c...); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// disableIPv6 keeps the root namespace off the bridge entirely (no IPv6
// link-local address either). Best effort.
func disableIPv6(iface string) {
	os.WriteFile("/proc/sys/net/ipv6/conf/"+iface+"/disable_ipv6", []byte("1"), 0o644)
}
