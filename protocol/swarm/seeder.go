package swarm

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Defaults of SeederConfig.
const (
	// DefaultSeedSlots is how many offered pieces a super-seeder has
	// outstanding at once, over all peers. Its uplink is shared by them:
	// at R = 8 MiB/s, four 1 MiB pieces each leave in half a second,
	// soon enough for the room to pass them on.
	DefaultSeedSlots = 4
	// DefaultOffersPerPeer is how many of those one peer holds at once
	// (BEP 16 offers one piece at a time).
	DefaultOffersPerPeer = 1
	// DefaultOfferTimeout withdraws an offer the peer did not ask for in
	// time (gone, or it found the piece in the room), freeing the slot
	// for another peer; that peer gets no more offers until it shows
	// life (a HAVE or a request). A live peer asks within a round trip.
	DefaultOfferTimeout = 2 * time.Second
	// DefaultSpreadTimeout is how long a piece served to one peer may
	// stay with that peer alone before it is a candidate for sending
	// again (BEP 16 waits to see a piece at another peer). On a LAN a
	// fresh piece is the rarest in the room and spreads in milliseconds;
	// one that does not is with a peer that crashed or does not share,
	// which its connection may take far longer to show.
	DefaultSpreadTimeout = 5 * time.Second
)

// SeederConfig configures a Seeder. Zero fields take the defaults above.
type SeederConfig struct {
	// Pieces is the number of pieces of the root (required, >= 0).
	Pieces int
	// Rand is the source of every random choice (required).
	Rand *rand.Rand
	// Slots bounds the offers outstanding over all peers.
	Slots int
	// OffersPerPeer bounds the offers outstanding to one peer.
	OffersPerPeer int
	// OfferTimeout withdraws an offer not asked for in time.
	OfferTimeout time.Duration
	// SpreadTimeout makes a piece that stayed with its one recipient a
	// candidate again.
	SpreadTimeout time.Duration
}

func (c *SeederConfig) setDefaults() {
	if c.Slots <= 0 {
		c.Slots = DefaultSeedSlots
	}
	if c.OffersPerPeer <= 0 {
		c.OffersPerPeer = DefaultOffersPerPeer
	}
	if c.OfferTimeout <= 0 {
		c.OfferTimeout = DefaultOfferTimeout
	}
	if c.SpreadTimeout <= 0 {
		c.SpreadTimeout = DefaultSpreadTimeout
	}
}

// Offer is a piece a super-seeder announces to one peer (a HAVE sent to
// that peer alone).
type Offer[P comparable] struct {
	Peer  P
	Piece int
}

// Seeder is the upload policy of a node that holds a whole root behind a
// slow uplink — a school mirror — and super-seeds it (BEP 16): it
// announces no piece to anyone at first, then offers each peer one piece
// at a time, always a piece no peer holds, pieces never sent before ahead
// of pieces sent before (whose holders left), so that every piece leaves
// the uplink once before any leaves it twice and the room passes the rest
// around. A piece some peer holds is not offered: the room serves it —
// unless its only holder got it from the seeder more than SpreadTimeout ago
// and passed it to nobody (crashed, or does not share). It keeps a bounded
// number of offers outstanding (Slots), handed to the peers in turn; a
// peer that lets an offer lapse gets no more until it shows life. It does
// no I/O and reads no clock. A Seeder is not safe for concurrent use.
//
// The caller sends each Offer as a HAVE to its peer, feeds the peers' own
// announcements to PeerHas, reports each request with Requested and how it
// ended with Sent or Unserved, and calls Offers after each of these and
// now and then; a peer may ask for a piece it was not offered (it is
// served, and counts).
type Seeder[P comparable] struct {
	cfg SeederConfig
	rnd *rand.Rand
	n   int
	// sent is how often each piece was served; avail how many peers
	// announce it; offered the offers of it outstanding.
	sent, avail, offered []int32
	// fresh and again are candidate pieces in random order, lazily
	// cleaned: fresh those never sent, again those sent before that no
	// peer holds any more, or that stuck with their recipient (stuck).
	// inFresh and inAgain mark membership.
	fresh, again     []int32
	inFresh, inAgain []bool
	stuck            []bool
	// sends are the pieces served, oldest first, to check whether they
	// spread within SpreadTimeout.
	sends []sendRec
	// peers are in turn order; index finds one.
	peers []*seedPeer[P]
	index map[P]int
	// turn is the index in peers of the next peer to get an offer.
	turn int
	// live are the offers not served yet, oldest first (at most Slots).
	live []liveOffer[P]
	// served counts pieces served (Sent), for the caller's statistics.
	served int64
}

