package fsutil

import "fmt"

// DiskSpace is what a file system has room for.
type DiskSpace struct {
	// Free is what an unprivileged user may still write.
	Free uint64
	// Total is the file system's size.
	Total uint64
	// Device identifies the file system (a device number on Unix, a
	// volume serial number on Windows): two paths with equal Device live
	// on the same one.
	Device uint64
}

// Space returns the room on the file system that holds path.
func Space(path string) (DiskSpace, error) {
	s, err := diskSpace(path)
	if err != nil {
		return DiskSpace{}, fmt.Errorf("free space at %s: %w", path, err)
	}
	return s, nil
}

// IsDiskFull reports whether err says a disk or a disk quota is full
// (ENOSPC or EDQUOT on Unix, ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL on
// Windows).
func IsDiskFull(err error) bool { return isDiskFull(err) }
