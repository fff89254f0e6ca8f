package fetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/pace"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
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

// sinks says where a fetch's blocks go besides the store: file is asked
// with the root node, dir (for a root that is a directory, once its inner
// nodes are local) after it; a nil callback or result means none.
type sinks struct {
	file func(rootNd ipld.Node) (blockSink, error)
	dir  func(ctx context.Context) (blockSink, error)
}

// fetchDAGInto makes every block below root local, handing each to the
// sink that sk gives (none if sk is nil) and adding the bytes that came
// from peers to received. It walks the DAG breadth first with up to
// Parallel blocks wanted at once, leaves over bulk where seeders offer it
// and the rest in one bitswap session, and fails with api.ErrNotFound when
// no block arrives for timeout. With a swarm around, or a directory sink,
// it fetches the inner nodes first and the leaves after them.
func (e *Engine) fetchDAGInto(ctx context.Context, root cid.Cid, timeout time.Duration, progress api.ProgressFunc, sk *sinks, received *atomic.Uint64) error {
	if err := e.refuse(root); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var lastBlock atomic.Int64
	lastBlock.Store(time.Now().UnixNano())
	sessions := newSessions(ctx, e.cfg.Net)
	go watchStall(ctx, cancel, root, timeout, &lastBlock, sessions)

	w := &walker{sessions: sessions, local: e.cfg.Store.Blockstore(), progress: progress, lastBlock: &lastBlock,
		parallel: e.cfg.Parallel, bulk: e.newBulkFetcher(), down: e.cfg.Down, received: received,
		dropCopies: e.cfg.Store.DropCopies}
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
	if sk != nil && sk.file != nil {
		if w.sink, err = sk.file(rootNd); err != nil {
			return err
		}
	}
	if w.sink != nil {
		if err := w.sink.put(rootNd); err != nil {
			return fmt.Errorf("fetch %s: %w", root, err)
		}
	}
	w.account(rootNd)
	var dir func(context.Context) (blockSink, error)
	if kind, err := ufs.Type(rootNd); err == nil && (kind == unixfs.TDirectory || kind == unixfs.THAMTShard) && sk != nil {
		dir = sk.dir
	}
	swarm := e.swarms != nil && e.swarms.Around()
	if dir == nil && !swarm {
		err = w.walk(ctx, ufs.Children(rootNd))
	} else {
		err = e.walkInnerFirst(ctx, root, w, ufs.Children(rootNd), dir, swarm)
	}
	if err != nil {
		return fetchErr(ctx, root, err)
	}
	return nil
}

// walkInnerFirst fetches the DAG below root's children like walk, but the
// inner nodes first: then dir, if set, gives the sink for the leaves, and
// the leaves come from the swarm of root (package swarms) when swarm is
// set; what the swarm does not deliver goes the usual way.
func (e *Engine) walkInnerFirst(ctx context.Context, root cid.Cid, w *walker, children []cid.Cid, dir func(context.Context) (blockSink, error), swarm bool) error {
	w.deferLeaves = true
	err := w.walk(ctx, children)
	w.deferLeaves = false
	if err != nil {
		return err
	}
	if dir != nil {
		if w.sink, err = dir(ctx); err != nil {
			return err
		}
	}
	if !swarm {
		return w.walk(ctx, w.deferred)
	}
	put := func(ctx context.Context, b blocks.Block) error {
		nd, err := merkledag.DecodeRawBlock(b)
		if err != nil {
			return err
		}
		return w.putLeaf(ctx, nd)
	}
	got := func(ctx context.Context, n int) error {
		e.bulkBytes.Add(uint64(n))
		e.bulkBlocks.Add(1)
		return w.gotLeaf(ctx, n)
	}
	rest, err := e.swarms.Fetch(ctx, root, w.deferred, put, got)
	if err == nil {
		err = w.walk(ctx, rest)
	}
	e.swarms.Finished(root, err == nil)
	return err
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
	// received counts the bytes of the blocks this fetch got from peers
	// (blocks it found held are not counted).
	received *atomic.Uint64
	// dropCopies, if set, deletes the block store's copies of leaves
	// recorded as held in the output (store.DropCopies).
	dropCopies func(context.Context, []cid.Cid) (int, error)
	// deferLeaves makes walk fetch inner nodes only and keep the raw
	// leaves it meets in deferred, for the swarm.
	deferLeaves bool
	deferred    []cid.Cid
	// pmu guards done, which the swarm's requests count from several
	// goroutines.
	pmu sync.Mutex
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
	queue = w.keepLeaves(queue)
	maxBatches := max(1, w.parallel/fetchBatch)
	results := make(chan batchResult)
	inflight := 0
	for len(queue) > 0 || inflight > 0 {
		for inflight < maxBatches && len(queue) > 0 {
			k := min(fetchBatch, len(queue))
			// A block a DAG holds twice is asked for once: GetMany
			// returns it once, and the sink writes it at every place.
			batch := uniqueCIDs(queue[:k:k])
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
			queue = append(queue, w.keepLeaves(f.children)...)
		}
	}
	return nil
}

