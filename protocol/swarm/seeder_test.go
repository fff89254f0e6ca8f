package swarm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func newTestSeeder(n int, cfg SeederConfig) *Seeder[string] {
	cfg.Pieces = n
	cfg.Rand = rand.New(rand.NewPCG(7, 7))
	return NewSeeder[string](cfg)
}

// TestSeederSendsEachPieceOnceFirst: peers that take every offer at once
// and pass nothing on still get every piece once before any piece is
// offered twice; with every piece held somewhere, nothing more is offered
// until SpreadTimeout shows the pieces stuck with their recipients. Then
// they go out again, to other peers.
func TestSeederSendsEachPieceOnceFirst(t *testing.T) {
	const n, peers = 40, 6
	s := newTestSeeder(n, SeederConfig{})
	for i := range peers {
		s.AddPeer(fmt.Sprint("p", i), nil)
	}
	step := DefaultSpreadTimeout / 100
	now := t0
	holder := map[int]string{}
	for len(holder) < n {
		offers := s.Offers(now)
		if len(offers) == 0 || len(offers) > DefaultSeedSlots {
			t.Fatalf("%d offers at once with %d pieces unsent, Slots is %d", len(offers), n-len(holder), DefaultSeedSlots)
		}
		seen := map[string]bool{}
		for _, o := range offers {
			if seen[o.Peer] {
				t.Fatalf("peer %s got two offers at once (OffersPerPeer 1)", o.Peer)
			}
			seen[o.Peer] = true
			if _, again := holder[o.Piece]; again {
				t.Fatalf("piece %d offered twice before every piece went out once", o.Piece)
			}
			holder[o.Piece] = o.Peer
			s.Sent(o.Peer, o.Piece, now)
		}
		now = now.Add(step)
	}
	if o := s.Offers(now); len(o) != 0 {
		t.Fatalf("offered %v with every piece held and none stuck yet", o)
	}
	again := s.Offers(now.Add(DefaultSpreadTimeout))
	if len(again) == 0 {
		t.Fatal("pieces stuck with their recipients were not offered again")
	}
	for _, o := range again {
		if holder[o.Piece] == o.Peer {
			t.Fatalf("piece %d offered again to %s, which holds it", o.Piece, o.Peer)
		}
	}
	if s.Served() != n {
		t.Fatalf("served %d pieces, want %d", s.Served(), n)
	}
}

// TestSeederSpreadPiecesStay: a piece that reached a second peer is not
// stuck, however long ago it was sent.
func TestSeederSpreadPiecesStay(t *testing.T) {
	s := newTestSeeder(1, SeederConfig{})
	s.AddPeer("a", nil)
	s.AddPeer("b", nil)
	s.AddPeer("c", nil)
	o := s.Offers(t0)
	s.Sent(o[0].Peer, 0, t0)
	for _, p := range []string{"a", "b"} {
		s.PeerHas(p, 0)
	}
	if got := s.Offers(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("offered %v although the piece spread", got)
	}
}

// TestSeederResendsOrphans: a piece whose only holder left is offered
// again, and only such pieces are.
func TestSeederResendsOrphans(t *testing.T) {
	const n = 8
	s := newTestSeeder(n, SeederConfig{Slots: 1})
	s.AddPeer("a", nil)
	s.AddPeer("b", nil)
	holder := map[int]string{}
	for len(holder) < n {
		o := s.Offers(t0)
		if len(o) != 1 {
			t.Fatalf("got %d offers, want 1 (one slot)", len(o))
		}
		s.Sent(o[0].Peer, o[0].Piece, t0)
		holder[o[0].Piece] = o[0].Peer
	}
	if o := s.Offers(t0); len(o) != 0 {
		t.Fatalf("offered %v although every piece is in the room", o)
	}
	s.RemovePeer("a")
	s.AddPeer("c", nil)
	var again []int
	for {
		o := s.Offers(t0)
		if len(o) == 0 {
			break
		}
		again = append(again, o[0].Piece)
		if holder[o[0].Piece] != "a" {
			t.Fatalf("offered piece %d again, held by %s who stayed", o[0].Piece, holder[o[0].Piece])
		}
		s.Sent(o[0].Peer, o[0].Piece, t0)
	}
	lost := 0
	for _, p := range holder {
		if p == "a" {
			lost++
		}
	}
	if len(again) != lost {
		t.Fatalf("sent %d pieces again, a alone held %d", len(again), lost)
	}
}

func TestSeederOffers(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, s *Seeder[string])
	}{
		{"a piece a peer announced is never offered", func(t *testing.T, s *Seeder[string]) {
			s.AddPeer("a", pieceSet(4, 0, 1, 2))
			s.AddPeer("b", nil)
			for _, o := range s.Offers(t0) {
				if o.Piece != 3 {
					t.Fatalf("offered %d, which a holds", o.Piece)
				}
			}
		}},
		{"an offer not taken in time is withdrawn, freeing the slot", func(t *testing.T, s *Seeder[string]) {
			s.AddPeer("a", nil)
			s.AddPeer("b", nil)
			first := s.Offers(t0)
			if len(first) != 1 {
				t.Fatalf("%d offers, want 1", len(first))
			}
			if o := s.Offers(t0.Add(DefaultOfferTimeout - time.Millisecond)); len(o) != 0 {
				t.Fatalf("offered %v with the slot taken", o)
			}
			o := s.Offers(t0.Add(DefaultOfferTimeout))
			if len(o) != 1 || o[0].Peer == first[0].Peer {
				t.Fatalf("after the timeout offered %v, want the other peer", o)
			}
		}},
		{"a peer that got the offered piece elsewhere frees the slot", func(t *testing.T, s *Seeder[string]) {
			s.AddPeer("a", nil)
			o := s.Offers(t0)
			s.PeerHas("a", o[0].Piece)
			if next := s.Offers(t0); len(next) != 1 || next[0].Piece == o[0].Piece {
				t.Fatalf("after the HAVE offered %v", next)
			}
		}},
		{"a complete peer gets no offers", func(t *testing.T, s *Seeder[string]) {
			s.AddPeer("done", FullBitfield(4))
			if o := s.Offers(t0); len(o) != 0 {
				t.Fatalf("offered %v to a complete peer", o)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, newTestSeeder(4, SeederConfig{Slots: 1}))
		})
	}
}
