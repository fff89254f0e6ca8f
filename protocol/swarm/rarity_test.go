package swarm

import (
	"math/rand/v2"
	"testing"
)

// TestRarityKeepsOrder drives the bucket index with random changes and
// checks it against the plain counts after each one: live pieces ordered
// by availability, positions consistent, removed pieces gone.
func TestRarityKeepsOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 50
	r := newRarity(n, rnd)
	avail := make([]int, n)
	removed := make([]bool, n)
	for step := range 5000 {
		x := rnd.IntN(n)
		switch rnd.IntN(10) {
		case 0:
			r.remove(x)
			removed[x] = true
		case 1, 2, 3:
			r.dec(x)
			avail[x] = max(0, avail[x]-1)
		default:
			r.inc(x)
			avail[x]++
		}
		checkRarity(t, step, r, avail, removed)
	}
}

func checkRarity(t *testing.T, step int, r *rarity, avail []int, removed []bool) {
	t.Helper()
	live := 0
	for x := range avail {
		if int(r.avail[x]) != avail[x] {
			t.Fatalf("step %d: avail[%d] = %d, want %d", step, x, r.avail[x], avail[x])
		}
		if r.order[r.pos[x]] != int32(x) {
			t.Fatalf("step %d: pos of %d is stale", step, x)
		}
		if !removed[x] {
			live++
		}
	}
	if r.live() != live {
		t.Fatalf("step %d: %d live, want %d", step, r.live(), live)
	}
	prev := -1
	seen := 0
	r.each(func(x int) bool {
		if removed[x] {
			t.Fatalf("step %d: removed piece %d listed", step, x)
		}
		if avail[x] < prev {
			t.Fatalf("step %d: piece %d (avail %d) after avail %d", step, x, avail[x], prev)
		}
		prev = avail[x]
		seen++
		return true
	})
	if seen != live {
		t.Fatalf("step %d: listed %d, want %d", step, seen, live)
	}
	for a := 0; a+1 < len(r.start); a++ {
		for i := r.start[a]; i < r.start[a+1]; i++ {
			if got := r.avail[r.order[i]]; int(got) != a {
				t.Fatalf("step %d: bucket %d holds a piece of availability %d", step, a, got)
			}
		}
	}
}
