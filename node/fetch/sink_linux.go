package fetch

import (
	"errors"
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writing back the dirty
// pages of a range without waiting for them.
const syncFileRangeWrite = 0x2

// startWriteback asks the kernel to start writing f's bytes [off, off+n) to
// disk now, so the fsync that completes a fetch finds little left to do and
// the disk works while the network does. It is a hint; errors are ignored.
func startWriteback(f *os.File, off int64, n int) {
	syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}

// preallocate reserves disk blocks for f's first size bytes, so a fetch
// that cannot fit fails at once with ENOSPC instead of part way, and the
// file is laid out in one piece. A file system without fallocate is left
// to allocate as bytes are written.
func preallocate(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	return err
}

// allocated is how many bytes of disk the file fi describes occupies.
func allocated(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Blocks) * 512
	}
	return 0
}
