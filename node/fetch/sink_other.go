//go:build !linux

package fetch

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the
// final fsync then writes the whole file.
func startWriteback(*os.File, int64, int) {}

// preallocate is a no-op where fallocate does not exist; blocks are
// allocated as bytes are written.
func preallocate(*os.File, int64) error { return nil }

// allocated is unknown here: a resumed fetch asks for room for the whole
// file.
func allocated(os.FileInfo) uint64 { return 0 }
