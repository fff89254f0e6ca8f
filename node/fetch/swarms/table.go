// Package swarms is the fetch engine's side of the have protocol
// (docs/swarm.md): the table of the roots this node exchanges pieces of
// with its neighbours — those it fetches and those it holds whole — with
// one have stream per neighbour and root, a fetch's part in its root's
// swarm (neighbours, requests as swarm.Picker says, announcements), and
// super-seeding through the bulk server (swarm.Seeder, told of requests
// by a protocol.BulkObserver). Package fetch calls it with the leaves of
// a root once their inner nodes are local; the piece policy itself is
// protocol/swarm.
package swarms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/protocol/swarm"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of the swarm table.
const (
	// swarmTick is how often a super-seeder makes offers without an event
	// to prompt it, and a fetch looks for silent peers.
	swarmTick = 250 * time.Millisecond
	// maxSwarmDepth bounds the depth of a DAG whose pieces are listed.
	maxSwarmDepth = 64
	// maxHeldSwarms bounds the roots held whole that the table keeps
	// streams for at once (a peer may ask about any pinned root).
	maxHeldSwarms = 64
	// heldLinger is how long a root held whole stays in the table with no
	// neighbour.
	heldLinger = 30 * time.Second
)

// errTooManyPieces: a root has more leaves than the have protocol numbers.
var errTooManyPieces = fmt.Errorf("more than %d pieces", protocol.MaxHavePieces)

// Table is the engine's table of swarms, by root. It is safe for
// concurrent use.
type Table struct {
	host  host.Host
	st    *store.Store
	guard *protocol.Guard
	// refuse is the engine's Config.Refuse (nil: none).
	refuse func(cid.Cid) error
	// superSeed: roots held whole are super-seeded (swarm.Seeder).
	superSeed bool
	log       *slog.Logger

	mu    sync.Mutex
	roots map[cid.Cid]*swarmRoot
}

// swarmRoot is the swarm of one root: its pieces, what this node holds of
// them, and its neighbours.
type swarmRoot struct {
	t      *Table
	root   cid.Cid
	pieces []cid.Cid
	// index lists the pieces of each leaf (a leaf may occur twice).
	index map[cid.Cid][]int

	mu    sync.Mutex
	have  *swarm.Bitfield
	peers map[peer.ID]*swarmPeer
	// fetch is the fetch filling this root, nil once it ended or for a
	// root held whole.
	fetch *swarmFetch
	// seeder super-seeds a root held whole; kick prompts its offers.
	seeder *swarm.Seeder[peer.ID]
	kick   chan struct{}
	// gone is closed when the root leaves the table.
	gone     chan struct{}
	goneOnce sync.Once
}

// swarmPeer is one neighbour in a swarm: its have stream and what it
// announced.
type swarmPeer struct {
	st *protocol.HaveStream
	// opener is the side that opened the stream: of two streams between
	// the same pair, both keep the one the smaller peer ID opened.
	opener peer.ID
	has    *swarm.Bitfield
	costly bool
	// pending are pieces to announce; signal wakes the sender.
	mu      sync.Mutex
	pending []int
	signal  chan struct{}
	// wake prompts the fetch's worker for this peer to ask for more.
	wake chan struct{}
	// closed is closed when the peer leaves the swarm.
	closed chan struct{}
}

// Config is what a Table needs.
type Config struct {
	// Host speaks the have and bulk protocols.
	Host host.Host
	// Store holds the roots and receives nothing from the table itself
	// (the caller's put does).
	Store *store.Store
	// Guard, if set, hears of peers that send bad data.
	Guard *protocol.Guard
	// Refuse, if set, refuses a root (the gate).
	Refuse func(cid.Cid) error
	// SuperSeed makes the node super-seed the roots it holds whole.
	SuperSeed bool
	// Log receives the table's logs; it must not be nil.
	Log *slog.Logger
}

// New returns an empty table on cfg.
func New(cfg Config) *Table {
	return &Table{host: cfg.Host, st: cfg.Store, guard: cfg.Guard, refuse: cfg.Refuse,
		superSeed: cfg.SuperSeed, log: cfg.Log, roots: make(map[cid.Cid]*swarmRoot)}
}

