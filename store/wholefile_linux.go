//go:build linux

package store

import (
	"os"
	"syscall"
)

// fileIdentity returns a file's inode, device and change time
// (nanoseconds since the epoch).
func fileIdentity(fi os.FileInfo) (ino, dev uint64, ctime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return st.Ino, uint64(st.Dev), st.Ctim.Nano(), true
}