// uniqueCIDs returns cids with repeats left out, in order (a new slice).
func uniqueCIDs(cids []cid.Cid) []cid.Cid {
	out := make([]cid.Cid, 0, len(cids))
	for _, c := range cids {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// keepLeaves returns cids without the raw leaves, which it keeps in
// w.deferred, when w.deferLeaves is set; else cids.
func (w *walker) keepLeaves(cids []cid.Cid) []cid.Cid {
	if !w.deferLeaves {
		return cids
	}
	inner := cids[:0:0]
	for _, c := range cids {
		if c.Prefix().Codec == cid.Raw {
			w.deferred = append(w.deferred, c)
		} else {
			inner = append(inner, c)
		}
	}
	return inner
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
		held := w.held(ctx, want)
		var firstErr error
		for opt := range ng.GetMany(ctx, want) {
			if opt.Err != nil {
				firstErr = cmp.Or(firstErr, opt.Err)
				continue
			}
			c := opt.Node.Cid()
			got[c] = true
			if err := w.accept(ctx, opt.Node, !held[c], r); err != nil {
				return err
			}
			if !held[c] {
				w.received.Add(uint64(len(opt.Node.RawData())))
			}
		}
		if ctx.Err() != nil || !w.sessions.renewed(gen) {
			return firstErr
		}
		want = slices.DeleteFunc(slices.Clone(want), func(c cid.Cid) bool { return got[c] })
	}
	return nil
}

// accept takes one verified block of a batch: it feeds the sink and keeps
// the block's size and links in r. A raw leaf that came from a peer
// (fromPeer) into a sink that holds leaves is recorded as held in the
// output and the copy the network DAG stored on the way in is dropped
// (dropCopies), so the bytes are on disk once, as with bulk.
func (w *walker) accept(ctx context.Context, nd ipld.Node, fromPeer bool, r *batchResult) error {
	w.lastBlock.Store(time.Now().UnixNano())
	holder, _ := w.sink.(leafHolder)
	switch {
	case holder != nil && holder.holdsLeaves() && fromPeer && nd.Cid().Prefix().Codec == cid.Raw && w.dropCopies != nil:
		if err := holder.putHeld(ctx, nd); err != nil {
			return err
		}
		if _, err := w.dropCopies(ctx, []cid.Cid{nd.Cid()}); err != nil {
			return err
		}
	case w.sink != nil:
		if err := w.sink.put(nd); err != nil {
			return err
		}
	}
	r.got = append(r.got, fetched{size: len(nd.RawData()), children: ufs.Children(nd)})
	return nil
}

// viaBulk fetches the leaves of batch that are not local over the bulk
// protocol, storing each verified block. It returns the CIDs still to get
// through the block service: local ones and any bulk did not deliver.
func (w *walker) viaBulk(ctx context.Context, batch []cid.Cid, r *batchResult) ([]cid.Cid, error) {
	var rest, need []cid.Cid
	for _, c := range batch {
		if has, err := w.local.Has(ctx, c); err == nil && has {
			rest = append(rest, c)
		} else {
			need = append(need, c)
		}
	}
	if len(need) == 0 {
		return rest, nil
	}
	var mu sync.Mutex // guards r
	missed, err := w.bulk.get(ctx, need, func(nd ipld.Node) error {
		w.lastBlock.Store(time.Now().UnixNano())
		w.received.Add(uint64(len(nd.RawData())))
		if err := w.putLeaf(ctx, nd); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		r.got = append(r.got, fetched{size: len(nd.RawData())})
		return nil
	})
	return append(rest, missed...), err
}

// leafHolder is a sink that can keep a leaf in its output alone, the
// store recording it as held there (holdsLeaves: it has a store).
type leafHolder interface {
	blockSink
	putHeld(ctx context.Context, nd ipld.Node) error
	holdsLeaves() bool
}

// putLeaf keeps a verified leaf that came over the bulk protocol: in the
// output alone (the store records it as held there) when the fetch
// writes files and keeps no copy, else in the block store and the sink.
func (w *walker) putLeaf(ctx context.Context, nd ipld.Node) error {
	held, _ := w.sink.(leafHolder)
	switch {
	case held != nil && held.holdsLeaves():
		return held.putHeld(ctx, nd)
	case w.sink != nil:
		if err := w.local.Put(ctx, nd); err != nil {
			return err
		}
		return w.sink.put(nd)
	default:
		return w.local.Put(ctx, nd)
	}
}

// gotLeaf counts a leaf of n bytes the swarm delivered: the stall clock,
// the bytes received, progress, and the pace of bandwidth.down.
func (w *walker) gotLeaf(ctx context.Context, n int) error {
	w.lastBlock.Store(time.Now().UnixNano())
	w.received.Add(uint64(n))
	w.accountBytes(n)
	return pace.Wait(ctx, w.down, n)
}

// held returns which of cids the store holds now: a block the session
// then returns came from a peer only if it was not held.
func (w *walker) held(ctx context.Context, cids []cid.Cid) map[cid.Cid]bool {
	out := make(map[cid.Cid]bool, len(cids))
	for _, c := range cids {
		if has, err := w.local.Has(ctx, c); err == nil && has {
			out[c] = true
		}
	}
	return out
}

// getRoot gets the root node through the session, asking again on a
// renewed session until the fetch ends.
func (w *walker) getRoot(ctx context.Context, root cid.Cid) (ipld.Node, error) {
	held := w.held(ctx, []cid.Cid{root})[root]
	for {
		ng, gen := w.sessions.current()
		nd, err := ng.Get(ctx, root)
		if err == nil && !held {
			w.received.Add(uint64(len(nd.RawData())))
		}
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
	w.pmu.Lock()
	defer w.pmu.Unlock()
	w.done += uint64(n)
	if w.progress != nil {
		w.progress(api.Progress{Done: min(w.done, w.total), Total: w.total})
	}
}
