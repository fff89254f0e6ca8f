package node

import (
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