// listPieces lists the pieces of root — its raw leaves in depth-first link
// order — from dag, which must hold every inner node.
func listPieces(ctx context.Context, dag ipld.NodeGetter, root cid.Cid) ([]cid.Cid, error) {
	var out []cid.Cid
	var visit func(c cid.Cid, depth int) error
	visit = func(c cid.Cid, depth int) error {
		if c.Prefix().Codec == cid.Raw {
			if len(out) >= protocol.MaxHavePieces {
				return errTooManyPieces
			}
			out = append(out, c)
			return nil
		}
		if depth > maxSwarmDepth {
			return fmt.Errorf("%s: DAG deeper than %d", c, maxSwarmDepth)
		}
		nd, err := dag.Get(ctx, c)
		if err != nil {
			return err
		}
		for _, l := range nd.Links() {
			if err := visit(l.Cid, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root, 0); err != nil {
		return nil, fmt.Errorf("list the pieces of %s: %w", root, err)
	}
	return out, nil
}

// newSwarmRoot returns the swarm of root with pieces, holding none.
func (t *Table) newSwarmRoot(root cid.Cid, pieces []cid.Cid) *swarmRoot {
	sr := &swarmRoot{t: t, root: root, pieces: pieces, index: make(map[cid.Cid][]int, len(pieces)),
		have: swarm.NewBitfield(len(pieces)), peers: make(map[peer.ID]*swarmPeer),
		kick: make(chan struct{}, 1), gone: make(chan struct{})}
	for x, c := range pieces {
		sr.index[c] = append(sr.index[c], x)
	}
	return sr
}

// held returns the swarm of a root this node holds whole, adding it to the
// table, or nil if the node does not hold root, refuses it, or keeps too
// many such swarms already.
func (t *Table) held(root cid.Cid) *swarmRoot {
	t.mu.Lock()
	sr, ok := t.roots[root]
	n := len(t.roots)
	t.mu.Unlock()
	if ok {
		return sr
	}
	if n >= maxHeldSwarms || (t.refuse != nil && t.refuse(root) != nil) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), protocol.HaveHelloTimeout)
	defer cancel()
	if pinned, err := t.st.IsPinned(ctx, root); err != nil || !pinned {
		return nil
	}
	pieces, err := listPieces(ctx, t.st.LocalDAG(), root)
	if err != nil || len(pieces) == 0 {
		return nil
	}
	sr = t.newSwarmRoot(root, pieces)
	sr.have = swarm.FullBitfield(len(pieces))
	if t.superSeed {
		sr.seeder = swarm.NewSeeder[peer.ID](swarm.SeederConfig{Pieces: len(pieces), Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if other, ok := t.roots[root]; ok {
		return other
	}
	t.roots[root] = sr
	go sr.tend()
	return sr
}

// Close drops every swarm: it closes the have streams. Fetches still
// running carry on without their swarms.
func (t *Table) Close() {
	t.mu.Lock()
	roots := slices.Collect(maps.Values(t.roots))
	t.mu.Unlock()
	for _, sr := range roots {
		t.drop(sr)
	}
}

// drop removes sr from the table and closes its streams.
func (t *Table) drop(sr *swarmRoot) {
	t.mu.Lock()
	if t.roots[sr.root] == sr {
		delete(t.roots, sr.root)
	}
	t.mu.Unlock()
	sr.goneOnce.Do(func() { close(sr.gone) })
	sr.mu.Lock()
	peers := slices.Collect(maps.Values(sr.peers))
	sr.mu.Unlock()
	for _, sp := range peers {
		sp.st.Close()
	}
}

// Accept is the have protocol's HaveAccept: this node is in the swarm of a
// root it fetches or holds whole, unless it has MaxNeighbors there or both
// sides hold every piece.
func (t *Table) Accept(remote peer.ID, theirs protocol.Hello) (protocol.Hello, bool) {
	t.mu.Lock()
	sr := t.roots[theirs.Root]
	t.mu.Unlock()
	if sr == nil {
		sr = t.held(theirs.Root)
	}
	if sr == nil || len(sr.pieces) != theirs.Pieces {
		return protocol.Hello{}, false
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if _, ok := sr.peers[remote]; !ok && len(sr.peers) >= swarm.MaxNeighbors {
		return protocol.Hello{}, false
	}
	if sr.have.Full() && theirs.Holds().Full() {
		return protocol.Hello{}, false
	}
	return sr.helloLocked(), true
}

// Run is the have protocol's handler once a stream is accepted.
func (t *Table) Run(st *protocol.HaveStream) {
	t.mu.Lock()
	sr := t.roots[st.Theirs.Root]
	t.mu.Unlock()
	if sr == nil {
		st.Reset()
		return
	}
	// Pieces got between our HELLO and now are announced by serve: the
	// HELLO said at least what the stream's snapshot says. Without one,
	// announcing everything held again is harmless (repeats are ignored).
	sr.serve(st, st.Peer(), nil, nil)
}

// helloLocked is this node's HELLO for the root. sr.mu is held.
func (sr *swarmRoot) helloLocked() protocol.Hello {
	h := protocol.Hello{Root: sr.root, Pieces: len(sr.pieces)}
	switch {
	case sr.seeder != nil:
		h.SuperSeed = true
	case sr.have.Full():
		h.Complete = true
	default:
		h.Have = sr.have.Clone()
	}
	return h
}

// serve runs the swarm with the peer on st until the stream ends. opener
// is who opened it; snap is what our HELLO on it announced (nil: unknown);
// joined, if set, is called once the peer is a neighbour or turned away.
func (sr *swarmRoot) serve(st *protocol.HaveStream, opener peer.ID, snap *swarm.Bitfield, joined func()) {
	p := st.Peer()
	sp := &swarmPeer{st: st, opener: opener, has: st.Theirs.Holds().Clone(), costly: st.Theirs.SuperSeed,
		signal: make(chan struct{}, 1), wake: make(chan struct{}, 1), closed: make(chan struct{})}
	ok := sr.attach(p, sp, snap)
	if joined != nil {
		joined()
	}
	if !ok {
		st.Close()
		return
	}
	go sp.send()
	sr.recv(p, sp)
	sr.detach(p, sp)
}

// attach adds sp as the neighbour p, keeping the stream the smaller peer
// ID opened if there is one already, and tells the fetch or the seeder.
func (sr *swarmRoot) attach(p peer.ID, sp *swarmPeer, snap *swarm.Bitfield) bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if old := sr.peers[p]; old != nil {
		if sp.opener >= old.opener {
			return false
		}
		sr.removeLocked(p, old)
		old.st.Close()
	}
	select {
	case <-sr.gone:
		return false
	default:
	}
	sr.peers[p] = sp
	if sr.seeder == nil && !sr.have.Full() || snap != nil {
		// What we got since the HELLO went out (or all, not knowing).
		sr.have.Each(func(x int) {
			if snap == nil || !snap.Has(x) {
				sp.pending = append(sp.pending, x)
			}
		})
		sp.notify()
	}
	if f := sr.fetch; f != nil {
		f.picker.AddPeer(p, sp.has, swarm.PeerOpts{Costly: sp.costly})
		go sr.work(f, p, sp)
	}
	if sr.seeder != nil {
		sr.seeder.AddPeer(p, sp.has)
		sr.kickSeeder()
	}
	return true
}

// detach removes the neighbour p once its stream ended.
func (sr *swarmRoot) detach(p peer.ID, sp *swarmPeer) {
	sr.mu.Lock()
	if sr.peers[p] == sp {
		sr.removeLocked(p, sp)
	}
	empty := len(sr.peers) == 0 && sr.fetch == nil
	sr.mu.Unlock()
	if empty {
		sr.t.drop(sr)
	}
}

// removeLocked forgets the neighbour p. sr.mu is held.
func (sr *swarmRoot) removeLocked(p peer.ID, sp *swarmPeer) {
	delete(sr.peers, p)
	close(sp.closed)
	if f := sr.fetch; f != nil {
		f.picker.RemovePeer(p)
		sr.wakeAllLocked()
	}
	if sr.seeder != nil {
		sr.seeder.RemovePeer(p)
		sr.kickSeeder()
	}
}

// recv reads the peer's HAVEs until the stream ends, or until both sides
// hold every piece.
func (sr *swarmRoot) recv(p peer.ID, sp *swarmPeer) {
	for {
		xs, err := sp.st.Recv()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				sr.t.log.Debug("have stream ended", "peer", p.String(), "root", sr.root.String(), "err", err)
			}
			return
		}
		sr.mu.Lock()
		for _, x := range xs {
			sp.has.Set(x)
			if f := sr.fetch; f != nil {
				f.picker.PeerHas(p, x)
			}
			if sr.seeder != nil {
				sr.seeder.PeerHas(p, x)
			}
		}
		both := sp.has.Full() && sr.have.Full() && sr.fetch == nil
		sr.mu.Unlock()
		poke(sp.wake)
		if sr.seeder != nil {
			sr.kickSeeder()
		}
		if both {
			sp.st.Close()
			return
		}
	}
}

// send writes the pending announcements to the peer, and a keep-alive
// when there were none for protocol.HaveKeepAlive, until the peer leaves.
func (sp *swarmPeer) send() {
	tick := time.NewTicker(protocol.HaveKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-sp.closed:
			return
		case <-sp.signal:
		case <-tick.C:
		}
		sp.mu.Lock()
		xs := sp.pending
		sp.pending = nil
		sp.mu.Unlock()
		if err := sp.st.Send(xs...); err != nil {
			sp.st.Reset()
			return
		}
	}
}