// sendRec is a piece served at a time.
type sendRec struct {
	piece int
	at    time.Time
}

// liveOffer is an offer not served yet.
type liveOffer[P comparable] struct {
	peer  *seedPeer[P]
	piece int
	at    time.Time
	// asked: the peer asked for the piece; it is being served.
	asked bool
}

// seedPeer is what a Seeder knows of one peer.
type seedPeer[P comparable] struct {
	id  P
	has *Bitfield
	// offers is the number of live offers to the peer.
	offers int
	// told are the pieces ever offered to the peer: it believes the
	// seeder holds them and may ask for them any time.
	told *Bitfield
	// quiet: an offer to the peer lapsed; it gets no more until it shows
	// life.
	quiet bool
}

// NewSeeder returns a Seeder for a root of cfg.Pieces pieces.
func NewSeeder[P comparable](cfg SeederConfig) *Seeder[P] {
	cfg.setDefaults()
	n := max(cfg.Pieces, 0)
	s := &Seeder[P]{cfg: cfg, rnd: cfg.Rand, n: n,
		sent: make([]int32, n), avail: make([]int32, n), offered: make([]int32, n),
		inFresh: make([]bool, n), inAgain: make([]bool, n), stuck: make([]bool, n), index: make(map[P]int)}
	for _, x := range cfg.Rand.Perm(n) {
		s.fresh = append(s.fresh, int32(x))
		s.inFresh[x] = true
	}
	return s
}

// Served is the number of pieces served (reported with Sent).
func (s *Seeder[P]) Served() int64 { return s.served }

// AddPeer adds peer p, which announced the pieces in has (nil: none).
// Adding a peer again replaces it. The peer is placed at a random point
// of the turn order.
func (s *Seeder[P]) AddPeer(p P, has *Bitfield) {
	if _, ok := s.index[p]; ok {
		s.RemovePeer(p)
	}
	sp := &seedPeer[P]{id: p, has: NewBitfield(s.n), told: NewBitfield(s.n)}
	// Insert at a random place: peers joining together get turns in
	// random order.
	at := s.rnd.IntN(len(s.peers) + 1)
	s.peers = append(s.peers, nil)
	copy(s.peers[at+1:], s.peers[at:])
	s.peers[at] = sp
	s.reindex()
	if at < s.turn {
		s.turn++
	}
	if has != nil && has.Len() == s.n {
		has.Each(func(x int) { s.PeerHas(p, x) })
	}
}

func (s *Seeder[P]) reindex() {
	for i, sp := range s.peers {
		s.index[sp.id] = i
	}
}

func (s *Seeder[P]) peer(p P) *seedPeer[P] {
	if i, ok := s.index[p]; ok {
		return s.peers[i]
	}
	return nil
}

// RemovePeer forgets p; its offers are withdrawn, and the pieces only it
// held become candidates for sending again.
func (s *Seeder[P]) RemovePeer(p P) {
	sp := s.peer(p)
	if sp == nil {
		return
	}
	s.live = slices.DeleteFunc(s.live, func(o liveOffer[P]) bool {
		if o.peer == sp {
			s.offered[o.piece]--
			return true
		}
		return false
	})
	sp.has.Each(func(x int) {
		s.avail[x]--
		s.candidate(x)
	})
	i := s.index[p]
	s.peers = append(s.peers[:i], s.peers[i+1:]...)
	delete(s.index, p)
	s.reindex()
	if i < s.turn {
		s.turn--
	}
	if s.turn >= len(s.peers) {
		s.turn = 0
	}
}

// PeerHas records that p announced piece x. An offer of x to p is then
// taken (p got it, from the seeder or from the room).
func (s *Seeder[P]) PeerHas(p P, x int) {
	sp := s.peer(p)
	if sp == nil {
		return
	}
	sp.quiet = false
	if !sp.has.Set(x) {
		return
	}
	s.avail[x]++
	if s.avail[x] > 1 {
		s.stuck[x] = false
	}
	if sp.offers > 0 {
		s.withdraw(sp, x)
	}
}

// Requested records that p asked for piece x: an offer of x to p is
// taken and is no longer withdrawn for lack of an answer; it holds its
// slot until Sent or Unserved.
func (s *Seeder[P]) Requested(p P, x int) {
	sp := s.peer(p)
	if sp == nil {
		return
	}
	sp.quiet = false
	for i := range s.live {
		if s.live[i].peer == sp && s.live[i].piece == x {
			s.live[i].asked = true
		}
	}
}

// Unserved records that serving x to p ended without the piece sent (the
// stream broke): the offer's slot is free again.
func (s *Seeder[P]) Unserved(p P, x int) {
	if sp := s.peer(p); sp != nil {
		s.withdraw(sp, x)
	}
}

