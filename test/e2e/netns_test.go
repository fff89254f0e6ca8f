//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
	"github.com/allmende/allmende/test/netns"
)

// LAN test bed settings.
const (
	// lanPort is the libp2p port every namespace daemon listens on.
	lanPort = 4001
	// lanAllow exempts the bed's subnet from the per-IP connection limits.
	lanAllow = "/ip4/" + netns.SubnetPrefix + ".0/ipcidr/24"
	// discoverTimeout bounds waiting for mDNS to connect the LAN.
	discoverTimeout = 60 * time.Second
	// lanPoll is the polling interval of waits.
	lanPoll = 100 * time.Millisecond
	// statsTimeout bounds one stats request to a namespace daemon.
	statsTimeout = 5 * time.Second

	// seederRate is R, what tc lets each seeder send (bytes per second).
	seederRate = 4 << 20
	// swarmSize is the model the swarming test moves: 40 s at R, 10 s at
	// 4R, long enough that start-up and the end game (the last blocks
	// queued at one seeder while the others are done) cost little of the
	// rate.
	swarmSize = 160 << 20
	// settle lets connections made from both sides at once by mDNS sort
	// themselves out before a fetch starts.
	settle = time.Second
	// maxSeeders is the most seeders the swarming test starts.
	maxSeeders = 4
	// minSeederRatio: n seeders at R each must give a fetch at least
	// minSeederRatio·n·R (noise on a loaded 2-core machine costs some).
	minSeederRatio = 0.6
	// minFairShare: each of n seeders must send at least this fraction of
	// its fair share, size/n, so none is left idle.
	minFairShare = 0.25
	// fastRate is the faster seeder's rate in multiples of R, and
	// minFastShare how many times the slow seeder's bytes it must send.
	fastRate     = 3
	minFastShare = 1.5
	// killFraction is how much of the model the fetcher gets before a
	// seeder is killed.
	killFraction = 3
)

// lanNode starts a daemon inside h, listening on h's address on the bed
// and with its API on the namespace's own loopback. env comes on top of
// profile test.
func lanNode(t *testing.T, h *netns.Host, env ...string) *harness.Node {
	t.Helper()
	base := []string{
		fmt.Sprintf("ALLMENDE_LISTEN=/ip4/%s/tcp/%d", h.IP, lanPort),
		"ALLMENDE_RESOURCES_ALLOW=" + lanAllow,
	}
	n := harness.NewNode(t, append(base, env...)...)
	n.Wrap = h.Wrap()
	n.Start()
	return n
}

// waitPeers waits until n is connected to at least want peers.
func waitPeers(t *testing.T, n *harness.Node, want int) {
	t.Helper()
	var peers []map[string]string
	if !harness.Poll(discoverTimeout, lanPoll, func() bool {
		n.JSON(&peers, "peers", "--json")
		return len(peers) >= want
	}) {
		t.Fatalf("%d peers after %s, want %d: %v", len(peers), discoverTimeout, want, peers)
	}
	time.Sleep(settle)
}

// TestLANDiscovery: four daemons on one bridge find each other by mDNS;
// three fetch a 256 MiB model from the fourth by CID alone, with no
// connect and no bootstrap address.
func TestLANDiscovery(t *testing.T) {
	bed := netns.New(t, 4)
	src := modelDir(t)
	var nodes []*harness.Node
	for _, h := range bed.Hosts {
		// Debug logs, shown when a fetch fails, to catch the rare stall
		// (a fetch that got no block from connected peers) in the act.
		nodes = append(nodes, lanNode(t, h, "ALLMENDE_MDNS_ENABLED=true", "ALLMENDE_DHT_MODE=auto", "ALLMENDE_LOG_LEVEL=debug"))
	}
	root := nodes[0].Add(src)
	start := time.Now()
	for _, n := range nodes {
		waitPeers(t, n, len(nodes)-1)
	}
	t.Logf("mDNS connected all %d nodes in %s", len(nodes), time.Since(start).Round(time.Millisecond))

	var wg sync.WaitGroup
	for i, n := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(t.TempDir(), "model")
			r := n.Run("fetch", root, "-o", out, "--json")
			if r.Code != 0 {
				t.Errorf("node %d: fetch exit %d: %s\nits daemon's log:\n%s", i+1, r.Code, r.Stderr, n.Log())
				return
			}
			var res harness.FetchResult
			json.Unmarshal([]byte(r.Stdout), &res)
			t.Logf("node %d fetched %d bytes in %.1f s (%.0f MiB/s)", i+1, res.Size, res.Seconds, float64(res.Size)/res.Seconds/(1<<20))
			harness.AssertSameTree(t, src, out)
		}()
	}
	wg.Wait()
}

// TestDHTFindsProvider: without mDNS, a fetcher that knows only a
// bootstrap peer finds the provider through the LAN DHT and fetches from
// it.
func TestDHTFindsProvider(t *testing.T) {
	bed := netns.New(t, 3)
	dhtOn := "ALLMENDE_DHT_MODE=auto"
	seed := lanNode(t, bed.Hosts[1], dhtOn)
	boot := "ALLMENDE_BOOTSTRAP=" + seed.TCPAddr()
	provider := lanNode(t, bed.Hosts[0], dhtOn, boot)
	fetcher := lanNode(t, bed.Hosts[2], dhtOn, boot)

	f := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, f, 8<<20, 3)
	root := provider.Add(f)
	start := time.Now()
	providerID := nodeID(t, provider)
	waitProvider(t, bed.Hosts[2], fetcher, root, providerID)
	t.Logf("the fetcher's DHT names the provider after %s", time.Since(start).Round(time.Millisecond))

	out := filepath.Join(t.TempDir(), "weights.bin")
	start = time.Now()
	fetcher.MustRun("fetch", root, "-o", out)
	t.Logf("found the provider through the DHT and fetched in %s", time.Since(start).Round(time.Millisecond))
	harness.AssertSameTree(t, f, out)

	// The record lives on the other DHT servers too, not only in the
	// provider's own store: with the provider gone, the DHT still names it.
	if _, err := provider.Stop(); err != nil {
		t.Fatal(err)
	}
	waitProvider(t, bed.Hosts[2], fetcher, root, providerID)
}

// TestSwarming measures the fetch rate against the number of seeders
// (issue 7): 1, 2 and 4 seeders, each limited by tc to R, serve one fetcher
// in turn, which must draw from all of them (rate >= 0.6·n·R, each seeder
// sending a fair part). Then a seeder is killed mid-fetch and the fetch
// still completes and verifies; then a seeder three times faster than
// another must send more of the model. Every rate is logged as a multiple
// of R ("scaling: n seeders ... = x R"), which bench/scaling.sh collects.
//
// It takes about three minutes and measures rates, which a loaded machine
// can push under the bound, so it runs with ALLMENDE_SLOW_TESTS=1.
func TestSwarming(t *testing.T) {
	if os.Getenv("ALLMENDE_SLOW_TESTS") == "" {
		t.Skip("set ALLMENDE_SLOW_TESTS=1 to measure swarming (about 3 min)")
	}
	scaling := []struct {
		seeders int
		why     string
	}{
		{1, "the baseline: one seeder's R, and what the bulk protocol costs"},
		{2, "the rate must add up across seeders"},
		{maxSeeders, "the most seeders the issue asks about; the fetcher's own work starts to show"},
	}
	bed := netns.New(t, maxSeeders+len(scaling)+2) // the seeders, then one fresh fetcher per fetch
	fetchers := bed.Hosts[maxSeeders:]
	src := filepath.Join(t.TempDir(), "model.safetensors")
	harness.WriteRandomFile(t, src, swarmSize, 11)

	var seeders []*harness.Node
	var root string
	for _, tt := range scaling {
		for len(seeders) < tt.seeders {
			var s *harness.Node
			s, root = startSeeder(t, bed.Hosts[len(seeders)], src) // the same bytes give the same CID everywhere
			seeders = append(seeders, s)
		}
		h := fetchers[0]
		fetchers = fetchers[1:]
		t.Run(fmt.Sprintf("%d seeders at R", tt.seeders), func(t *testing.T) {
			t.Log(tt.why)
			before := sentBy(t, bed, seeders)
			res := swarmFetch(t, h, len(seeders), root, src)
			after := sentBy(t, bed, seeders)
			n := float64(len(seeders))
			ratio := float64(res.Size) / res.Seconds / seederRate
			t.Logf("scaling: %d seeders at R = %d MiB/s: %d MiB in %.2f s = %.1f MiB/s = %.2f x R (%.2f x R per seeder)",
				len(seeders), seederRate>>20, res.Size>>20, res.Seconds, ratio*seederRate/(1<<20), ratio, ratio/n)
			fair := float64(res.Size) / n
			for i := range seeders {
				sent := after[i] - before[i]
				t.Logf("seeder %d sent %d MiB", i, sent>>20)
				if float64(sent) < minFairShare*fair {
					t.Errorf("seeder %d sent %d bytes, want at least %.0f%% of its fair share %.0f", i, sent, 100*minFairShare, fair)
				}
			}
			if ratio < minSeederRatio*n {
				t.Errorf("fetch ran at %.2f R, want >= %.1f R", ratio, minSeederRatio*n)
			}
		})
	}

	t.Run("a seeder killed mid-fetch", func(t *testing.T) {
		f := lanNode(t, fetchers[0], swarmEnv...)
		waitPeers(t, f, len(seeders))
		out := filepath.Join(t.TempDir(), "model")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan harness.Result, 1)
		go func() { done <- f.RunContext(ctx, "fetch", root, "-o", out, "--json") }()
		waitLANReceived(t, fetchers[0], f, swarmSize/killFraction)
		seeders[0].Kill()
		t.Logf("killed seeder 0 after %d MiB", swarmSize/killFraction>>20)
		r := <-done
		if r.Code != 0 {
			t.Fatalf("fetch after a seeder died: exit %d: %s", r.Code, r.Stderr)
		}
		var res harness.FetchResult
		json.Unmarshal([]byte(r.Stdout), &res)
		t.Logf("fetch with a seeder killed: %.2f s (%.1f MiB/s)", res.Seconds, float64(res.Size)/res.Seconds/(1<<20))
		harness.AssertSameTree(t, src, out)
		if _, err := f.Stop(); err != nil { // it seeds unshaped now: stop it
			t.Fatal(err)
		}
	})

	t.Run("a faster seeder gets more work", func(t *testing.T) {
		slow, fast := 1, 2
		if err := bed.Hosts[fast].Shape(netns.Shape{Rate: fastRate * seederRate}); err != nil {
			t.Fatal(err)
		}
		before := sentBy(t, bed, seeders, slow, fast)
		res := swarmFetch(t, fetchers[1], len(seeders)-1, root, src) // seeder 0 is dead
		after := sentBy(t, bed, seeders, slow, fast)
		slowSent, fastSent := after[0]-before[0], after[1]-before[1]
		t.Logf("seeder at R sent %d MiB, seeder at %dR sent %d MiB (%.1f MiB/s overall)",
			slowSent>>20, fastRate, fastSent>>20, float64(res.Size)/res.Seconds/(1<<20))
		if float64(fastSent) < minFastShare*float64(slowSent) {
			t.Errorf("the %dx faster seeder sent %d bytes, the slow one %d: want at least %.1fx", fastRate, fastSent, slowSent, minFastShare)
		}
	})
}

