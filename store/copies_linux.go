//go:build linux

package store

import (
	"os"
	"syscall"
)

// openDirect opens path for writing with direct I/O (O_DIRECT), or
// returns nil where the file system does not support it (tmpfs).
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}