// Sent records that piece x was served to p (asked for or not) at now.
func (s *Seeder[P]) Sent(p P, x int, now time.Time) {
	if x < 0 || x >= s.n {
		return
	}
	s.sent[x]++
	s.served++
	s.stuck[x] = false
	s.sends = append(s.sends, sendRec{piece: x, at: now})
	if sp := s.peer(p); sp != nil {
		// p holds it now, even before its HAVE arrives: it is not a
		// candidate for anyone else.
		s.PeerHas(p, x)
	}
}

// withdraw ends the offer of x to sp, if there is one.
func (s *Seeder[P]) withdraw(sp *seedPeer[P], x int) {
	for i, o := range s.live {
		if o.peer == sp && o.piece == x {
			s.live = slices.Delete(s.live, i, i+1)
			sp.offers--
			s.offered[x]--
			return
		}
	}
}

// candidate queues x for sending if no peer holds it, or its one holder
// is stuck with it.
func (s *Seeder[P]) candidate(x int) {
	if !s.needed(x) {
		return
	}
	if s.sent[x] == 0 && !s.inFresh[x] {
		s.inFresh[x] = true
		s.fresh = append(s.fresh, int32(x))
	} else if s.sent[x] > 0 && !s.inAgain[x] {
		// At a random place, so pieces orphaned together go out in
		// random order.
		s.inAgain[x] = true
		s.again = append(s.again, int32(x))
		j := s.rnd.IntN(len(s.again))
		s.again[j], s.again[len(s.again)-1] = s.again[len(s.again)-1], s.again[j]
	}
}

// Offers withdraws offers older than OfferTimeout and returns new ones, as
// many as free slots and willing peers allow, handed to the peers in turn.
func (s *Seeder[P]) Offers(now time.Time) []Offer[P] {
	for i := 0; i < len(s.live); {
		if o := s.live[i]; !o.asked && now.Sub(o.at) >= s.cfg.OfferTimeout {
			o.peer.quiet = true
			s.withdraw(o.peer, o.piece)
			continue
		}
		i++
	}
	for len(s.sends) > 0 && now.Sub(s.sends[0].at) >= s.cfg.SpreadTimeout {
		x := s.sends[0].piece
		s.sends = s.sends[1:]
		if s.avail[x] == 1 {
			s.stuck[x] = true
			s.candidate(x)
		}
	}
	var out []Offer[P]
	for len(s.live) < s.cfg.Slots && len(s.peers) > 0 {
		offered := false
		for range len(s.peers) {
			sp := s.peers[s.turn]
			s.turn = (s.turn + 1) % len(s.peers)
			if sp.offers >= s.cfg.OffersPerPeer || sp.quiet || sp.has.Full() {
				continue
			}
			x, ok := s.choose(sp)
			if !ok {
				continue
			}
			s.live = append(s.live, liveOffer[P]{peer: sp, piece: x, at: now})
			sp.offers++
			sp.told.Set(x)
			s.offered[x]++
			out = append(out, Offer[P]{Peer: sp.id, Piece: x})
			offered = true
			break
		}
		if !offered {
			break
		}
	}
	return out
}

// choose returns the piece to offer sp: the first fresh piece, else the
// first orphaned one, that no peer holds, nobody is offered now, and sp
// was never offered.
func (s *Seeder[P]) choose(sp *seedPeer[P]) (int, bool) {
	if x, ok := s.pick(&s.fresh, s.inFresh, sp, func(x int) bool { return s.sent[x] == 0 }); ok {
		return x, true
	}
	return s.pick(&s.again, s.inAgain, sp, func(x int) bool { return s.sent[x] > 0 })
}

// needed reports whether x is for sending: no peer holds it, or its
// one holder is stuck with it.
func (s *Seeder[P]) needed(x int) bool {
	return s.avail[x] == 0 || (s.avail[x] == 1 && s.stuck[x])
}

// pick scans list for a piece to offer sp, dropping entries that are no
// longer candidates (held by a peer, or of the other class).
func (s *Seeder[P]) pick(list *[]int32, in []bool, sp *seedPeer[P], class func(int) bool) (int, bool) {
	l := *list
	for i := 0; i < len(l); {
		x := int(l[i])
		if !s.needed(x) || !class(x) {
			in[x] = false
			l[i] = l[len(l)-1]
			l = l[:len(l)-1]
			continue
		}
		if s.offered[x] == 0 && !sp.told.Has(x) {
			*list = l
			return x, true
		}
		i++
	}
	*list = l
	return 0, false
}
