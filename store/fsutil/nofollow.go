package fsutil

import (
	"fmt"
	"io/fs"
	"os"
)

// OpenNoFollow is os.OpenFile that refuses to follow a symlink at path
// itself (O_NOFOLLOW), so a link planted where a partial or temporary file
// is expected cannot redirect the write elsewhere. Symlinks in the
// directories above path are followed as usual.
func OpenNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	if oNoFollow == 0 {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("open %s: %w: is a symlink", path, ErrBadInput)
		}
	}
	return os.OpenFile(path, flag|oNoFollow, perm)
}
