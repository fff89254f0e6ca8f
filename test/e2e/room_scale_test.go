//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
	"github.com/allmende/allmende/test/netns"
)

// The room at scale (issue 15): machines in network namespaces, found by
// mDNS alone, listening on TCP and QUIC as the default profile does, fetch
// one model from a mirror whose uplink is limited to roomRate.
const (
	// scaleMachines is the room's size; ALLMENDE_ROOM_MACHINES overrides.
	scaleMachines = 16
	// scaleSize is the model; ALLMENDE_ROOM_MODEL_MIB overrides.
	scaleSize = 64 << 20
	// scaleTargetRatio and scaleTargetMirror are the targets: the
	// room done within 1.5 times one machine's time, the mirror sending
	// at most twice the model. The mirror's bytes are asserted; the time
	// ratio is logged only: on a loaded machine it follows the load, and
	// 31 daemons on 2 cores are CPU-bound (the log says how busy).
	scaleTargetRatio  = 1.5
	scaleTargetMirror = 2
	// idleSample is how long the room's idle CPU use is measured.
	idleSample = 3 * time.Second
)

// TestRoomScale: one machine alone fetches the model from the mirror,
// forgets it, and then the whole room fetches it at once. It logs the
// room's time against the one machine's and the bytes the mirror's
// interface sent against the model, the numbers of docs/swarm.md's table,
// and how many connections the room made over TCP and over QUIC. Opt-in
// with ALLMENDE_ROOM_TEST=1, like the classroom (1 to 3 minutes).
func TestRoomScale(t *testing.T) {
	requireRoomTest(t)
	machines := envInt(t, "ALLMENDE_ROOM_MACHINES", scaleMachines, 2, netns.MaxHosts-1)
	size := int64(envInt(t, "ALLMENDE_ROOM_MODEL_MIB", scaleSize>>20, 1, 4096)) << 20
	bed := netns.New(t, machines+1)
	mh := bed.Hosts[0]
	mirror := roomNode(t, mh, "ALLMENDE_SWARM_SUPERSEED=on")
	dir := filepath.Join(t.TempDir(), "model")
	harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), size, 15)
	root := mirror.Add(dir)
	if err := mh.Shape(netns.Shape{Rate: roomRate}); err != nil {
		t.Fatal(err)
	}
	var clients []*harness.Node
	for _, h := range bed.Hosts[1:] {
		clients = append(clients, roomNode(t, h, "ALLMENDE_FETCH_TIMEOUT="+roomStall.String()))
	}
	start := time.Now()
	for _, c := range clients {
		waitPeers(t, c, machines) // the mirror and every other machine
	}
	tcp, quic := transports(clients)
	t.Logf("mDNS connected %d machines in %s; connections seen from the machines: %d TCP, %d QUIC",
		machines, time.Since(start).Round(time.Millisecond), tcp, quic)

	fetch := func(c *harness.Node) error {
		out := filepath.Join(t.TempDir(), "model")
		if r := c.Run("fetch", root, "-o", out); r.Code != 0 {
			return fmt.Errorf("fetch exit %d: %s\nits daemon's log:\n%s", r.Code, r.Stderr, tail(c.Log(), 60))
		}
		harness.AssertSameTree(t, dir, out)
		return nil
	}
	sent0 := mirrorSent(t, mh)
	one := timeAll(t, clients[:1], fetch)
	sent1 := mirrorSent(t, mh)
	clients[0].MustRun("rm", root)
	clients[0].MustRun("gc")
	daemons := append([]*harness.Node{mirror}, clients...)
	idle0 := cpuSeconds(t, daemons)
	time.Sleep(idleSample)
	idle := (cpuSeconds(t, daemons) - idle0) / idleSample.Seconds()
	cpu0 := cpuSeconds(t, daemons)
	stop := make(chan struct{})
	quarters := make(chan []time.Duration, 1)
	go func() { quarters <- watchSent(mh, sent1, size, stop) }()
	all := timeAll(t, clients, fetch)
	close(stop)
	sent2 := mirrorSent(t, mh)
	cpu := cpuSeconds(t, daemons) - cpu0
	if t.Failed() {
		return
	}

	model := float64(size)
	ratio := all.Seconds() / one.Seconds()
	mirrorX := float64(sent2-sent1) / model
	t.Logf("room of %d, %d MiB model, mirror uplink %d MiB/s:", machines, size>>20, roomRate>>20)
	t.Logf("  one machine alone: %6.1f s, mirror sent %.2f x the model", one.Seconds(), float64(sent1-sent0)/model)
	t.Logf("  all %d at once:     %6.1f s = %.2f x one machine (target %.1f), mirror sent %.2f x the model (target %d)",
		machines, all.Seconds(), ratio, scaleTargetRatio, mirrorX, scaleTargetMirror)
	t.Logf("  the daemons used %.1f CPU seconds meanwhile: %.0f%% of %d cores (idle, they use %.2f CPU seconds a second)",
		cpu, 100*cpu/all.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU(), idle)
	t.Logf("  the mirror had sent 1/4, 1/2, 3/4 and all of the model after %v", <-quarters)
	t.Logf("  table: | %d | %.1f | %.1f | %.2f | %.2f |", machines, one.Seconds(), all.Seconds(), ratio, mirrorX)
	if mirrorX > scaleTargetMirror {
		t.Errorf("the mirror sent %.2f x the model to %d machines, want at most %d x", mirrorX, machines, scaleTargetMirror)
	}
}

// roomNode starts a daemon in h as a classroom machine of the default
// profile would run: TCP and QUIC on its LAN address, mDNS on.
func roomNode(t *testing.T, h *netns.Host, env ...string) *harness.Node {
	t.Helper()
	base := []string{
		fmt.Sprintf("ALLMENDE_LISTEN=/ip4/%s/tcp/%d,/ip4/%s/udp/%d/quic-v1", h.IP, lanPort, h.IP, lanPort),
		"ALLMENDE_MDNS_ENABLED=true",
	}
	return lanNode(t, h, append(base, env...)...)
}

// transports counts the machines' connections by transport, from their
// peer lists.
func transports(nodes []*harness.Node) (tcp, quic int) {
	for _, n := range nodes {
		out := n.MustRun("peers")
		tcp += strings.Count(out, "/tcp/")
		quic += strings.Count(out, "/quic")
	}
	return tcp, quic
}

// watchSent samples what h sent beyond base until stop, and returns when
// it had sent each quarter of size (those it reached).
func watchSent(h *netns.Host, base, size int64, stop chan struct{}) []time.Duration {
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var out []time.Duration
	for len(out) < 4 {
		select {
		case <-stop:
			return out
		case <-tick.C:
		}
		n, err := h.SentBytes()
		for err == nil && len(out) < 4 && n-base >= size*int64(len(out)+1)/4 {
			out = append(out, time.Since(start).Round(100*time.Millisecond))
		}
	}
	return out
}

// cpuSeconds is the CPU time the daemons used so far.
func cpuSeconds(t *testing.T, nodes []*harness.Node) float64 {
	t.Helper()
	var sum float64
	for _, n := range nodes {
		s, err := n.CPUSeconds()
		if err != nil {
			t.Fatal(err)
		}
		sum += s
	}
	return sum
}

// mirrorSent is what h has sent on the bed so far.
func mirrorSent(t *testing.T, h *netns.Host) int64 {
	t.Helper()
	n, err := h.SentBytes()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// envInt reads a whole number in [lo, hi] from the environment variable
// name, or def if it is unset.
func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n
}
