//go:build unix

package fsutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

func diskSpace(path string) (DiskSpace, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return DiskSpace{}, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return DiskSpace{}, err
	}
	return DiskSpace{
		Free:   uint64(fs.Bavail) * uint64(fs.Bsize),
		Total:  uint64(fs.Blocks) * uint64(fs.Bsize),
		Device: uint64(st.Dev),
	}, nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}
