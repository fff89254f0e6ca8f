package fsutil

import (
	"errors"
	"math"
	"testing"
)

// TestCheckRoom checks that CheckRoom lets a write through while the
// reserve stays free and refuses one that would eat into it.
func TestCheckRoom(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		need uint64
		want error
	}{
		{"nothing to write", 0, nil},
		{"more than any disk", math.MaxUint64 / 2, ErrNoSpace},
	} {
		if err := CheckRoom(dir, tc.need); !errors.Is(err, tc.want) {
			t.Errorf("%s: CheckRoom = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct{ total, want uint64 }{
		{64 << 20, 64 << 20 / 20},
		{1 << 40, maxReserve},
	} {
		if got := reserve(tc.total); got != tc.want {
			t.Errorf("reserve(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
}
