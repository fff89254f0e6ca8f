package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/pace"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
	"golang.org/x/time/rate"
)

// fetchBatch is how many CIDs one GetMany call asks for. Several batches are
// in flight at once, Config.FetchParallel blocks in all, so the pipeline
// never waits for a single block's round trip.
const fetchBatch = 16

// Fetch gets the DAG below ref from peers into the store, verifying every
// block against its CID, then writes it to out (absolute) whole or not at
// all, and pins it so this node seeds it too. Blocks fetched before an
// interruption stay in the store, so a repeated fetch resumes.
func (n *Node) fetchRef(ctx context.Context, req api.FetchRequest, progress api.ProgressFunc) (api.FetchResult, error) {
	start := time.Now()
	out := req.Out
	timeout := n.cfg.FetchTimeout
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	root, err := api.ParseCID(req.Ref)
	if err != nil {
		return api.FetchResult{}, err
	}
	if !filepath.IsAbs(out) {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w: output path must be absolute", root, api.ErrBadInput)
	}
	if _, err := os.Lstat(out); err == nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w: %s exists; remove it or choose another -o", root, api.ErrBadInput, out)
	}
	if _, err := os.Stat(filepath.Dir(out)); err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w: output directory: %v", root, api.ErrBadInput, err)
	}
	if err := n.checkSpace(ctx, root, out, timeout); err != nil {
		return api.FetchResult{}, err
	}
	writeErrs, _ := n.store.WriteErrors()
	before, _ := n.Stats(ctx)
	progress, untrack := n.transfers.track(root.String(), out, progress)
	defer untrack()

	// Hold the pin lock from the first block to the pin, so a concurrent
	// GC cannot delete what this fetch has gathered.
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	// A single file is written while its blocks arrive (fetchInto); a
	// directory is exported once all its blocks are local.
	direct, err := n.fetchInto(ctx, root, out, timeout, progress, nil)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return api.FetchResult{}, fmt.Errorf("%w: %w", api.ErrBadInput, err)
		}
		return api.FetchResult{}, n.diskFull(err, writeErrs)
	}
	if !direct {
		if err := store.Export(ctx, n.store.LocalDAG(), root, out); err != nil {
			if errors.Is(err, store.ErrExists) {
				return api.FetchResult{}, fmt.Errorf("fetch %s: %w: %w", root, api.ErrBadInput, err)
			}
			if errors.Is(err, store.ErrBadInput) { // e.g. a symlink leaving the output
				return api.FetchResult{}, badInputIf(fmt.Errorf("fetch %s: %w", root, err), store.ErrBadInput)
			}
			return api.FetchResult{}, n.diskFull(fmt.Errorf("fetch %s: %w", root, err), writeErrs)
		}
	}
	if err := n.store.Pin(ctx, root, filepath.Base(out)); err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w", root, err)
	}
	size, err := n.store.ContentSize(ctx, root)
	if err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w", root, err)
	}
	after, _ := n.Stats(ctx)
	res := api.FetchResult{
		CID:      root.String(),
		Out:      out,
		Size:     size,
		Received: after.BytesReceived - before.BytesReceived,
		Seconds:  time.Since(start).Seconds(),
	}
	n.log.Info("fetched", "cid", res.CID, "path", out, "bytes", size, "received", res.Received)
	n.routing.Announce(ctx, root)
	return res, nil
}

// fetchDAG makes every block below root local. It walks the DAG breadth
// first with up to FetchParallel blocks wanted at once in one bitswap
// session, and fails with ErrNotFound when no block arrives for
// FetchTimeout.
func (n *Node) fetchDAG(ctx context.Context, root cid.Cid, timeout time.Duration, progress api.ProgressFunc) error {
	return n.fetchDAGInto(ctx, root, timeout, progress, nil)
}

