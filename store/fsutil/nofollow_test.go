package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenNoFollow: a symlink planted where a partial file goes is not
// followed: the open fails and the link's target is untouched.
func TestOpenNoFollow(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, ".out.partial")
	if err := os.Symlink(victim, partial); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDWR | os.O_CREATE, os.O_WRONLY | os.O_CREATE | os.O_TRUNC} {
		if f, err := OpenNoFollow(partial, flag, 0o644); err == nil {
			f.Close()
			t.Fatalf("flag %#x: opened through a planted symlink", flag)
		}
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep me" {
		t.Errorf("the link's target changed: %q", got)
	}
}
