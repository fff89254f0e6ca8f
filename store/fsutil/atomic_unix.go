//go:build unix

package fsutil

import (
	"fmt"
	"os"
)

// replaceFile renames from to to, replacing to if it exists; rename(2) is
// atomic.
func replaceFile(from, to string) error { return os.Rename(from, to) }

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