// announce queues xs for the peer. sp.mu must not be held.
func (sp *swarmPeer) announce(xs ...int) {
	sp.mu.Lock()
	sp.pending = append(sp.pending, xs...)
	sp.mu.Unlock()
	sp.notify()
}

func (sp *swarmPeer) notify() { poke(sp.signal) }

// poke signals c without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// announceLocked tells every neighbour of the pieces xs. sr.mu is held.
func (sr *swarmRoot) announceLocked(xs []int) {
	if len(xs) == 0 || sr.seeder != nil {
		return
	}
	for _, sp := range sr.peers {
		sp.announce(xs...)
	}
}

// wakeAllLocked prompts every neighbour's worker. sr.mu is held.
func (sr *swarmRoot) wakeAllLocked() {
	for _, sp := range sr.peers {
		poke(sp.wake)
	}
}

func (sr *swarmRoot) kickSeeder() { poke(sr.kick) }

// tend looks after a root held whole until it leaves the table: it sends a
// super-seeder's offers, as HAVEs to one peer each, after every event that
// may free a slot and every swarmTick, and drops the root once it had no
// neighbour for heldLinger.
func (sr *swarmRoot) tend() {
	tick := time.NewTicker(swarmTick)
	defer tick.Stop()
	lonely := time.Now()
	for {
		select {
		case <-sr.gone:
			return
		case <-sr.kick:
		case <-tick.C:
		}
		now := time.Now()
		sr.mu.Lock()
		if sr.seeder != nil {
			for _, o := range sr.seeder.Offers(now) {
				if sp := sr.peers[o.Peer]; sp != nil {
					sp.announce(o.Piece)
				}
			}
		}
		if len(sr.peers) > 0 || sr.fetch != nil {
			lonely = now
		}
		sr.mu.Unlock()
		if now.Sub(lonely) >= heldLinger {
			sr.t.drop(sr)
			return
		}
	}
}

// seeding returns the super-seeded roots: none, without taking the lock,
// on a node that does not super-seed (every bulk block served asks).
func (t *Table) seeding() []*swarmRoot {
	if !t.superSeed {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*swarmRoot
	for _, sr := range t.roots {
		if sr.seeder != nil {
			out = append(out, sr)
		}
	}
	return out
}

// Requested implements protocol.BulkObserver: a super-seeder counts the
// requests for its pieces.
func (t *Table) Requested(p peer.ID, cids []cid.Cid) {
	for _, sr := range t.seeding() {
		sr.mu.Lock()
		for _, c := range cids {
			for _, x := range sr.index[c] {
				sr.seeder.Requested(p, x)
			}
		}
		sr.mu.Unlock()
	}
}

// Served implements protocol.BulkObserver.
func (t *Table) Served(p peer.ID, c cid.Cid, sent bool) {
	now := time.Now()
	for _, sr := range t.seeding() {
		xs, ok := sr.index[c]
		if !ok {
			continue
		}
		sr.mu.Lock()
		for _, x := range xs {
			if sent {
				sr.seeder.Sent(p, x, now)
			} else {
				sr.seeder.Unserved(p, x)
			}
		}
		sr.mu.Unlock()
		sr.kickSeeder()
	}
}
