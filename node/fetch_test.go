package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/test/harness"
)

// Sizes of TestConcurrentFetchesReportTheirOwnBytes.
const (
	// smallFetch and bigFetch are the two files, of different sizes.
	smallFetch = 6 << 20
	bigFetch   = 18 << 20
	// fetchOverhead bounds the DAG's inner nodes a fetch receives beside
	// the file's bytes (a root over 1 MiB leaves: well under 1 KiB here).
	fetchOverhead = 64 << 10
	// seederRate paces the seeder, so the two fetches overlap for a
	// second or more.
	seederRate = 16 << 20
)

// TestConcurrentFetchesReportTheirOwnBytes: two fetches of different sizes
// run at once on one node, and each reports the bytes it received, not the
// node's: its own file (and a little DAG), nothing of the other's. Their
// sum is what the node received.
func TestConcurrentFetchesReportTheirOwnBytes(t *testing.T) {
	ctx := context.Background()
	seeder := newTestNode(t, func(c *Config) { c.BandwidthUp = seederRate })
	fetcher := newTestNode(t)
	defer seeder.Close()
	defer fetcher.Close()
	sizes := []int64{smallFetch, bigFetch}
	cids := make([]string, len(sizes))
	srcs := make([]string, len(sizes))
	for i, size := range sizes {
		srcs[i] = filepath.Join(t.TempDir(), "file")
		harness.WriteRandomFile(t, srcs[i], size, uint64(i+1))
		res, err := seeder.Add(ctx, srcs[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		cids[i] = res.CID
	}
	id, _ := seeder.ID(ctx)
	if err := fetcher.Connect(ctx, id.Addrs[0]); err != nil {
		t.Fatal(err)
	}
	before, _ := fetcher.Stats(ctx)

	results := make([]api.FetchResult, len(sizes))
	errs := make([]error, len(sizes))
	var wg sync.WaitGroup
	for i := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(t.TempDir(), "out")
			results[i], errs[i] = fetcher.Fetch(ctx, api.FetchRequest{Ref: cids[i], Out: out}, nil)
			if errs[i] == nil {
				got, _ := os.ReadFile(out)
				want, _ := os.ReadFile(srcs[i])
				if !bytes.Equal(got, want) {
					t.Errorf("fetch %d: the file differs", i)
				}
			}
		}()
	}
	wg.Wait()
	after, _ := fetcher.Stats(ctx)

	var sum uint64
	for i, size := range sizes {
		if errs[i] != nil {
			t.Fatalf("fetch of %d bytes: %v", size, errs[i])
		}
		got := results[i].Received
		t.Logf("fetch of %d bytes reported %d received in %.2fs", size, got, results[i].Seconds)
		if got < uint64(size) || got > uint64(size)+fetchOverhead {
			t.Errorf("fetch of %d bytes reported %d bytes received, want its own %d (+ at most %d of DAG)", size, got, size, fetchOverhead)
		}
		sum += got
	}
	if node := after.BytesReceived - before.BytesReceived; sum != node {
		t.Errorf("the fetches reported %d bytes together, the node received %d", sum, node)
	}
}
