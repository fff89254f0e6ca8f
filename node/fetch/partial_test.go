package fetch

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/store"
)

// TestPartialFilesDoNotFollowLinks plants a symlink to a victim file where
// a fetch puts its partial file: neither way of writing a fetched file
// writes through it, and the file still arrives.
func TestPartialFilesDoNotFollowLinks(t *testing.T) {
	data := []byte("the fetched content, several tiny chunks long: 0123456789abcdef0123456789abcdef")
	_, root := buildFile(t, data, true)
	tests := []struct {
		name  string
		write func(dest string) error
	}{
		{"fileSink (a single file written as blocks arrive)", func(dest string) error {
			s, err := createFileSink(store.PartialPath(dest), root.Cid(), uint64(len(data)), nil)
			if err != nil {
				return err
			}
			if _, err := s.f.WriteAt(data, 0); err != nil {
				return err
			}
			s.written, s.pending = uint64(len(data)), nil
			return s.finish(context.Background(), dest)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(dir, "out")
			if err := os.Symlink(victim, store.PartialPath(dest)); err != nil {
				t.Fatal(err)
			}
			if err := tt.write(dest); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(victim); string(got) != "keep me" {
				t.Errorf("written through the planted link: victim holds %q", got)
			}
			if got, err := os.ReadFile(dest); err != nil || string(got) != string(data) {
				t.Errorf("dest = %q, %v", got, err)
			}
			if fi, err := os.Lstat(dest); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("dest is not a regular file: %v, %v", fi, err)
			}
		})
	}
}
