package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/protocol"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// bulkClient is what the bulk side of a fetch needs: the host (to find
// the peers that speak protocol.BulkID and open streams to them), the
// Guard, if any, to report peers that send bad data or stall, and the
// counters of the verified blocks that arrived.
type bulkClient struct {
	host  host.Host
	guard *protocol.Guard
	log   *slog.Logger
	// bytes and blocks count what arrived, for the node's stats.
	bytes, blocks *atomic.Uint64
}

// newBulkFetcher returns a fetcher over the connected bulk peers for one
// fetch, or nil if there are none.
func (e *Engine) newBulkFetcher() *bulkFetcher {
	return newBulkFetcher(bulkClient{host: e.cfg.Host, guard: e.cfg.Guard, log: e.log, bytes: &e.bulkBytes, blocks: &e.bulkBlocks})
}

// bulkChunksPerPeer is how many chunks a batch is cut into per bulk peer.
// The peers take chunks in turn, each as soon as it has finished its last
// one, so a faster peer serves more of the batch and a slow one holds it up
// by at most one small chunk. With a single peer a batch is one request.
const bulkChunksPerPeer = 2

// bulkFetcher spreads one fetch's leaves over the connected peers that
// speak the bulk protocol. A peer that fails or sends a bad block is not
// asked again in this fetch; what it did not deliver goes to bitswap.
//
// Bulk is for peers that hold the whole content (seeders). As soon as one
// peer lacks a block, the fetch is in a swarm of partial holders (a class
// fetching one model at once), where bitswap's want-have exchange lets the
// clients serve each other; bulk then stops and bitswap fetches the rest.
type bulkFetcher struct {
	svc bulkClient

	mu    sync.Mutex
	peers map[peer.ID]bool
	// dropped are peers not to ask again in this fetch: they sent bad data.
	dropped map[peer.ID]bool
	// suspended are peers whose stream failed, with when they may be asked
	// again (a connection closed under a request, a peer restarting).
	suspended map[peer.ID]time.Time
	// delivered are peers that sent at least one block in this fetch: a
	// slow seeder, not a staller, when it later falls behind.
	delivered map[peer.ID]bool
	// scanned is when the connected peers were last looked at.
	scanned time.Time
	// off is set once a peer lacked a block: bitswap takes over.
	off atomic.Bool
}

// bulkRescanInterval is how often a fetch looks for newly connected bulk
// peers (found by mDNS or the DHT while it runs); bulkRetryAfter is how
// long a peer whose stream failed rests before it is asked again.
//
// bulkStallAfter is how long a peer may send no block of a chunk it was
// asked for while other peers are connected; then the chunk goes back to
// the others (and bitswap) and the peer is not asked over bulk again in
// this fetch. A peer that says it has blocks and never sends them held a
// fetch for protocol.BulkIdleTimeout (30 s) per batch before. A seeder
// slower than one 1 MiB block in bulkStallAfter (~200 KB/s) is set aside
// too when others are around; bitswap still fetches from it. Alone, a
// peer keeps its chunk up to BulkIdleTimeout.
const (
	bulkRescanInterval = time.Second
	bulkRetryAfter     = 2 * time.Second
	bulkStallAfter     = 5 * time.Second
	bulkStallCheck     = 250 * time.Millisecond
)

// errBulkStalled: a peer sent no block for bulkStallAfter while others
// could serve the chunk.
var errBulkStalled = errors.New("bulk: peer sent no block while others could")

// newBulkFetcher returns a fetcher over the connected bulk peers, or nil
// if there are none (the fetch then uses bitswap alone). A peer whose
// protocols are not known yet (identify still running on a new connection)
// is tried too: if it does not speak bulk, opening the stream fails at once
// and the peer is dropped.
func newBulkFetcher(s bulkClient) *bulkFetcher {
	f := &bulkFetcher{svc: s, peers: make(map[peer.ID]bool), dropped: make(map[peer.ID]bool),
		suspended: make(map[peer.ID]time.Time), delivered: make(map[peer.ID]bool)}
	f.scan()
	if len(f.peers) == 0 {
		return nil
	}
	return f
}

