package manifest

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestHashPipeKeepsOrder checks that a hashPipe hashes exactly the bytes
// written, in order, even when the writer reuses its buffer at once.
func TestHashPipeKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	for _, tc := range []struct {
		name  string
		chunk int
	}{
		{"one byte", 1 << 0},
		{"odd chunks", 4093},
		{"chunk size", 1 << 20},
		{"whole", len(data)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sha256.New()
			p := newHashPipe(h)
			buf := make([]byte, tc.chunk)
			for off := 0; off < len(data); off += tc.chunk {
				n := copy(buf, data[off:])
				p.Write(buf[:n])
				clear(buf) // the caller reuses its buffer at once
			}
			p.Close()
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("sha256 through the pipe = %x, want %x", got, want)
			}
		})
	}
}
