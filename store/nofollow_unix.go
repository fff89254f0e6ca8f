//go:build unix

package store

import "syscall"

// oNoFollow makes an open fail on a symlink at the path's last component.
const oNoFollow = syscall.O_NOFOLLOW
