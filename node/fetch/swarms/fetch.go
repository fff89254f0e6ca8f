package swarms

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/protocol/swarm"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A fetch in a swarm (docs/swarm.md): once the inner nodes of a root are
// local, the fetch knows its pieces, joins the swarm of its neighbours that
// speak the have protocol, and asks each of them for pieces as
// swarm.Picker says — rarest first, a super-seeding mirror only for pieces
// the room lacks — over the bulk protocol, announcing each piece to every
// neighbour as it lands. What the swarm does not deliver (no neighbour
// joined, or none delivered for swarmGiveUp) is fetched as before: bulk
// from seeders, bitswap from anyone.
const (
	// swarmGiveUp ends a fetch's swarm phase when no piece arrived for
	// this long.
	swarmGiveUp = 10 * time.Second
	// swarmRescan is how often a fetch looks for new neighbours, and
	// swarmRetry how long it waits before asking a peer that refused
	// again (it may have started fetching the root since).
	swarmRescan = time.Second
	swarmRetry  = 5 * time.Second
	// swarmRequests bounds the bulk requests in flight to one peer; a
	// new one is sent when the peer's pipeline is half empty.
	swarmRequests = 2
	// swarmJoinWait bounds the wait for the first neighbours' HELLOs
	// before the fetch decides whether it runs in the swarm; later ones
	// join it anyway.
	swarmJoinWait = 2 * time.Second
	// swarmErrorPause is how long a peer whose request failed rests.
	swarmErrorPause = time.Second
)

// swarmFetch is a fetch's state in a swarm. Its fields other than those
// set at the start are guarded by the swarmRoot's mutex.
type swarmFetch struct {
	ctx    context.Context
	picker *swarm.Picker[peer.ID]
	// put writes a verified leaf where the fetch keeps it; got counts its
	// bytes (progress, pacing, the stall clock).
	put func(ctx context.Context, b blocks.Block) error
	got func(ctx context.Context, n int) error
	// writing are the leaves being written (a duplicate that arrives
	// meanwhile is dropped); last is when a piece last arrived.
	writing map[cid.Cid]bool
	last    time.Time
	// tried are peers asked to join, with when; refused counts those
	// that did not.
	tried   map[peer.ID]time.Time
	refused int
	// ready is closed once the first neighbours joined and the fetch
	// knows whether it runs in the swarm (seedersOnly).
	ready chan struct{}
	done  chan struct{}
	fail  chan error
}

// Around reports whether a connected peer speaks the have
// protocol.
func (t *Table) Around() bool {
	ps := t.host.Peerstore()
	for _, p := range t.host.Network().Peers() {
		if ok, _ := ps.SupportsProtocols(p, protocol.HaveID); len(ok) > 0 {
			return true
		}
	}
	return false
}

// Fetch gets the pieces of root not held (listed from the local DAG, whose
// inner nodes must be local) from the swarm, and returns the leaves it did
// not get from it: those held before (for the caller to read into its
// sink) and those the swarm did not deliver. leaves are the leaves to fetch, returned as they are when
// root is not for a swarm. put and got are as in swarmFetch.
func (t *Table) Fetch(ctx context.Context, root cid.Cid, leaves []cid.Cid, put func(context.Context, blocks.Block) error, got func(context.Context, int) error) ([]cid.Cid, error) {
	pieces, err := listPieces(ctx, t.st.LocalDAG(), root)
	if err != nil || len(pieces) < 2 {
		// Not worth a swarm, or not one the have protocol can number.
		return leaves, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &swarmFetch{ctx: ctx, put: put, got: got, writing: make(map[cid.Cid]bool), last: time.Now(),
		tried: make(map[peer.ID]time.Time), ready: make(chan struct{}), done: make(chan struct{}), fail: make(chan error, 1),
		picker: swarm.NewPicker[peer.ID](swarm.PickerConfig{Pieces: len(pieces), Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))})}
	// Leaves held already (an earlier fetch's, or another root's) still
	// go to the sink, read from the store by the usual walk.
	var held []cid.Cid
	seen := make(map[cid.Cid]bool)
	local := swarm.NewBitfield(len(pieces))
	bs := t.st.Blockstore()
	for x, c := range pieces {
		if has, err := bs.Has(ctx, c); err == nil && has {
			f.picker.SetHave(x)
			local.Set(x)
			if !seen[c] {
				seen[c] = true
				held = append(held, c)
			}
		}
	}
	if f.picker.Done() {
		return held, nil
	}
	sr := t.startFetch(root, pieces, f, local)
	if sr == nil {
		// Another fetch of the same root on this node has the swarm.
		return leaves, nil
	}
	err = sr.run(f)
	sr.mu.Lock()
	sr.fetch = nil
	empty := len(sr.peers) == 0
	sr.mu.Unlock()
	if empty || err != nil {
		t.drop(sr)
	}
	return append(held, sr.missing()...), err
}