// scan adds the connected bulk peers not dropped before. f.mu is held.
func (f *bulkFetcher) scan() {
	f.scanned = time.Now()
	ps := f.svc.host.Peerstore()
	for _, p := range f.svc.host.Network().Peers() {
		if f.dropped[p] || time.Now().Before(f.suspended[p]) {
			continue
		}
		ok, _ := ps.SupportsProtocols(p, protocol.BulkID)
		known, _ := ps.GetProtocols(p)
		if len(ok) > 0 || len(known) == 0 {
			f.peers[p] = true
		}
	}
}

// active lists the peers in use, looking for new ones now and then.
func (f *bulkFetcher) active() []peer.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.scanned) >= bulkRescanInterval {
		f.scan()
	}
	out := make([]peer.ID, 0, len(f.peers))
	for p := range f.peers {
		out = append(out, p)
	}
	return out
}

// drop stops asking p in this fetch: for good if it sent bad data or
// stalled, for bulkRetryAfter if its stream failed otherwise. Bad data and
// stalls are reported to the Guard.
func (f *bulkFetcher) drop(p peer.ID, err error) {
	f.mu.Lock()
	delete(f.peers, p)
	switch {
	case errors.Is(err, protocol.ErrBulkCorrupt):
		f.dropped[p] = true
	case errors.Is(err, errBulkStalled):
		f.dropped[p] = true
	default:
		f.suspended[p] = time.Now().Add(bulkRetryAfter)
	}
	delivered := f.delivered[p]
	f.mu.Unlock()
	if g := f.svc.guard; g != nil {
		switch {
		case errors.Is(err, protocol.ErrBulkCorrupt):
			g.ReportBulk(p, 0)
		case errors.Is(err, errBulkStalled) && !delivered:
			// Promised blocks and sent none: the Guard demotes it for
			// bitswap too. A seeder that sent blocks and fell behind (a
			// mirror shared by a whole class) is only slow.
			g.ReportStall(p, protocol.GuardBulk)
		}
	}
}

// othersThan reports whether a connected peer other than p may serve this
// fetch: one not dropped from it.
func (f *bulkFetcher) othersThan(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.svc.host.Network().Peers() {
		if q != p && !f.dropped[q] {
			return true
		}
	}
	return false
}

// watchStall cancels a chunk's request with errBulkStalled once p has sent
// no block since *last for bulkStallAfter while another peer could serve
// the chunk. It returns when ctx ends.
func (f *bulkFetcher) watchStall(ctx context.Context, cancel context.CancelCauseFunc, p peer.ID, last *atomic.Int64) {
	tick := time.NewTicker(bulkStallCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) >= bulkStallAfter && f.othersThan(p) {
				cancel(errBulkStalled)
				return
			}
		}
	}
}

// errLocal marks an error of the receiving side (store, output file), which
// fails the fetch rather than sending the batch to bitswap.
type errLocal struct{ err error }

func (e errLocal) Error() string { return e.err.Error() }
func (e errLocal) Unwrap() error { return e.err }

// chunkQueue hands out a batch's chunks to the peers' workers.
type chunkQueue struct {
	// off is the fetcher's switch to bitswap.
	off    *atomic.Bool
	mu     sync.Mutex
	chunks [][]cid.Cid
	// err is the first local error; it stops every worker.
	err error
}

func (q *chunkQueue) next() ([]cid.Cid, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil || len(q.chunks) == 0 || q.off.Load() {
		return nil, false
	}
	c := q.chunks[0]
	q.chunks = q.chunks[1:]
	return c, true
}

