package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestExportRefusesLinkChains: a fetched directory whose links are each
// harmless alone but leave the output together is refused whole, however
// the links are ordered.
func TestExportRefusesLinkChains(t *testing.T) {
	tests := []struct {
		name    string
		entries map[string]string
		ok      bool
	}{
		{"a -> c/.. with c -> . (a written first)", map[string]string{"a": "c/../escaped", "c": "."}, false},
		{"z -> c/.. with c -> . (z written last)", map[string]string{"z": "c/../escaped", "c": "."}, false},
		{"a -> b -> file stays inside", map[string]string{"a": "b", "b": "file", "file": ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t)
			root := hostileDir(t, s.LocalDAG(), tt.entries)
			base := t.TempDir()
			dest := filepath.Join(base, "out")
			err := Export(ctx, s.LocalDAG(), root, dest)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dest, "a"))
				if err != nil || string(got) != "payload file" {
					t.Fatalf("read through the chain: %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrLinkEscapes) || !errors.Is(err, ErrBadInput) {
				t.Fatalf("export: %v, want ErrLinkEscapes", err)
			}
			if got := listTree(t, base); !slices.Equal(got, []string{"."}) {
				t.Errorf("a refused export left files behind: %q", got)
			}
		})
	}
}

// FuzzExportSymlinks exports a directory with two links of any targets
// (and a file) and checks what the kernel makes of the result: every link
// that resolves at all resolves inside the output, and nothing is written
// beside it.
func FuzzExportSymlinks(f *testing.F) {
	for _, s := range [][2]string{{"c/../x", "."}, {"b", "file"}, {"../x", "file"}, {"c/c/../..", "."}, {"c/file", "."}, {"/etc", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, c string) {
		if a == "" || c == "" || len(a) > 64 || len(c) > 64 {
			return
		}
		ctx := context.Background()
		s := openTestStore(t)
		root := hostileDir(t, s.LocalDAG(), map[string]string{"a": a, "c": c, "file": ""})
		base := t.TempDir()
		dest := filepath.Join(base, "out")
		if err := Export(ctx, s.LocalDAG(), root, dest); err != nil {
			if got := listTree(t, base); !slices.Equal(got, []string{"."}) {
				t.Fatalf("a refused export left %q", got)
			}
			return
		}
		realDest, err := filepath.EvalSymlinks(dest)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []string{"a", "c"} {
			got, err := filepath.EvalSymlinks(filepath.Join(dest, l))
			if err != nil {
				continue // dangling or a loop: leads nowhere
			}
			if rel, err := filepath.Rel(realDest, got); err != nil || (rel != "." && !filepath.IsLocal(rel)) {
				t.Fatalf("a -> %q, c -> %q: link %s resolves to %s, outside the output", a, c, l, got)
			}
		}
		if got := listTree(t, base); got[0] != "." || len(got) < 2 || got[1] != "out" {
			t.Fatalf("export wrote %q", got)
		}
	})
}
