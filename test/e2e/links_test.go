package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// linkDir makes dir/top with a file and the given symlinks (path →
// target), and a file beside top that an escaping link reaches.
func linkDir(t *testing.T, links [][2]string) string {
	t.Helper()
	top := filepath.Join(t.TempDir(), "top")
	harness.WriteFile(t, filepath.Join(top, "file"), []byte("inside\n"))
	harness.WriteFile(t, filepath.Join(top, "d", "e", "keep"), []byte("deep\n"))
	harness.WriteFile(t, filepath.Join(top, "..", "x"), []byte("outside: private\n"))
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(top, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

// TestSymlinkChains: add, import and fetch refuse a directory whose
// symlink leaves it once the links in its chain are followed, with status
// 2 and a message naming the link; links that stay inside keep working.
func TestSymlinkChains(t *testing.T) {
	a := harness.NewNode(t)
	a.Start()
	b := harness.NewNode(t)
	b.Start()
	b.MustRun("connect", a.TCPAddr())

	escaping := [][2]string{
		// a -> d/e/b -> ../../../x: the second link leaves.
		{"d/e/b", "../../../x"}, {"a", "d/e/b"},
	}
	sneaking := [][2]string{
		// c -> . and z -> c/../x: each alone stays inside; together
		// z is top/../x.
		{"c", "."}, {"z", "c/../x"},
	}
	inside := [][2]string{{"d/e/b", "../../file"}, {"a", "d/e/b"}}

	for _, tt := range []struct {
		name  string
		links [][2]string
		// what add and import name: import follows links, so it meets
		// c -> . as a loop before z leaves through it.
		addNamed, importNamed, importWhy string
	}{
		{"a chain a -> b -> ../../x", escaping, "a", "a", "leaves"},
		{"links that leave only together", sneaking, "z", "c", "a loop"},
	} {
		t.Run("add refuses "+tt.name, func(t *testing.T) {
			top := linkDir(t, tt.links)
			r := a.Run("add", top)
			if r.Code != 2 || !strings.Contains(r.Stderr, filepath.Join(top, tt.addNamed)) || !strings.Contains(r.Stderr, "leaves") {
				t.Errorf("add: exit %d, stderr %q; want 2 naming the link %s", r.Code, r.Stderr, tt.addNamed)
			}
		})
		t.Run("import refuses "+tt.name, func(t *testing.T) {
			top := linkDir(t, tt.links)
			r := a.Run("import", top, "--name", "acme/links")
			if r.Code != 2 || !strings.Contains(r.Stderr, filepath.Join(top, tt.importNamed)) || !strings.Contains(r.Stderr, tt.importWhy) {
				t.Errorf("import: exit %d, stderr %q; want 2 naming the link %s (%s)", r.Code, r.Stderr, tt.importNamed, tt.importWhy)
			}
		})
	}

	t.Run("an inside chain is added, fetched and read through", func(t *testing.T) {
		top := linkDir(t, inside)
		root := a.Add(top)
		out := filepath.Join(t.TempDir(), "out")
		b.MustRun("fetch", root, "-o", out)
		if got, err := os.ReadFile(filepath.Join(out, "a")); err != nil || string(got) != "inside\n" {
			t.Errorf("reading through the fetched chain: %q, %v", got, err)
		}
		if target, err := os.Readlink(filepath.Join(out, "a")); err != nil || target != "d/e/b" {
			t.Errorf("the link was not kept as a link: %q, %v", target, err)
		}
	})

	t.Run("an inside chain is imported, its files followed", func(t *testing.T) {
		top := linkDir(t, inside)
		var res struct{ Files int }
		a.JSON(&res, "import", top, "--name", "acme/inside-links", "--json")
		if res.Files != 4 { // a, d/e/b, d/e/keep, file
			t.Errorf("imported %d files, want 4", res.Files)
		}
	})

	t.Run("fetch refuses a peer's directory whose links leave together", func(t *testing.T) {
		l := startLiar(t, "honest", t.TempDir(), "-links")
		n := harness.NewNode(t)
		n.Start()
		n.MustRun("connect", l.Addr)
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		r := n.Run("fetch", l.Root, "-o", out)
		if r.Code != 2 || !strings.Contains(r.Stderr, "symlink a -> c/../escaped") || !strings.Contains(r.Stderr, "leaves") {
			t.Errorf("fetch: exit %d, stderr %q; want 2 naming the link a", r.Code, r.Stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("the refused fetch left %v", entries)
		}
	})
}