// startFetch makes f the fetch of root's swarm, which it adds to the table or,
// left by an earlier fetch, takes over with its neighbours. It returns nil
// if another fetch runs the swarm.
func (t *Table) startFetch(root cid.Cid, pieces []cid.Cid, f *swarmFetch, local *swarm.Bitfield) *swarmRoot {
	t.mu.Lock()
	sr := t.roots[root]
	if sr == nil {
		sr = t.newSwarmRoot(root, pieces)
		t.roots[root] = sr
	}
	t.mu.Unlock()
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.fetch != nil || len(sr.pieces) != len(pieces) {
		return nil
	}
	// What this node holds is what the store holds now (an earlier
	// fetch's pieces may be gone with its partial file).
	var fresh []int
	local.Each(func(x int) {
		if !sr.have.Has(x) {
			fresh = append(fresh, x)
		}
	})
	sr.have = local.Clone()
	sr.announceLocked(fresh)
	sr.fetch = f
	for p, sp := range sr.peers {
		f.picker.AddPeer(p, sp.has, swarm.PeerOpts{Costly: sp.costly})
		go sr.work(f, p, sp)
	}
	return sr
}

// Finished tells the swarm of root that its fetch ended: with every piece
// (ok), the node announces the pieces it got outside the swarm and seeds
// the rest of the room; otherwise it leaves the swarm.
func (t *Table) Finished(root cid.Cid, ok bool) {
	t.mu.Lock()
	sr := t.roots[root]
	t.mu.Unlock()
	if sr == nil {
		return
	}
	sr.mu.Lock()
	if sr.fetch != nil {
		// Another fetch of root on this node runs the swarm.
		sr.mu.Unlock()
		return
	}
	if !ok {
		sr.mu.Unlock()
		t.drop(sr)
		return
	}
	var xs []int
	for x := range sr.pieces {
		if sr.have.Set(x) {
			xs = append(xs, x)
		}
	}
	sr.announceLocked(xs)
	sr.mu.Unlock()
}

