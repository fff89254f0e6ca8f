package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// maxStalledFetch bounds a fetch of liarSize bytes that a stalling peer
// tries to hold up while an honest seeder is connected. On loopback the
// honest seeder alone takes well under a second; the staller costs
// bulkStallAfter (5 s), after which the Guard hands its bitswap
// want-blocks to others at once. Before these existed, bulk waited out its
// 30 s idle timeout and bitswap, now and then, forever; with the bulk
// stall and the bitswap stall detected one after the other it took 10-16 s.
const maxStalledFetch = 15 * time.Second

// TestStallingPeer runs a peer that says it has every leaf (bitswap HAVE,
// a bulk request accepted) and never sends one, beside an honest seeder:
// the fetch completes from the honest seeder within maxStalledFetch.
func TestStallingPeer(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, liarSize, 37)
	honest := harness.NewNode(t)
	honest.Start()
	root := honest.Add(src)

	tests := []struct {
		name  string
		flags []string
	}{
		{"bitswap: HAVE, then no block", nil},
		{"bitswap and bulk: request taken, then no block", []string{"-bulk"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := startLiar(t, "stall", src, tc.flags...)
			n := harness.NewNode(t)
			n.Start()
			n.MustRun("connect", l.Addr)
			out := filepath.Join(t.TempDir(), "out")
			// The staller alone first, so the fetch asks it for the leaves;
			// the honest seeder joins once the (truthful) root has arrived.
			start := time.Now()
			done := make(chan harness.Result, 1)
			go func() { done <- n.RunContext(context.Background(), "fetch", root, "-o", out) }()
			waitReceived(t, n, 1)
			n.MustRun("connect", honest.TCPAddr())
			joined := time.Now()
			var r harness.Result
			select {
			case r = <-done:
			case <-time.After(2 * maxStalledFetch):
				t.Fatalf("fetch still stalled after %s\n%s", 2*maxStalledFetch, n.Log())
			}
			took := time.Since(joined)
			if r.Code != 0 {
				t.Fatalf("fetch beside a staller: exit %d\n%s", r.Code, r.Stderr)
			}
			stalled, _ := l.stop()
			t.Logf("fetch done %s after the honest seeder joined (%s in all); the staller held %d block reads", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), stalled)
			if took > maxStalledFetch {
				t.Errorf("the staller held the fetch up for %s (bound %s)", took, maxStalledFetch)
			}
			if same, err := harness.FilesEqual(src, out); err != nil || !same {
				t.Errorf("fetched bytes differ from the source (%v)", err)
			}
		})
	}
}
