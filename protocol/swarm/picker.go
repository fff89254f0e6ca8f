package swarm

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Defaults of PickerConfig.
const (
	// DefaultPieceBytes is the nominal size of a piece: one leaf of the
	// unixfs-v1-2025 profile.
	DefaultPieceBytes = 1 << 20
	// DefaultRandomFirst is how many pieces a fetcher picks at random
	// before it turns to rarest first: with nothing to offer yet, any
	// piece is worth more than waiting for a rare one (BEP 3).
	DefaultRandomFirst = 4
	// DefaultInitialDepth is the requests a fetcher keeps in flight to a
	// peer whose rate it has not measured yet.
	DefaultInitialDepth = 2
	// DefaultMaxDepth bounds the requests in flight to one peer (32 MiB
	// at 1 MiB pieces: enough for 1 GB/s at DefaultQueueTime).
	DefaultMaxDepth = 32
	// DefaultQueueTime is how much of a peer's measured rate is kept in
	// flight: depth = rate × QueueTime / PieceBytes. Enough that a peer
	// never waits for the next request, little enough that a slow peer
	// holds few pieces others could serve (libtorrent's request queue
	// time is 3 s).
	DefaultQueueTime = 2 * time.Second
	// DefaultSnubAfter is how long a peer may send no byte while it has
	// requests in flight. Then its requests go back to the pool for
	// other peers and it gets one request at a time until it delivers
	// (BitTorrent's anti-snubbing; allmende's bulk stall limit is 5 s).
	// A slow peer is not a snubbing one: bytes that arrive (Progress)
	// count, not only whole pieces.
	// A snubbed peer's pieces do not count as held in the room, so a
	// costly source may be asked for them.
	DefaultSnubAfter = 5 * time.Second
	// DefaultEndgameDup is how many peers may be asked for one piece at
	// once in the end game, when every missing piece is requested.
	DefaultEndgameDup = 2
	// rateDecay weighs the past in a peer's rate: each piece received
	// keeps this share of the earlier bytes and busy time.
	rateDecay = 0.8
)

// PickerConfig configures a Picker. Zero fields take the defaults above.
type PickerConfig struct {
	// Pieces is the number of pieces of the root (required, >= 0).
	Pieces int
	// Rand is the source of every random choice (required): a seeded
	// one makes a run repeatable.
	Rand *rand.Rand
	// PieceBytes is the nominal piece size, for depths from rates.
	PieceBytes int64
	// RandomFirst is how many pieces are picked at random first.
	RandomFirst int
	// InitialDepth, MaxDepth and QueueTime size each peer's pipeline.
	InitialDepth, MaxDepth int
	QueueTime              time.Duration
	// SnubAfter is how long a peer may deliver nothing while asked.
	SnubAfter time.Duration
	// EndgameDup is how many peers may be asked for a piece at once in
	// the end game.
	EndgameDup int
}

