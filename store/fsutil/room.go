package fsutil

import (
	"errors"
	"fmt"
)

// ErrNoSpace means the disk is full (or would be too full after a write).
// It is permanent for the operation that met it: retrying without freeing
// space cannot help. store.ErrNoSpace is the same error.
var ErrNoSpace = errors.New("no space left on device")

// maxReserve caps the room kept free on a store's disk.
const maxReserve = 64 << 20

// reserve is the room kept free on a file system of total bytes: a twentieth
// of it, at most maxReserve. The metadata store (pebble) ends the whole
// process when it cannot append to its log, so the bulk writers (blocks, a
// fetch's output) stop short of a full disk and fail with ErrNoSpace
// instead, leaving pebble room to record what happened.
func reserve(total uint64) uint64 {
	return min(maxReserve, total/20)
}

// CheckRoom returns ErrNoSpace (wrapped, with the figures) when writing
// need more bytes under dir would leave less than the reserve free on its
// file system. It returns nil when the free space cannot be read.
func CheckRoom(dir string, need uint64) error {
	s, err := diskSpace(dir)
	if err != nil {
		return nil
	}
	free := s.Free
	keep := reserve(s.Total)
	if free < need+keep {
		return fmt.Errorf("%w: %s has %d bytes free; %d more would leave less than the %d kept free for the store's metadata",
			ErrNoSpace, dir, free, need, keep)
	}
	return nil
}
