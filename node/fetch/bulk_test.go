package fetch

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store/storetest"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// bulkTestTimeout bounds each exchange so a broken test fails, not hangs.
const bulkTestTimeout = 30 * time.Second

// TestBulkFetcherSpreadsAndFallsBack: of two bulk peers, one holds the
// blocks and one holds none. Every block must arrive verified from the
// holder or be handed back for bitswap, and a peer found empty is dropped.
func TestBulkFetcherSpreadsAndFallsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), bulkTestTimeout)
	defer cancel()
	want := p2ptest.RawBlocks(fetchBatch, 64)
	full := storetest.MemBlockstore()
	if err := full.PutMany(ctx, want); err != nil {
		t.Fatal(err)
	}
	empty := storetest.MemBlockstore()

	client := p2ptest.Host(t)
	var recvBytes, recvBlocks atomic.Uint64
	svc := bulkClient{host: client, log: slog.Default(), bytes: &recvBytes, blocks: &recvBlocks}
	holder, lacker := p2ptest.Host(t), p2ptest.Host(t)
	protocol.NewBulkServer(holder, full, slog.Default())
	protocol.NewBulkServer(lacker, empty, slog.Default())
	for _, h := range []host.Host{holder, lacker} {
		if err := client.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatal(err)
		}
		client.Peerstore().AddProtocols(h.ID(), protocol.BulkID)
	}
	f := newBulkFetcher(svc)
	if f == nil || len(f.active()) != 2 {
		t.Fatalf("fetcher sees %v, want both bulk peers", f)
	}

	var mu sync.Mutex
	got := map[cid.Cid]bool{}
	left, err := f.get(ctx, cidsOfBlocks(want), func(nd ipld.Node) error {
		mu.Lock()
		defer mu.Unlock()
		got[nd.Cid()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left {
		if got[c] {
			t.Errorf("%s both delivered and handed back", c)
		}
		got[c] = true
	}
	if len(got) != len(want) {
		t.Fatalf("%d of %d blocks delivered or handed back", len(got), len(want))
	}

	// A fetcher left with only the empty peer hands everything back and
	// stops asking it.
	alone := &bulkFetcher{svc: svc, peers: map[peer.ID]bool{lacker.ID(): true}, dropped: map[peer.ID]bool{holder.ID(): true}, suspended: map[peer.ID]time.Time{}, scanned: time.Now()}
	left, err = alone.get(ctx, cidsOfBlocks(want), func(ipld.Node) error {
		t.Error("a block arrived from the peer that holds none")
		return nil
	})
	if err != nil || len(left) != len(want) {
		t.Fatalf("get from the empty peer = %d handed back, %v; want all %d", len(left), err, len(want))
	}
	if ps := alone.active(); len(ps) != 0 {
		t.Error("the peer without the blocks is still in use")
	}
	if recvBytes.Load() == 0 || recvBlocks.Load() == 0 {
		t.Error("no bytes counted as received over bulk")
	}
}

func cidsOfBlocks(bs []blocks.Block) []cid.Cid {
	out := make([]cid.Cid, len(bs))
	for i, b := range bs {
		out[i] = b.Cid()
	}
	return out
}