func (c *PickerConfig) setDefaults() {
	if c.PieceBytes <= 0 {
		c.PieceBytes = DefaultPieceBytes
	}
	if c.RandomFirst <= 0 {
		c.RandomFirst = DefaultRandomFirst
	}
	if c.InitialDepth <= 0 {
		c.InitialDepth = DefaultInitialDepth
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.QueueTime <= 0 {
		c.QueueTime = DefaultQueueTime
	}
	if c.SnubAfter <= 0 {
		c.SnubAfter = DefaultSnubAfter
	}
	if c.EndgameDup <= 0 {
		c.EndgameDup = DefaultEndgameDup
	}
}

// PeerOpts describe a peer to a Picker.
type PeerOpts struct {
	// Costly marks a source whose uplink the room should spare: a
	// super-seeding mirror or a peer outside the LAN. A costly peer is
	// asked only for pieces no other peer announces.
	Costly bool
}

// Request is a piece asked of a peer.
type Request[P comparable] struct {
	Peer  P
	Piece int
}

// Picker is a fetcher's piece policy for one root: it knows which piece
// each peer announces and which requests are in flight, and says what to
// ask each peer for next — rarest first among the peers that have a piece,
// the first few pieces at random, pieces only costly peers announce from
// those, duplicates only in the end game — and how many requests each peer
// gets (from its measured rate). It does no I/O and reads no clock: every
// call that depends on time is given it. P identifies a peer. A Picker is
// not safe for concurrent use.
type Picker[P comparable] struct {
	cfg  PickerConfig
	rnd  *rand.Rand
	have *Bitfield
	rare *rarity
	// cheap is each piece's availability among peers neither costly nor
	// snubbed: a silent peer's pieces may be asked of a costly one.
	cheap []int32
	// inflight is the requests in flight for each piece.
	inflight []int32
	// unrequested is the pieces missing with no request in flight: the
	// end game starts when it reaches zero.
	unrequested int
	// peers are the peers in the order they came (a slice, so that runs
	// with the same seed repeat exactly); index finds one.
	peers []*pickPeer[P]
	index map[P]int
}

// pickPeer is what a Picker knows of one peer.
type pickPeer[P comparable] struct {
	id     P
	has    *Bitfield
	costly bool
	// reqs are the pieces asked of the peer, with when.
	reqs map[int]time.Time
	// busySince is when the peer last delivered or, if it had nothing
	// to do before, when it was last asked: the start of the wait.
	busySince time.Time
	// heard is when bytes last arrived from the peer (Progress), or
	// busySince if later: the anti-snubbing clock.
	heard time.Time
	// rateBytes and rateTime are decaying sums of bytes received and
	// time spent waiting for them.
	rateBytes, rateTime float64
	// snubbed: the peer let SnubAfter pass without delivering.
	snubbed bool
	// starved: the peer got fewer requests than its depth the last time
	// it was asked, so it may take pieces freed later.
	starved bool
}

// NewPicker returns a Picker for a root of cfg.Pieces pieces, holding
// none of them.
func NewPicker[P comparable](cfg PickerConfig) *Picker[P] {
	cfg.setDefaults()
	n := max(cfg.Pieces, 0)
	return &Picker[P]{
		cfg: cfg, rnd: cfg.Rand,
		have:        NewBitfield(n),
		rare:        newRarity(n, cfg.Rand),
		cheap:       make([]int32, n),
		inflight:    make([]int32, n),
		unrequested: n,
		index:       make(map[P]int),
	}
}

// Pieces is the number of pieces of the root.
func (k *Picker[P]) Pieces() int { return k.have.Len() }

// Have returns the pieces held (the caller must not change it).
func (k *Picker[P]) Have() *Bitfield { return k.have }

// Missing is the number of pieces not held yet.
func (k *Picker[P]) Missing() int { return k.have.Len() - k.have.Count() }

// Done reports whether every piece is held.
func (k *Picker[P]) Done() bool { return k.have.Full() }

// Endgame reports whether every missing piece is requested, so that
// further requests duplicate ones in flight.
func (k *Picker[P]) Endgame() bool { return k.unrequested == 0 && !k.Done() }

// SetHave records piece x as held without a request: found locally (a
// resumed fetch) or received from a peer unasked. It reports whether x
// was new.
func (k *Picker[P]) SetHave(x int) bool {
	if !k.have.Set(x) {
		return false
	}
	if k.inflight[x] == 0 {
		k.unrequested--
	}
	k.rare.remove(x)
	return true
}

// AddPeer adds peer p, announcing the pieces in has (nil: none yet; the
// Picker keeps its own copy). Adding a peer again replaces it.
func (k *Picker[P]) AddPeer(p P, has *Bitfield, opts PeerOpts) {
	if _, ok := k.index[p]; ok {
		k.RemovePeer(p)
	}
	ps := &pickPeer[P]{id: p, has: NewBitfield(k.have.Len()), costly: opts.Costly, reqs: make(map[int]time.Time)}
	k.index[p] = len(k.peers)
	k.peers = append(k.peers, ps)
	if has != nil && has.Len() == k.have.Len() {
		has.Each(func(x int) { k.PeerHas(p, x) })
	}
}

// PeerHas records that p announced piece x (a HAVE). Unknown peers and
// pieces out of range are ignored.
func (k *Picker[P]) PeerHas(p P, x int) {
	ps := k.peer(p)
	if ps == nil || !ps.has.Set(x) {
		return
	}
	k.rare.inc(x)
	if ps.cheap() {
		k.cheap[x]++
	}
}

// cheap reports whether the peer's pieces count as held in the room.
func (ps *pickPeer[P]) cheap() bool { return !ps.costly && !ps.snubbed }

// setSnubbed marks ps snubbed or not, keeping the room's counts.
func (k *Picker[P]) setSnubbed(ps *pickPeer[P], snubbed bool) {
	if ps.snubbed == snubbed || ps.costly {
		ps.snubbed = snubbed
		return
	}
	d := int32(1)
	if snubbed {
		d = -1
	}
	ps.has.Each(func(x int) { k.cheap[x] += d })
	ps.snubbed = snubbed
}

// RemovePeer forgets p (it left or was disconnected) and returns the
// pieces whose requests to p were in flight; they may be asked of others
// at once.
func (k *Picker[P]) RemovePeer(p P) []int {
	ps := k.peer(p)
	if ps == nil {
		return nil
	}
	freed := sortedKeys(ps.reqs)
	for _, x := range freed {
		k.dropRequest(ps, x)
	}
	ps.has.Each(func(x int) {
		k.rare.dec(x)
		if ps.cheap() {
			k.cheap[x]--
		}
	})
	i := k.index[p]
	last := len(k.peers) - 1
	k.peers[i] = k.peers[last]
	k.index[k.peers[i].id] = i
	k.peers = k.peers[:last]
	delete(k.index, p)
	return freed
}

// peer returns what is known of p, or nil.
func (k *Picker[P]) peer(p P) *pickPeer[P] {
	if i, ok := k.index[p]; ok {
		return k.peers[i]
	}
	return nil
}

// sortedKeys returns the pieces of reqs in increasing order.
func sortedKeys(reqs map[int]time.Time) []int {
	out := make([]int, 0, len(reqs))
	for x := range reqs {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// Peers is the number of peers known.
func (k *Picker[P]) Peers() int { return len(k.peers) }

// Interesting reports whether p announces a piece not held yet.
func (k *Picker[P]) Interesting(p P) bool {
	ps := k.peer(p)
	if ps == nil {
		return false
	}
	found := false
	k.rare.each(func(x int) bool {
		found = ps.has.Has(x)
		return !found
	})
	return found
}

// Inflight is the number of requests in flight to p.
func (k *Picker[P]) Inflight(p P) int {
	if ps := k.peer(p); ps != nil {
		return len(ps.reqs)
	}
	return 0
}

// Depth is how many requests p may have in flight now.
func (k *Picker[P]) Depth(p P) int {
	ps := k.peer(p)
	if ps == nil {
		return 0
	}
	return k.depth(ps)
}

func (k *Picker[P]) depth(ps *pickPeer[P]) int {
	switch {
	case ps.snubbed:
		return 1
	case ps.rateTime <= 0:
		return k.cfg.InitialDepth
	}
	rate := ps.rateBytes / ps.rateTime
	d := math.Ceil(rate * k.cfg.QueueTime.Seconds() / float64(k.cfg.PieceBytes))
	return int(min(max(d, 1), float64(k.cfg.MaxDepth)))
}

// Next returns the pieces to ask p for now, at most enough to fill p's
// pipeline, and records them as in flight. The caller sends them (one
// request may carry them all) and reports each piece back with Received
// or Failed.
func (k *Picker[P]) Next(p P, now time.Time) []int {
	ps := k.peer(p)
	if ps == nil {
		return nil
	}
	free := k.depth(ps) - len(ps.reqs)
	if free <= 0 {
		return nil
	}
	var out []int
	if k.have.Count() < k.cfg.RandomFirst {
		out = k.pickRandom(ps, min(free, k.cfg.RandomFirst-k.have.Count()))
	}
	if len(out) < free {
		out = k.pickRarest(ps, out, free)
	}
	if len(out) < free && k.Endgame() {
		out = k.pickEndgame(ps, out, free)
	}
	ps.starved = len(out) < free
	if len(out) > 0 && len(ps.reqs) == 0 {
		ps.busySince, ps.heard = now, now
	}
	for _, x := range out {
		ps.reqs[x] = now
		if k.inflight[x] == 0 {
			k.unrequested--
		}
		k.inflight[x]++
	}
	return out
}

// wants reports whether x may be asked of ps as a fresh request: ps has
// it, nobody is asked for it, and ps is not costly or no other peer has
// it.
func (k *Picker[P]) wants(ps *pickPeer[P], x int) bool {
	return ps.has.Has(x) && k.inflight[x] == 0 && (!ps.costly || k.cheap[x] == 0)
}

// pickRandom picks up to n pieces uniformly at random among those ps may
// be asked for.
func (k *Picker[P]) pickRandom(ps *pickPeer[P], n int) []int {
	out := make([]int, 0, n)
	seen := 0
	k.rare.each(func(x int) bool {
		if !k.wants(ps, x) {
			return true
		}
		seen++ // reservoir sampling of n out of seen
		if len(out) < n {
			out = append(out, x)
		} else if j := k.rnd.IntN(seen); j < n {
			out[j] = x
		}
		return true
	})
	return out
}

// pickRarest adds to out, up to free pieces, the rarest that ps may be
// asked for.
func (k *Picker[P]) pickRarest(ps *pickPeer[P], out []int, free int) []int {
	k.rare.each(func(x int) bool {
		if k.wants(ps, x) && !contains(out, x) {
			out = append(out, x)
		}
		return len(out) < free
	})
	return out
}

// pickEndgame adds to out pieces already asked of other peers, fewest
// askers first, that ps has and is not asked for.
func (k *Picker[P]) pickEndgame(ps *pickPeer[P], out []int, free int) []int {
	for dup := int32(1); dup < int32(k.cfg.EndgameDup) && len(out) < free; dup++ {
		k.rare.each(func(x int) bool {
			if k.inflight[x] == dup && ps.has.Has(x) && (!ps.costly || k.cheap[x] == 0) {
				if _, asked := ps.reqs[x]; !asked && !contains(out, x) {
					out = append(out, x)
				}
			}
			return len(out) < free
		})
	}
	return out
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Received records piece x, of size bytes and verified, as delivered by p
// at now. It returns the other requests for x still in flight (end game
// duplicates): the caller cancels them. A piece from a peer not asked for
// it counts too.
func (k *Picker[P]) Received(p P, x int, bytes int64, now time.Time) []Request[P] {
	if ps := k.peer(p); ps != nil {
		if _, asked := ps.reqs[x]; asked {
			k.dropRequest(ps, x)
			// Only asked pieces measure the rate: the wait for an
			// unasked one is not the peer's.
			wait := now.Sub(ps.busySince).Seconds()
			ps.rateBytes = ps.rateBytes*rateDecay + float64(bytes)
			ps.rateTime = ps.rateTime*rateDecay + max(wait, 0)
			ps.busySince, ps.heard = now, now
			k.setSnubbed(ps, false)
		}
		if !ps.has.Has(x) {
			k.PeerHas(p, x)
		}
	}
	if x < 0 || x >= k.have.Len() || !k.SetHave(x) {
		return nil
	}
	var cancel []Request[P]
	if k.inflight[x] > 0 {
		for _, qs := range k.peers {
			if _, asked := qs.reqs[x]; asked {
				k.dropRequest(qs, x)
				cancel = append(cancel, Request[P]{Peer: qs.id, Piece: x})
			}
		}
	}
	return cancel
}

// Progress records that bytes of a requested piece arrived from p at now:
// p is slow, perhaps, but not silent.
func (k *Picker[P]) Progress(p P, now time.Time) {
	if ps := k.peer(p); ps != nil && len(ps.reqs) > 0 && now.After(ps.heard) {
		ps.heard = now
	}
}

// Failed records that p did not deliver piece x: the request ended in an
// error, or, with missing, p said it does not hold x (p's announcement of
// x is then forgotten). The piece may be asked of others at once.
func (k *Picker[P]) Failed(p P, x int, missing bool) {
	ps := k.peer(p)
	if ps == nil {
		return
	}
	if _, asked := ps.reqs[x]; asked {
		k.dropRequest(ps, x)
	}
	if missing && ps.has.Clear(x) {
		k.rare.dec(x)
		if ps.cheap() {
			k.cheap[x]--
		}
	}
}

// dropRequest forgets the request for x in flight to ps.
func (k *Picker[P]) dropRequest(ps *pickPeer[P], x int) {
	delete(ps.reqs, x)
	k.inflight[x]--
	if k.inflight[x] == 0 && !k.have.Has(x) {
		k.unrequested++
	}
}

// Expired returns the requests of the peers that have sent no byte for
// SnubAfter while asked, and forgets them: the caller cancels them and
// the pieces may be asked of others. Such a peer is snubbed: one request
// at a time until it delivers again.
func (k *Picker[P]) Expired(now time.Time) []Request[P] {
	var out []Request[P]
	for _, ps := range k.peers {
		if len(ps.reqs) == 0 || now.Sub(ps.heard) < k.cfg.SnubAfter {
			continue
		}
		for _, x := range sortedKeys(ps.reqs) {
			k.dropRequest(ps, x)
			out = append(out, Request[P]{Peer: ps.id, Piece: x})
		}
		k.setSnubbed(ps, true)
	}
	return out
}

// Starved returns the peers that got fewer requests than they could take
// when last asked: after pieces were freed (Failed, Expired, RemovePeer),
// the caller asks them again with Next.
func (k *Picker[P]) Starved() []P {
	var out []P
	for _, ps := range k.peers {
		if ps.starved {
			out = append(out, ps.id)
		}
	}
	return out
}
