package swarm

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// t0 is the start of every test's virtual clock.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestPicker(n int, seed uint64) *Picker[string] {
	return NewPicker[string](PickerConfig{Pieces: n, Rand: rand.New(rand.NewPCG(seed, 1))})
}

func pieceSet(n int, set ...int) *Bitfield {
	b := NewBitfield(n)
	for _, x := range set {
		b.Set(x)
	}
	return b
}

// holdFirst marks pieces as held so that the random start is over.
func holdFirst(k *Picker[string], xs ...int) {
	for _, x := range xs {
		k.SetHave(x)
	}
}

func TestPickerRarestFirst(t *testing.T) {
	k := newTestPicker(10, 1)
	holdFirst(k, 6, 7, 8, 9)
	k.AddPeer("a", pieceSet(10, 0, 1, 2, 3), PeerOpts{})
	k.AddPeer("b", pieceSet(10, 1, 2, 3), PeerOpts{})
	k.AddPeer("c", pieceSet(10, 2, 3), PeerOpts{})
	k.AddPeer("d", pieceSet(10, 3), PeerOpts{})
	got := k.Next("a", t0)
	// Depth 2 before a rate is known: the two rarest of a's pieces.
	if want := []int{0, 1}; !slices.Equal(got, want) {
		t.Fatalf("Next(a) = %v, want %v (rarest first)", got, want)
	}
	if got := k.Next("b", t0); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("Next(b) = %v, want [2 3]: 1 is asked of a already", got)
	}
	if got := k.Next("d", t0); len(got) != 0 {
		t.Fatalf("Next(d) = %v: its only piece is asked of b, and this is not the end game", got)
	}
	if s := k.Starved(); !slices.Contains(s, "d") {
		t.Fatalf("Starved() = %v, want d in it", s)
	}
}

// TestPickerRandomStart: fetchers holding nothing start on different
// pieces, even from the same seeder.
func TestPickerRandomStart(t *testing.T) {
	const n = 64
	first := map[int]bool{}
	for seed := range uint64(100) {
		k := newTestPicker(n, seed)
		k.AddPeer("seed", FullBitfield(n), PeerOpts{})
		for _, x := range k.Next("seed", t0) {
			first[x] = true
		}
	}
	t.Logf("100 fetchers started on %d distinct pieces of %d", len(first), n)
	if len(first) < n/2 {
		t.Fatalf("100 fetchers started on only %d distinct pieces of %d", len(first), n)
	}
}

// TestPickerSparesCostlyPeers: a costly peer (the mirror) is asked only
// for pieces no room peer announces.
func TestPickerSparesCostlyPeers(t *testing.T) {
	k := newTestPicker(6, 2)
	k.AddPeer("mirror", FullBitfield(6), PeerOpts{Costly: true})
	k.AddPeer("room", pieceSet(6, 0, 1, 2, 3), PeerOpts{})
	var fromMirror []int
	for range 3 {
		got := k.Next("mirror", t0)
		fromMirror = append(fromMirror, got...)
		for _, x := range got {
			k.Received("mirror", x, DefaultPieceBytes, t0.Add(time.Second))
		}
	}
	slices.Sort(fromMirror)
	if !slices.Equal(fromMirror, []int{4, 5}) {
		t.Fatalf("asked the mirror for %v, want only [4 5], which the room lacks", fromMirror)
	}
}

func TestPickerEndgame(t *testing.T) {
	k := newTestPicker(5, 3)
	holdFirst(k, 0, 1, 2, 3)
	k.AddPeer("slow", FullBitfield(5), PeerOpts{})
	k.AddPeer("fast", FullBitfield(5), PeerOpts{})
	if got := k.Next("slow", t0); !slices.Equal(got, []int{4}) {
		t.Fatalf("Next(slow) = %v, want [4]", got)
	}
	if !k.Endgame() {
		t.Fatal("every missing piece is asked: the end game should be on")
	}
	if got := k.Next("fast", t0); !slices.Equal(got, []int{4}) {
		t.Fatalf("Next(fast) in the end game = %v, want the duplicate [4]", got)
	}
	if got := k.Next("fast", t0); len(got) != 0 {
		t.Fatalf("a peer got the same piece twice: %v", got)
	}
	cancel := k.Received("fast", 4, DefaultPieceBytes, t0.Add(time.Second))
	if want := []Request[string]{{"slow", 4}}; !slices.Equal(cancel, want) {
		t.Fatalf("Received returned cancels %v, want %v", cancel, want)
	}
	if !k.Done() || k.Inflight("slow") != 0 {
		t.Fatalf("done %v, in flight to slow %d", k.Done(), k.Inflight("slow"))
	}
}

