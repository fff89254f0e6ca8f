package manifest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/storetest"
)

// TestImportFiles: files from anywhere become one model by the paths
// given, checked against the sha256 they must have; what is not a regular
// file, or does not hash right, is bad input.
func TestImportFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) (string, string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(data))
		return p, hex.EncodeToString(s[:])
	}
	a, sumA := write("a", "first file")
	b, sumB := write("b", "second file")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []manifest.FileSource
		ok    bool
	}{
		{"two files under new paths", []manifest.FileSource{{Path: "manifest.json", Real: a, SHA256: sumA, Copy: true}, {Path: "blobs/sha256-x", Real: b, SHA256: sumB}}, true},
		{"content not matching its sha256", []manifest.FileSource{{Path: "x", Real: a, SHA256: sumB}}, false},
		{"a symlink is not read", []manifest.FileSource{{Path: "x", Real: link, SHA256: sumA}}, false},
		{"a missing file", []manifest.FileSource{{Path: "x", Real: filepath.Join(dir, "none")}}, false},
		{"a path that leaves the model", []manifest.FileSource{{Path: "../x", Real: a}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := storetest.New(t)
			m, err := manifest.ImportFiles(context.Background(), st.LocalDAG(), tt.files, manifest.ImportOptions{Name: "library/tiny", Revision: "latest", NoCopy: true})
			if !tt.ok {
				if !errors.Is(err, manifest.ErrBadInput) {
					t.Fatalf("err = %v, want ErrBadInput", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				got, ok := m.Lookup(f.Path)
				if !ok || got.SHA256 != f.SHA256 {
					t.Errorf("%s: %+v, want sha256 %s", f.Path, got, f.SHA256)
				}
			}
			if m.Revision != "latest" || m.Validate() != nil {
				t.Errorf("manifest %+v does not validate", m)
			}
		})
	}
}
