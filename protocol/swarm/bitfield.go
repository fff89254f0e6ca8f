package swarm

import (
	"errors"
	"fmt"
	"math/bits"
)

// Bitfield is a set of pieces of one root, numbered 0 to Len()-1. The zero
// value is an empty set of no pieces. It is not safe for concurrent use.
type Bitfield struct {
	words []uint64
	n     int
	count int
}

// ErrBitfield: an encoded bitfield does not fit the piece count it is
// read for.
var ErrBitfield = errors.New("swarm: bad bitfield")

// NewBitfield returns an empty set of n pieces (n >= 0).
func NewBitfield(n int) *Bitfield {
	return &Bitfield{words: make([]uint64, (n+63)/64), n: n}
}

// FullBitfield returns the set of all n pieces, what a seeder holds.
func FullBitfield(n int) *Bitfield {
	b := NewBitfield(n)
	for i := range b.words {
		b.words[i] = ^uint64(0)
	}
	b.clearTail()
	b.count = n
	return b
}

// Len is the number of pieces the set is over.
func (b *Bitfield) Len() int { return b.n }

// Count is the number of pieces in the set.
func (b *Bitfield) Count() int { return b.count }

// Full reports whether every piece is in the set.
func (b *Bitfield) Full() bool { return b.count == b.n }

// Has reports whether piece i is in the set; out of range is false.
func (b *Bitfield) Has(i int) bool {
	if i < 0 || i >= b.n {
		return false
	}
	return b.words[i/64]&(1<<(i%64)) != 0
}

// Set adds piece i and reports whether it was new; out of range is
// ignored (false).
func (b *Bitfield) Set(i int) bool {
	if i < 0 || i >= b.n || b.Has(i) {
		return false
	}
	b.words[i/64] |= 1 << (i % 64)
	b.count++
	return true
}

// Clear removes piece i and reports whether it was there.
func (b *Bitfield) Clear(i int) bool {
	if !b.Has(i) {
		return false
	}
	b.words[i/64] &^= 1 << (i % 64)
	b.count--
	return true
}

// Clone returns an independent copy.
func (b *Bitfield) Clone() *Bitfield {
	c := *b
	c.words = append([]uint64(nil), b.words...)
	return &c
}

// Each calls fn with every piece in the set, in increasing order.
func (b *Bitfield) Each(fn func(i int)) {
	for w, word := range b.words {
		for word != 0 {
			bit := bits.TrailingZeros64(word)
			fn(w*64 + bit)
			word &= word - 1
		}
	}
}

// EncodedLen is the size of the encoding of a set of n pieces.
func EncodedLen(n int) int { return (n + 7) / 8 }

// Bytes encodes the set as BitTorrent does: piece 0 is the high bit of
// the first byte; bits past the last piece are zero.
func (b *Bitfield) Bytes() []byte {
	out := make([]byte, EncodedLen(b.n))
	for i := range out {
		w := b.words[i/8]
		out[i] = bits.Reverse8(byte(w >> (8 * (i % 8))))
	}
	return out
}

// ParseBitfield decodes an encoding of a set of n pieces (see Bytes). It
// fails unless data has exactly EncodedLen(n) bytes and the bits past the
// last piece are zero, so every set has one encoding.
func ParseBitfield(data []byte, n int) (*Bitfield, error) {
	if n < 0 || len(data) != EncodedLen(n) {
		return nil, fmt.Errorf("%w: %d bytes for %d pieces, want %d", ErrBitfield, len(data), n, EncodedLen(max(n, 0)))
	}
	b := NewBitfield(n)
	for i, v := range data {
		b.words[i/8] |= uint64(bits.Reverse8(v)) << (8 * (i % 8))
	}
	if tail := b.tailMask(); tail != 0 && b.words[len(b.words)-1]&^tail != 0 {
		return nil, fmt.Errorf("%w: bits set past piece %d", ErrBitfield, n-1)
	}
	for _, w := range b.words {
		b.count += bits.OnesCount64(w)
	}
	return b, nil
}

// tailMask is the mask of the valid bits of the last word (0 if the last
// word is full or there is none).
func (b *Bitfield) tailMask() uint64 {
	if r := b.n % 64; r != 0 {
		return 1<<r - 1
	}
	return 0
}

func (b *Bitfield) clearTail() {
	if tail := b.tailMask(); tail != 0 {
		b.words[len(b.words)-1] &= tail
	}
}
