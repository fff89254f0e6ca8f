package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/test/harness"
)

// Sizes of TestDirectoryFetch: the weights file of its model directory,
// the seeder's uplink (the fetch takes three seconds), and when a fetch is
// cut short (a third of the way).
const (
	dirModel  = 3 << 20
	dirUplink = 1 << 20
	dirCut    = time.Second
)

// writeModelDir writes a model directory: weights over several leaves,
// a small config, an empty file, a copy of the weights in a
// subdirectory (the same leaves in two files) and a symlink.
func writeModelDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), dirModel, 21)
	harness.WriteRandomFile(t, filepath.Join(dir, "sub", "copy.bin"), dirModel, 21)
	for name, data := range map[string]string{"config.json": `{"layers": 2}`, "empty": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../config.json", filepath.Join(dir, "sub", "config.json")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDirectoryFetch: a directory is written while its leaves arrive, so
// its bytes are on disk once (the store keeps the inner nodes only), also
// when they come over bitswap; the fetching node then serves it from the
// output files under their final names, and a fetch cut short resumes
// from its partial directory.
func TestDirectoryFetch(t *testing.T) {
	ctx := context.Background()
	src := writeModelDir(t)
	tests := []struct {
		name string
		// cut cuts the first fetch short.
		cut bool
		// bitswapOnly makes the seeder answer bitswap alone (no bulk,
		// no have protocol), as a Kubo node would.
		bitswapOnly bool
	}{
		{"whole", false, false},
		{"cut short and resumed", true, false},
		{"from a peer with bitswap alone", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seeder := newTestNode(t, func(c *Config) { c.BandwidthUp = dirUplink })
			defer seeder.Close()
			added, err := seeder.Add(ctx, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.bitswapOnly {
				seeder.host.RemoveStreamHandler(protocol.BulkID)
				seeder.host.RemoveStreamHandler(protocol.HaveID)
			}
			b := newTestNode(t)
			defer b.Close()
			connect(t, b, seeder)
			out := filepath.Join(t.TempDir(), "model")
			if tt.cut {
				cctx, cancel := context.WithTimeout(ctx, dirCut)
				_, err := b.Fetch(cctx, api.FetchRequest{Ref: added.CID, Out: out}, nil)
				cancel()
				if err == nil {
					t.Fatal("the cut fetch succeeded")
				}
				if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a cut fetch left its output: %v", err)
				}
			}
			res, err := b.Fetch(ctx, api.FetchRequest{Ref: added.CID, Out: out}, nil)
			if err != nil {
				t.Fatal(err)
			}
			harness.AssertSameTree(t, src, out)
			if tt.cut && res.Received >= dirModel {
				t.Errorf("the resumed fetch received %d bytes of the %d-byte weights: it did not resume", res.Received, dirModel)
			}
			du, err := b.store.DiskUsage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("store: %d bytes beside a %d-byte directory; the last fetch received %d bytes", du, 2*dirModel, res.Received)
			if du > dirModel/4 {
				t.Errorf("the store holds %d bytes beside the directory, want at most %d (its bytes once, in the output)", du, dirModel/4)
			}
			// Served from b's output files alone, the seeder gone.
			seeder.Close()
			c := newTestNode(t)
			defer c.Close()
			connect(t, c, b)
			again := filepath.Join(t.TempDir(), "again")
			if _, err := c.Fetch(ctx, api.FetchRequest{Ref: added.CID, Out: again}, nil); err != nil {
				t.Fatal(err)
			}
			harness.AssertSameTree(t, src, again)
		})
	}
}

// connect connects a to b.
func connect(t *testing.T, a, b *Node) {
	t.Helper()
	id, err := b.ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(context.Background(), id.Addrs[0]); err != nil {
		t.Fatal(err)
	}
}