// swarmEnv is what every daemon of the swarming test runs with.
var swarmEnv = []string{"ALLMENDE_MDNS_ENABLED=true"}

// startSeeder starts a daemon in h whose link tc limits to R, adds src to
// it and returns the daemon and src's root CID.
func startSeeder(t *testing.T, h *netns.Host, src string) (*harness.Node, string) {
	t.Helper()
	if err := h.Shape(netns.Shape{Rate: seederRate}); err != nil {
		t.Fatal(err)
	}
	s := lanNode(t, h, swarmEnv...)
	return s, s.Add(src)
}

// swarmFetch starts a fetcher in h, waits until it is connected to peers
// peers, fetches root and checks the result against src. It stops the
// fetcher afterwards: it would seed the model unshaped to later fetchers.
func swarmFetch(t *testing.T, h *netns.Host, peers int, root, src string) harness.FetchResult {
	t.Helper()
	f := lanNode(t, h, swarmEnv...)
	waitPeers(t, f, peers)
	out := filepath.Join(t.TempDir(), "model")
	var res harness.FetchResult
	f.JSON(&res, "fetch", root, "-o", out, "--json")
	harness.AssertSameTree(t, src, out)
	if _, err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	return res
}

// sentBy returns the bytes the seeders with the given indexes (all of
// them if none is given) have sent so far. Seeder i runs in bed.Hosts[i].
func sentBy(t *testing.T, bed *netns.Bed, seeders []*harness.Node, idx ...int) []uint64 {
	t.Helper()
	if len(idx) == 0 {
		for i := range seeders {
			idx = append(idx, i)
		}
	}
	out := make([]uint64, len(idx))
	for i, j := range idx {
		st, err := seeders[j].StatsVia(bed.Hosts[j].HTTPClient(statsTimeout))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = st.BytesSent
	}
	return out
}

// waitLANReceived polls a namespace daemon until it has received want
// bytes.
func waitLANReceived(t *testing.T, h *netns.Host, n *harness.Node, want uint64) {
	t.Helper()
	harness.WaitUntil(t, fmt.Sprintf("the fetcher to receive %d bytes", want), discoverTimeout, lanPoll/10, func() bool {
		s, err := n.StatsVia(h.HTTPClient(statsTimeout))
		return err == nil && s.BytesReceived >= want
	})
}

// nodeID is n's peer ID.
func nodeID(t *testing.T, n *harness.Node) string {
	t.Helper()
	var id struct {
		ID string `json:"id"`
	}
	n.JSON(&id, "id", "--json")
	return id.ID
}

// waitProvider asks n's DHT (through h's namespace) for the providers of
// root until want is among them.
func waitProvider(t *testing.T, h *netns.Host, n *harness.Node, root, want string) {
	t.Helper()
	var ids []string
	if harness.Poll(discoverTimeout, lanPoll, func() bool {
		body, err := n.APIGet(h.HTTPClient(discoverTimeout), "/api/v0/routing/providers?cid="+root)
		if err != nil {
			return false
		}
		ids = nil
		json.Unmarshal(body, &ids)
		return slices.Contains(ids, want)
	}) {
		return
	}
	t.Fatalf("the DHT does not name %s as a provider of %s after %s (got %v)", want, root, discoverTimeout, ids)
}
