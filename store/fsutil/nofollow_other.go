//go:build !unix

package fsutil

// oNoFollow is not available here; OpenNoFollow then checks with Lstat
// before opening (not atomic).
const oNoFollow = 0
