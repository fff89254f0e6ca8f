package models

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
)

// TestWriteTreeResumes checks how writeTree takes apart what an interrupted
// fetch left: files of the selection (complete or partial) become the new
// files' partial files, with their held leaves moved along; anything else
// is dropped; and the tree appears only once complete.
func TestWriteTreeResumes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "model")
	tmp := store.PartialPath(out)
	left := map[string]string{ // what the interrupted fetch left
		filepath.Join(tmp, "config.json"):                         "complete from last time",
		store.PartialPath(filepath.Join(tmp, "weights", "a.bin")): "half of a",
		filepath.Join(tmp, "stale.txt"):                           "not selected now",
	}
	for p, data := range left {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := []manifest.File{{Path: "config.json"}, {Path: "weights/a.bin"}, {Path: "weights/b.bin"}}
	found := map[string]string{} // what each write found as its partial file
	var moves [][2]string
	write := func(f manifest.File, dest string) error {
		if data, err := os.ReadFile(store.PartialPath(dest)); err == nil {
			found[f.Path] = string(data)
			os.Remove(store.PartialPath(dest))
		}
		return os.WriteFile(dest, []byte("new "+f.Path), 0o644)
	}
	move := func(from, to string) error {
		moves = append(moves, [2]string{from, to})
		return nil
	}
	if err := writeTree(out, files, write, move); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"config.json": "complete from last time", "weights/a.bin": "half of a"}
	for k, v := range want {
		if found[k] != v {
			t.Errorf("write of %s found %q as its partial file, want %q", k, found[k], v)
		}
	}
	if _, ok := found["weights/b.bin"]; ok {
		t.Errorf("weights/b.bin found a partial file, none was left")
	}
	got := []string{}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(got)
	if !slices.Equal(got, []string{"config.json", "weights/a.bin", "weights/b.bin"}) {
		t.Errorf("tree holds %v, want exactly the selection", got)
	}
	for _, p := range []string{tmp, tmp + ".prev"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if len(moves) != 3 || moves[2] != [2]string{tmp, out} {
		t.Errorf("held leaves moved %v; want two reused files, then the tree to %s", moves, out)
	}
}
