package swarm

import "math/rand/v2"

// rarity keeps the pieces a fetcher still lacks ordered by availability
// (how many of its peers announce each), so the rarest ones come first
// without sorting. Pieces of equal availability form a bucket; buckets lie
// in increasing order in one slice, and a piece changes bucket by one swap
// with the bucket's edge (libtorrent's piece picker works the same way).
// Within a bucket the order is random: the pieces start shuffled and swaps
// keep them so. Pieces taken out (held) sit after the last bucket.
type rarity struct {
	// order holds the pieces; order[:live] are the live ones by bucket.
	order []int32
	// pos is each piece's index in order.
	pos []int32
	// avail is each piece's availability.
	avail []int32
	// start[a] is the index in order of the first live piece whose
	// availability is at least a; the last entry is live.
	start []int32
	// removed marks pieces taken out.
	removed []bool
}

func newRarity(n int, rnd *rand.Rand) *rarity {
	r := &rarity{order: make([]int32, n), pos: make([]int32, n), avail: make([]int32, n),
		removed: make([]bool, n), start: []int32{0, int32(n)}}
	for i := range r.order {
		r.order[i] = int32(i)
	}
	rnd.Shuffle(n, func(i, j int) { r.order[i], r.order[j] = r.order[j], r.order[i] })
	for i, p := range r.order {
		r.pos[p] = int32(i)
	}
	return r
}

// live is the number of pieces not taken out.
func (r *rarity) live() int { return int(r.start[len(r.start)-1]) }

func (r *rarity) swap(i, j int32) {
	a, b := r.order[i], r.order[j]
	r.order[i], r.order[j] = b, a
	r.pos[a], r.pos[b] = j, i
}

// grow makes sure bucket a exists (buckets above the highest are empty).
func (r *rarity) grow(a int32) {
	for int32(len(r.start)) < a+2 {
		r.start = append(r.start, r.start[len(r.start)-1])
	}
}

// inc raises piece x's availability by one.
func (r *rarity) inc(x int) {
	a := r.avail[x]
	r.avail[x]++
	if r.removed[x] {
		return
	}
	r.grow(a + 1)
	// x moves to the end of bucket a, which then becomes the first
	// place of bucket a+1.
	last := r.start[a+1] - 1
	r.swap(r.pos[x], last)
	r.start[a+1]--
}

// dec lowers piece x's availability by one (never below zero).
func (r *rarity) dec(x int) {
	a := r.avail[x]
	if a == 0 {
		return
	}
	r.avail[x]--
	if r.removed[x] {
		return
	}
	// x moves to the front of bucket a, which then becomes the last
	// place of bucket a-1.
	first := r.start[a]
	r.swap(r.pos[x], first)
	r.start[a]++
}

// remove takes piece x out: it moves through the buckets above its own to
// the end of the live pieces, which then end one place earlier.
func (r *rarity) remove(x int) {
	if r.removed[x] {
		return
	}
	top := int32(len(r.start) - 1) // index of the sentinel
	for b := r.avail[x] + 1; b <= top; b++ {
		r.swap(r.pos[x], r.start[b]-1)
		r.start[b]--
	}
	r.removed[x] = true
}

// each calls fn with the live pieces, rarest first, until fn returns
// false.
func (r *rarity) each(fn func(x int) bool) {
	for _, x := range r.order[:r.live()] {
		if !fn(int(x)) {
			return
		}
	}
}
