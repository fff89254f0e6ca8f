package manifest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/storetest"
)

// TestImportFollowsOnlyInsideChains: import follows symlinks (a Hugging
// Face snapshot is all links) when the whole chain stays inside the folder,
// and refuses, naming the link, a chain that leaves it, also when each link
// alone looks harmless.
func TestImportFollowsOnlyInsideChains(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links [][2]string // path → target, made in order
		files []string    // the manifest's paths when accepted; nil: refused
		named string      // the link the refusal names
	}{
		{"inside chain a -> d/b -> ../file", []string{"d"}, [][2]string{{"d/b", "../file"}, {"a", "d/b"}},
			[]string{"a", "d/b", "file"}, ""},
		{"a directory link, read at its real place", []string{"d/e"}, [][2]string{{"up", "d/e"}, {"d/e/f", "../../file"}},
			[]string{"d/e/f", "file", "up/f"}, ""},
		{"chain a -> d/e/b -> ../../../x", []string{"d/e"}, [][2]string{{"d/e/b", "../../../x"}, {"a", "d/e/b"}},
			nil, "a"},
		{"a -> c/../x with c -> . (each alone stays inside)", nil, [][2]string{{"c", "."}, {"a", "c/../x"}},
			nil, "a"},
		{"through a directory link back out", []string{"d"}, [][2]string{{"d/up", ".."}, {"d/a", "up/../x"}},
			nil, "d/a"},
		{"a link to a directory it is in is a loop", []string{"d"}, [][2]string{{"d/up", ".."}},
			nil, "d/up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := filepath.Join(t.TempDir(), "top")
			for _, d := range append([]string{"."}, tt.dirs...) {
				must(t, os.MkdirAll(filepath.Join(top, d), 0o755))
			}
			must(t, os.WriteFile(filepath.Join(top, "file"), []byte("inside"), 0o644))
			must(t, os.WriteFile(filepath.Join(top, "..", "x"), []byte("outside"), 0o644))
			for _, l := range tt.links {
				must(t, os.Symlink(l[1], filepath.Join(top, l[0])))
			}
			m, err := manifest.Import(context.Background(), storetest.MemDAG(), top, manifest.ImportOptions{Name: "acme/links"})
			if tt.files == nil {
				loop := err != nil && strings.Contains(err.Error(), "a loop")
				if !(errors.Is(err, store.ErrLinkEscapes) || loop) || !errors.Is(err, manifest.ErrBadInput) {
					t.Fatalf("import: %v, want a refusal (a link leaving or a loop, bad input)", err)
				}
				if !strings.Contains(err.Error(), filepath.Join(top, tt.named)) {
					t.Errorf("the refusal does not name the link %s: %v", tt.named, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range m.Files {
				got = append(got, f.Path)
				if f.Size != uint64(len("inside")) {
					t.Errorf("%s: %d bytes, want the inside file's", f.Path, f.Size)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.files, ",") {
				t.Errorf("files %q, want %q", got, tt.files)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