// fetchDAGInto is fetchDAG that also hands every block to the sink that
// sinkFor returns for the root node (none if sinkFor or its result is nil).
func (n *Node) fetchDAGInto(ctx context.Context, root cid.Cid, timeout time.Duration, progress api.ProgressFunc, sinkFor func(ipld.Node) (blockSink, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var lastBlock atomic.Int64
	lastBlock.Store(time.Now().UnixNano())
	sessions := newSessions(ctx, n.dag)
	go watchStall(ctx, cancel, root, timeout, &lastBlock, sessions)

	w := &walker{sessions: sessions, local: n.store.Blockstore(), progress: progress, lastBlock: &lastBlock, parallel: n.cfg.FetchParallel}
	w.bulk = n.bulk.newFetcher()
	w.down = n.downLimit
	if err := w.putEmpty(ctx, []cid.Cid{root}); err != nil {
		return err
	}
	rootNd, err := w.getRoot(ctx, root)
	if err != nil {
		return fetchErr(ctx, root, err)
	}
	total, err := rootNd.Size()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", root, err)
	}
	w.total = total
	if sinkFor != nil {
		if w.sink, err = sinkFor(rootNd); err != nil {
			return err
		}
	}
	if w.sink != nil {
		if err := w.sink.put(rootNd); err != nil {
			return fmt.Errorf("fetch %s: %w", root, err)
		}
	}
	w.account(rootNd)
	if err := w.walk(ctx, ufs.Children(rootNd)); err != nil {
		return fetchErr(ctx, root, err)
	}
	return nil
}

func fetchErr(ctx context.Context, root cid.Cid, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return fmt.Errorf("fetch %s: %w", root, err)
}

// sessionRenewAfter is how long a fetch may receive nothing before it
// gives up its bitswap session for a new one.
const sessionRenewAfter = 5 * time.Second

// watchStall cancels a fetch when no block has arrived for FetchTimeout,
// and renews its bitswap session after every sessionRenewAfter (at most a
// quarter of the timeout) without a block.
func watchStall(ctx context.Context, cancel context.CancelCauseFunc, root cid.Cid, timeout time.Duration, lastBlock *atomic.Int64, sessions *sessions) {
	renewAfter := min(sessionRenewAfter, timeout/4)
	tick := time.NewTicker(min(time.Second, timeout/4))
	defer tick.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			idle := now.Sub(time.Unix(0, lastBlock.Load()))
			if idle > timeout {
				cancel(fmt.Errorf("fetch %s: %w: no peer sent a block for %s (fetch.timeout); connect to a peer that has it", root, api.ErrNotFound, timeout))
				return
			}
			if idle > renewAfter && now.Sub(renewed) > renewAfter {
				renewed = now
				sessions.renew()
			}
		}
	}
}

// sessions is a fetch's bitswap session, which watchStall replaces when
// nothing has arrived for a while. A new session asks every connected peer
// afresh, which gets a fetch going again when its session stopped asking
// the peers that have the blocks: a want lost on the way, a peer that
// answered HAVE and then stalled, a peer bitswap wrongly took for gone.
// Requests in flight on the old session end; the walker repeats what they
// did not get on the new one.
type sessions struct {
	ctx context.Context
	dag ipld.DAGService

	mu     sync.Mutex
	ng     ipld.NodeGetter
	cancel context.CancelFunc
	gen    int
}

func newSessions(ctx context.Context, dag ipld.DAGService) *sessions {
	s := &sessions{ctx: ctx, dag: dag}
	s.mu.Lock()
	s.startLocked()
	s.mu.Unlock()
	return s
}

// current returns the session and its generation.
func (s *sessions) current() (ipld.NodeGetter, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ng, s.gen
}

// renewed reports whether the session changed since generation gen.
func (s *sessions) renewed(gen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen != gen
}

// renew ends the session and starts a new one.
func (s *sessions) renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel()
	s.startLocked()
}

func (s *sessions) startLocked() {
	ctx, cancel := context.WithCancel(s.ctx)
	s.ng, s.cancel, s.gen = merkledag.NewSession(ctx, s.dag), cancel, s.gen+1
}

// walker fetches the blocks below a root, keeping several GetMany batches
// in flight and holding only CIDs, never block data, between steps.
type walker struct {
	sessions  *sessions
	local     blockstore.Blockstore
	progress  api.ProgressFunc
	lastBlock *atomic.Int64
	parallel  int
	total     uint64
	done      uint64
	// sink, if set, receives every block as it arrives.
	sink blockSink
	// bulk, if set, fetches raw leaves over allmende's bulk protocol.
	bulk *bulkFetcher
	// down, if set, paces the blocks received (bandwidth.down).
	down *rate.Limiter
}