// missing lists the leaves of the pieces not held.
func (sr *swarmRoot) missing() []cid.Cid {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	seen := make(map[cid.Cid]bool)
	var out []cid.Cid
	for x, c := range sr.pieces {
		if !sr.have.Has(x) && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// run drives the fetch until every piece is held, it fails, or the swarm
// delivered nothing for swarmGiveUp.
func (sr *swarmRoot) run(f *swarmFetch) error {
	tick := time.NewTicker(swarmTick)
	defer tick.Stop()
	rescanned := time.Now()
	waitUpTo(sr.findNeighbours(f), swarmJoinWait)
	if sr.seedersOnly(f) {
		sr.t.log.Debug("only seeders in the swarm: fetching from them in bulk", "root", sr.root.String())
		return nil
	}
	for {
		select {
		case <-f.done:
			return nil
		case err := <-f.fail:
			return err
		case <-f.ctx.Done():
			return f.ctx.Err()
		case now := <-tick.C:
			if now.Sub(rescanned) >= swarmRescan {
				rescanned = now
				sr.findNeighbours(f)
			}
			sr.mu.Lock()
			expired := f.picker.Expired(now)
			starved := f.picker.Starved()
			idle := now.Sub(f.last)
			sr.mu.Unlock()
			if len(expired) > 0 || len(starved) > 0 {
				sr.mu.Lock()
				sr.wakeAllLocked()
				sr.mu.Unlock()
			}
			if idle >= swarmGiveUp {
				sr.t.log.Debug("swarm delivered nothing; fetching the rest from seeders and over bitswap",
					"root", sr.root.String(), "idle", idle)
				return nil
			}
		}
	}
}

// waitUpTo waits for wg, at most for d.
func waitUpTo(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// seedersOnly reports whether every connected peer that speaks the have
// protocol joined the swarm and holds every piece, none super-seeding:
// then the usual bulk fetch spreads the leaves over them (several
// requests per seeder, no per-piece bookkeeping) and the swarm has
// nothing to add. The fetch then leaves the swarm's requests to it; its
// workers, waiting for the verdict, stop.
func (sr *swarmRoot) seedersOnly(f *swarmFetch) bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	defer close(f.ready)
	if len(sr.peers) == 0 || f.refused > 0 {
		return false
	}
	for _, sp := range sr.peers {
		if !sp.has.Full() || sp.costly {
			return false
		}
	}
	sr.fetch = nil
	return true
}

// findNeighbours opens have streams to the connected peers that speak the have
// protocol and are not neighbours yet, up to swarm.MaxNeighbors. The
// WaitGroup is done when each has joined or refused.
func (sr *swarmRoot) findNeighbours(f *swarmFetch) *sync.WaitGroup {
	t := sr.t
	ps := t.host.Peerstore()
	now := time.Now()
	sr.mu.Lock()
	room := swarm.MaxNeighbors - len(sr.peers)
	var cands []peer.ID
	for _, p := range t.host.Network().Peers() {
		if room <= 0 {
			break
		}
		if _, ok := sr.peers[p]; ok || now.Sub(f.tried[p]) < swarmRetry {
			continue
		}
		if ok, _ := ps.SupportsProtocols(p, protocol.HaveID); len(ok) == 0 {
			continue
		}
		f.tried[p] = now
		cands = append(cands, p)
		room--
	}
	sr.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range cands {
		wg.Add(1)
		go sr.open(f, p, wg.Done)
	}
	return &wg
}

// open joins p's swarm and serves the stream until it ends; joined is
// called once p is a neighbour or refused.
func (sr *swarmRoot) open(f *swarmFetch, p peer.ID, joined func()) {
	sr.mu.Lock()
	hello := sr.helloLocked()
	sr.mu.Unlock()
	ctx, cancel := context.WithTimeout(f.ctx, protocol.HaveHelloTimeout)
	st, err := protocol.OpenHave(ctx, sr.t.host, p, hello)
	cancel()
	if err != nil {
		sr.mu.Lock()
		f.refused++
		sr.mu.Unlock()
		joined()
		sr.t.log.Debug("peer not in the swarm", "peer", p.String(), "root", sr.root.String(), "err", err)
		return
	}
	sr.serve(st, sr.t.host.ID(), hello.Have, joined)
}

// work asks p for pieces while the fetch runs and p is a neighbour: up to
// swarmRequests bulk requests at once, a new one when p's pipeline is
// half empty.
func (sr *swarmRoot) work(f *swarmFetch, p peer.ID, sp *swarmPeer) {
	select {
	case <-f.ready:
	case <-f.ctx.Done():
		return
	}
	ended := make(chan error, swarmRequests)
	active := 0
	for {
		var xs []int
		sr.mu.Lock()
		if sr.fetch != f || sr.peers[p] != sp {
			sr.mu.Unlock()
			return
		}
		if active < swarmRequests && f.picker.Inflight(p) <= f.picker.Depth(p)/2 {
			xs = f.picker.Next(p, time.Now())
		}
		sr.mu.Unlock()
		if len(xs) > 0 {
			active++
			go func() { ended <- sr.request(f, p, xs) }()
			continue
		}
		select {
		case <-sp.wake:
		case <-sp.closed:
			return
		case <-f.ctx.Done():
			return
		case err := <-ended:
			active--
			if err != nil {
				select {
				case <-time.After(swarmErrorPause):
				case <-f.ctx.Done():
					return
				}
			}
		case <-time.After(swarmTick):
		}
	}
}

// request asks p for the pieces xs over the bulk protocol and reports how
// each ended to the picker.
func (sr *swarmRoot) request(f *swarmFetch, p peer.ID, xs []int) error {
	cids := make([]cid.Cid, len(xs))
	asked := make(map[cid.Cid][]int, len(xs))
	for i, x := range xs {
		cids[i] = sr.pieces[x]
		asked[cids[i]] = append(asked[cids[i]], x)
	}
	missing, err := protocol.BulkGet(f.ctx, sr.t.host, p, cids, func(b blocks.Block) error {
		return sr.land(f, p, b, asked)
	})
	sr.mu.Lock()
	defer sr.mu.Unlock()
	defer sr.wakeAllLocked()
	for _, c := range missing {
		for _, x := range asked[c] {
			f.picker.Failed(p, x, true)
		}
		delete(asked, c)
	}
	for _, left := range asked {
		for _, x := range left {
			f.picker.Failed(p, x, false)
		}
	}
	var local localError
	switch {
	case errors.As(err, &local):
		select {
		case f.fail <- local.err:
		default:
		}
	case errors.Is(err, protocol.ErrBulkCorrupt):
		if g := sr.t.guard; g != nil {
			g.ReportBulk(p, 0)
		}
		if sp := sr.peers[p]; sp != nil {
			sp.st.Reset()
		}
	}
	return err
}

// land takes a verified leaf from p: unless another copy is held or being
// written, it writes it, marks its pieces held, and announces them.
func (sr *swarmRoot) land(f *swarmFetch, p peer.ID, b blocks.Block, asked map[cid.Cid][]int) error {
	c, now := b.Cid(), time.Now()
	xs := sr.index[c]
	sr.mu.Lock()
	f.picker.Progress(p, now)
	dup := f.writing[c] || (len(xs) > 0 && sr.have.Has(xs[0]))
	if dup {
		for _, x := range asked[c] {
			f.picker.Received(p, x, int64(len(b.RawData())), now)
		}
		delete(asked, c)
	} else {
		f.writing[c] = true
	}
	sr.mu.Unlock()
	if dup {
		return nil
	}
	if err := f.put(f.ctx, b); err != nil {
		return localError{err}
	}
	sr.mu.Lock()
	delete(f.writing, c)
	f.last = now
	for _, x := range asked[c] {
		f.picker.Received(p, x, int64(len(b.RawData())), now)
	}
	delete(asked, c)
	var fresh []int
	for _, x := range xs {
		f.picker.SetHave(x)
		if sr.have.Set(x) {
			fresh = append(fresh, x)
		}
	}
	sr.announceLocked(fresh)
	if sp := sr.peers[p]; sp != nil {
		poke(sp.wake) // a slot in p's pipeline is free
	}
	if f.picker.Done() {
		select {
		case <-f.done:
		default:
			close(f.done)
		}
	}
	sr.mu.Unlock()
	return f.got(f.ctx, len(b.RawData()))
}

// localError marks an error of the receiving side (the caller's put),
// which fails the fetch rather than the request.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }
