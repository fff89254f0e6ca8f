//go:build windows

package fsutil

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// Bounds on waiting for another process to close a file replaceFile
// replaces: Go opens files without FILE_SHARE_DELETE, so while a reader
// (say, a CLI reading HOME/api) has it open the rename is refused.
const (
	replaceAttempts = 8
	replaceBackoff  = 10 * time.Millisecond // doubled after each attempt
)

// replaceFile renames from to to, replacing to if it exists, with
// MoveFileEx(MOVEFILE_REPLACE_EXISTING|MOVEFILE_WRITE_THROUGH): atomic on
// NTFS, and durable when it returns (Windows cannot fsync a directory). It
// retries for about 1.3 s while another process holds to open.
func replaceFile(from, to string) error {
	f, err := windows.UTF16PtrFromString(from)
	if err != nil {
		return err
	}
	t, err := windows.UTF16PtrFromString(to)
	if err != nil {
		return err
	}
	wait := replaceBackoff
	for i := 1; ; i++ {
		err = windows.MoveFileEx(f, t, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH)
		busy := errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION)
		if err == nil || !busy || i == replaceAttempts {
			break
		}
		time.Sleep(wait)
		wait *= 2
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// SyncDir does nothing on Windows: a directory cannot be opened for
// FlushFileBuffers, and NTFS journals renames and creations itself;
// replaceFile writes its rename through.
func SyncDir(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