// TestPickerLeavingPeers: requests to a peer that left, failed, or went
// silent come back for others.
func TestPickerLeavingPeers(t *testing.T) {
	cases := []struct {
		name string
		lose func(k *Picker[string], asked []int) []int
	}{
		{"peer left: its requests are returned at once", func(k *Picker[string], asked []int) []int {
			return k.RemovePeer("a")
		}},
		{"peer says it lacks them: its announcements are forgotten", func(k *Picker[string], asked []int) []int {
			for _, x := range asked {
				k.Failed("a", x, true)
			}
			return asked
		}},
		{"peer silent for SnubAfter: requests expire, it gets one at a time", func(k *Picker[string], asked []int) []int {
			if got := k.Expired(t0.Add(DefaultSnubAfter - time.Millisecond)); len(got) != 0 {
				t.Fatalf("expired early: %v", got)
			}
			var out []int
			for _, r := range k.Expired(t0.Add(DefaultSnubAfter)) {
				out = append(out, r.Piece)
			}
			if d := k.Depth("a"); d != 1 {
				t.Fatalf("depth of a snubbed peer = %d, want 1", d)
			}
			return out
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestPicker(8, 4)
			holdFirst(k, 4, 5, 6, 7)
			k.AddPeer("a", pieceSet(8, 0, 1, 2, 3), PeerOpts{})
			k.AddPeer("b", pieceSet(8, 0, 1, 2, 3), PeerOpts{})
			asked := k.Next("a", t0)
			freed := tc.lose(k, asked)
			slices.Sort(freed)
			slices.Sort(asked)
			if !slices.Equal(freed, asked) {
				t.Fatalf("freed %v, asked %v", freed, asked)
			}
			got := k.Next("b", t0)
			if len(got) != 2 {
				t.Fatalf("Next(b) = %v, want two pieces", got)
			}
			if k.Endgame() {
				t.Fatal("end game with pieces unasked")
			}
		})
	}
}

// TestPickerDepthFollowsRate: a peer's pipeline grows with its measured
// rate, up to MaxDepth.
func TestPickerDepthFollowsRate(t *testing.T) {
	cases := []struct {
		name      string
		perPiece  time.Duration
		wantDepth int
	}{
		{"1 MiB/s keeps 2 s of pieces: 2", time.Second, 2},
		{"10 MiB/s: 20", 100 * time.Millisecond, 20},
		{"1 GiB/s: capped at MaxDepth", time.Millisecond, DefaultMaxDepth},
		{"0.1 MiB/s: at least 1", 10 * time.Second, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestPicker(1000, 5)
			k.AddPeer("p", FullBitfield(1000), PeerOpts{})
			now := t0
			for range 40 {
				asked := k.Next("p", now)
				for _, x := range asked {
					now = now.Add(tc.perPiece)
					k.Received("p", x, DefaultPieceBytes, now)
				}
			}
			if got := k.Depth("p"); got != tc.wantDepth {
				t.Fatalf("depth %d, want %d", got, tc.wantDepth)
			}
		})
	}
}

func TestPickerIgnoresStrangers(t *testing.T) {
	k := newTestPicker(4, 6)
	k.PeerHas("nobody", 1)
	k.Failed("nobody", 1, true)
	if got := k.Next("nobody", t0); got != nil || k.Interesting("nobody") || k.RemovePeer("nobody") != nil {
		t.Fatal("an unknown peer got requests")
	}
	k.AddPeer("p", pieceSet(4, 3), PeerOpts{})
	k.PeerHas("p", 99) // out of range
	if !k.Interesting("p") {
		t.Fatal("p announces a missing piece")
	}
	if c := k.Received("p", 3, 10, t0); c != nil || !k.Have().Has(3) {
		t.Fatal("an unasked piece was not kept")
	}
	if k.Interesting("p") {
		t.Fatal("p has nothing left we lack")
	}
}

// TestPickerSlowIsNotSnubbed: a peer whose bytes keep arriving keeps its
// requests however long a piece takes; one that sends nothing loses them.
func TestPickerSlowIsNotSnubbed(t *testing.T) {
	k := newTestPicker(8, 8)
	holdFirst(k, 4, 5, 6, 7)
	k.AddPeer("slow", pieceSet(8, 0, 1), PeerOpts{})
	k.AddPeer("silent", pieceSet(8, 2, 3), PeerOpts{})
	k.Next("slow", t0)
	k.Next("silent", t0)
	now := t0
	for range 10 {
		now = now.Add(DefaultSnubAfter / 2)
		k.Progress("slow", now)
		for _, r := range k.Expired(now) {
			if r.Peer == "slow" {
				t.Fatalf("at %s the slow peer lost piece %d although its bytes arrive", now.Sub(t0), r.Piece)
			}
		}
	}
	if k.Inflight("slow") != 2 || k.Inflight("silent") != 0 || k.Depth("silent") != 1 {
		t.Fatalf("in flight: slow %d, silent %d (depth %d)", k.Inflight("slow"), k.Inflight("silent"), k.Depth("silent"))
	}
}