// get fetches the raw-leaf CIDs of one batch from the bulk peers, calling
// handle with each verified block as a node, from several goroutines. It returns the
// CIDs it did not get, for bitswap, or the first error from handle.
func (f *bulkFetcher) get(ctx context.Context, batch []cid.Cid, handle func(ipld.Node) error) ([]cid.Cid, error) {
	peers := f.active()
	if len(peers) == 0 || f.off.Load() {
		return batch, nil
	}
	q := &chunkQueue{off: &f.off}
	parts := 1
	if len(peers) > 1 {
		parts = min(len(batch), len(peers)*bulkChunksPerPeer)
	}
	size := (len(batch) + parts - 1) / parts
	for len(batch) > 0 {
		k := min(size, len(batch))
		q.chunks = append(q.chunks, batch[:k:k])
		batch = batch[k:]
	}
	var wg sync.WaitGroup
	for _, p := range peers[:min(len(peers), len(q.chunks))] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx, p, q, handle)
		}()
	}
	wg.Wait()
	if q.err != nil {
		return nil, q.err
	}
	var left []cid.Cid
	for _, c := range q.chunks {
		left = append(left, c...)
	}
	return left, nil
}

// work fetches chunks from p until the queue is empty or p fails.
func (f *bulkFetcher) work(ctx context.Context, p peer.ID, q *chunkQueue, handle func(ipld.Node) error) {
	for {
		chunk, ok := q.next()
		if !ok {
			return
		}
		rest, err := f.getChunk(ctx, p, chunk, handle)
		q.mu.Lock()
		if len(rest) > 0 {
			// Back in the queue for a peer still working; what no one
			// takes goes to bitswap.
			q.chunks = append(q.chunks, rest)
		}
		if le := (errLocal{}); errors.As(err, &le) && q.err == nil {
			q.err = le.err
		} else if err != nil && ctx.Err() != nil && q.err == nil {
			q.err = ctx.Err()
		}
		q.mu.Unlock()
		if err == nil && len(rest) > 0 && !f.off.Swap(true) {
			f.svc.log.Debug("a peer lacks blocks: swarm of partial holders, fetching the rest over bitswap", "peer", p.String())
		}
		if err != nil || len(rest) > 0 {
			if err != nil && ctx.Err() == nil {
				f.svc.log.Debug("bulk fetch from peer failed; using others", "peer", p.String(), "err", err)
			}
			f.drop(p, err)
			return
		}
	}
}

// getChunk asks p for chunk and returns the CIDs it did not deliver. A
// peer that stalls (see bulkStallAfter) fails with errBulkStalled.
func (f *bulkFetcher) getChunk(ctx context.Context, p peer.ID, chunk []cid.Cid, handle func(ipld.Node) error) ([]cid.Cid, error) {
	got := make(map[cid.Cid]bool, len(chunk))
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	go f.watchStall(ctx, cancel, p, &last)
	first := true
	_, err := protocol.BulkGet(ctx, f.svc.host, p, chunk, func(b blocks.Block) error {
		last.Store(time.Now().UnixNano())
		if first {
			first = false
			f.mu.Lock()
			f.delivered[p] = true
			f.mu.Unlock()
		}
		nd, err := merkledag.DecodeRawBlock(b)
		if err != nil {
			return errLocal{err}
		}
		if err := handle(nd); err != nil {
			return errLocal{err}
		}
		got[b.Cid()] = true
		f.svc.bytes.Add(uint64(len(b.RawData())))
		f.svc.blocks.Add(1)
		return nil
	})
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errBulkStalled) {
		err = fmt.Errorf("%w: none for %s from %s", errBulkStalled, bulkStallAfter, p)
	}
	var rest []cid.Cid
	for _, c := range chunk {
		if !got[c] {
			rest = append(rest, c)
		}
	}
	return rest, err
}

// allRawLeaves reports whether every CID in cids addresses a raw block (a
// file leaf under unixfs-v1-2025), which the bulk protocol moves.
func allRawLeaves(cids []cid.Cid) bool {
	for _, c := range cids {
		if c.Prefix().Codec != cid.Raw {
			return false
		}
	}
	return len(cids) > 0
}