// batchResult is what the walker keeps of a batch: sizes and links, never
// the blocks' data.
type batchResult struct {
	got []fetched
	err error
}

type fetched struct {
	size     int
	children []cid.Cid
}

func (w *walker) walk(ctx context.Context, queue []cid.Cid) error {
	maxBatches := max(1, w.parallel/fetchBatch)
	results := make(chan batchResult)
	inflight := 0
	for len(queue) > 0 || inflight > 0 {
		for inflight < maxBatches && len(queue) > 0 {
			k := min(fetchBatch, len(queue))
			batch := queue[:k:k]
			queue = queue[k:]
			inflight++
			go func() { results <- w.getBatch(ctx, batch) }()
		}
		r := <-results
		inflight--
		if r.err != nil {
			for ; inflight > 0; inflight-- {
				<-results
			}
			return r.err
		}
		for _, f := range r.got {
			w.accountBytes(f.size)
			if err := pace.Wait(ctx, w.down, f.size); err != nil {
				for ; inflight > 0; inflight-- {
					<-results
				}
				return err
			}
			queue = append(queue, f.children...)
		}
	}
	return nil
}

func (w *walker) getBatch(ctx context.Context, batch []cid.Cid) batchResult {
	var r batchResult
	if r.err = w.putEmpty(ctx, batch); r.err != nil {
		return r
	}
	want := batch
	if w.bulk != nil && allRawLeaves(batch) {
		if want, r.err = w.viaBulk(ctx, batch, &r); r.err != nil || len(want) == 0 {
			return r
		}
	}
	r.err = w.viaSession(ctx, want, &r)
	if r.err == nil && len(r.got) < len(batch) {
		r.err = ctx.Err()
		if r.err == nil {
			r.err = errors.New("fewer blocks returned than asked for")
		}
	}
	return r
}

// viaSession gets want through the bitswap session (local blocks first),
// feeding each block to accept. When the session is renewed under it, it
// asks the new one for what is still missing.
func (w *walker) viaSession(ctx context.Context, want []cid.Cid, r *batchResult) error {
	for len(want) > 0 {
		ng, gen := w.sessions.current()
		got := make(map[cid.Cid]bool, len(want))
		var firstErr error
		for opt := range ng.GetMany(ctx, want) {
			if opt.Err != nil {
				firstErr = cmp.Or(firstErr, opt.Err)
				continue
			}
			got[opt.Node.Cid()] = true
			if err := w.accept(opt.Node, r); err != nil {
				return err
			}
		}
		if ctx.Err() != nil || !w.sessions.renewed(gen) {
			return firstErr
		}
		want = slices.DeleteFunc(slices.Clone(want), func(c cid.Cid) bool { return got[c] })
	}
	return nil
}

// getRoot gets the root node through the session, asking again on a
// renewed session until the fetch ends.
func (w *walker) getRoot(ctx context.Context, root cid.Cid) (ipld.Node, error) {
	for {
		ng, gen := w.sessions.current()
		nd, err := ng.Get(ctx, root)
		if err == nil || ctx.Err() != nil || !w.sessions.renewed(gen) {
			return nd, err
		}
	}
}

// putEmpty stores the blocks of empty content among cids locally: their
// content is known from the CID alone, and boxo's bitswap server never sends
// a zero-length block, so asking peers for one waits forever.
func (w *walker) putEmpty(ctx context.Context, cids []cid.Cid) error {
	for _, c := range cids {
		if b, ok := emptyBlock(c); ok {
			if err := w.local.Put(ctx, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// emptyBlock returns the block for c if c addresses zero bytes.
func emptyBlock(c cid.Cid) (blocks.Block, bool) {
	if c.Prefix().MhType == multihash.IDENTITY {
		return nil, false
	}
	empty, err := c.Prefix().Sum(nil)
	if err != nil || !empty.Equals(c) {
		return nil, false
	}
	b, err := blocks.NewBlockWithCid(nil, c)
	return b, err == nil
}

// account counts a node's block toward progress.
func (w *walker) account(nd ipld.Node) {
	w.accountBytes(len(nd.RawData()))
}

// accountBytes counts n block bytes toward progress.
func (w *walker) accountBytes(n int) {
	w.done += uint64(n)
	if w.progress != nil {
		w.progress(api.Progress{Done: min(w.done, w.total), Total: w.total})
	}
}
