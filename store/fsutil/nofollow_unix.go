//go:build unix

package fsutil

import "syscall"

// oNoFollow makes an open fail on a symlink at the path's last component.
const oNoFollow = syscall.O_NOFOLLOW
