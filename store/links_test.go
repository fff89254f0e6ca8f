package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// linkTree makes root/top/... with the given symlinks (path → target) and
// directories, and returns root/top. Everything named lies under root, so
// a link that "escapes" top still lands in the test's own directory.
func linkTree(t *testing.T, dirs []string, links [][2]string) string {
	t.Helper()
	top := filepath.Join(t.TempDir(), "outer", "top")
	for _, d := range append([]string{"."}, dirs...) {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "file"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "..", "x"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(top, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

func TestResolveInside(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links [][2]string
		check string // the link to resolve
		want  string // resolved, relative to top; "" means refused
	}{
		{"a plain link to a file inside", nil, [][2]string{{"l", "file"}}, "l", "file"},
		{"a link into a sub-directory and back up stays inside", []string{"d"}, [][2]string{{"d/l", "../file"}}, "d/l", "file"},
		{"a dangling link that stays inside is kept", nil, [][2]string{{"l", "missing/name"}}, "l", "missing/name"},
		{"an inside chain a -> b -> file", []string{"d"}, [][2]string{{"a", "d/b"}, {"d/b", "../file"}}, "a", "file"},
		{"one link straight out", nil, [][2]string{{"l", "../x"}}, "l", ""},
		{"an absolute target", nil, [][2]string{{"l", "/etc/passwd"}}, "l", ""},
		{"the chain a -> b -> ../../x leaves on its second link", []string{"d/e"}, [][2]string{{"a", "d/e/b"}, {"d/e/b", "../../../x"}}, "a", ""},
		// Lexically c/.. is top itself; but c is top, so c/.. is outer.
		{"a link up through a link to the top leaves", nil, [][2]string{{"c", "."}, {"a", "c/../x"}}, "a", ""},
		// Lexically up/../../x leaves; but up is d/e, and d/e/../../x is x.
		{"a link back up from a directory link resolves where the kernel does", []string{"d/e"}, [][2]string{{"up", "d/e"}, {"a", "up/../../x"}}, "a", "x"},
		{"a loop ends at MaxLinkHops", nil, [][2]string{{"a", "b"}, {"b", "a"}}, "a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := linkTree(t, tt.dirs, tt.links)
			got, err := ResolveInside(top, filepath.Join(top, tt.check))
			if tt.want == "" {
				if !errors.Is(err, ErrBadInput) {
					t.Fatalf("resolved to %q, %v; want ErrBadInput", got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(top, tt.want) {
				t.Fatalf("resolved to %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestImportSymlinkChains: add keeps links whose whole chain stays inside
// and refuses, naming the link, those that leave.
func TestImportSymlinkChains(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links [][2]string
		ok    bool
	}{
		{"inside chain", []string{"d"}, [][2]string{{"a", "d/b"}, {"d/b", "../file"}}, true},
		{"chain a -> b -> ../../x", []string{"d/e"}, [][2]string{{"a", "d/e/b"}, {"d/e/b", "../../../x"}}, false},
		{"a link up through a link to the top", nil, [][2]string{{"c", "."}, {"a", "c/../x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := linkTree(t, tt.dirs, tt.links)
			_, err := Import(context.Background(), openTestStore(t).LocalDAG(), top, ImportOptions{})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("import: %v", err)
			case !tt.ok && !errors.Is(err, ErrLinkEscapes):
				t.Fatalf("import of a tree whose link leaves it: %v, want ErrLinkEscapes", err)
			}
		})
	}
}

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
			if rel, err := filepath.Rel(realDest, got); err != nil || !isLocalPath(rel) {
				t.Fatalf("a -> %q, c -> %q: link %s resolves to %s, outside the output", a, c, l, got)
			}
		}
		if got := listTree(t, base); got[0] != "." || len(got) < 2 || got[1] != "out" {
			t.Fatalf("export wrote %q", got)
		}
	})
}
