package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// hostileDir stores a UnixFS directory whose entries have the given names
// (no importer would write them; a peer can) and returns its CID. Each
// entry is a small file, or a symlink when its target is set.
func hostileDir(t testing.TB, dag ipld.DAGService, entries map[string]string) cid.Cid {
	t.Helper()
	ctx := context.Background()
	dir := unixfs.EmptyDirNode()
	dir.SetCidBuilder(merkledag.V1CidPrefix())
	for name, target := range entries {
		var child ipld.Node = merkledag.NewRawNode([]byte("payload " + name))
		if target != "" {
			data, err := unixfs.SymlinkData(target)
			if err != nil {
				t.Fatal(err)
			}
			child = merkledag.NodeWithData(data)
		}
		if err := dag.Add(ctx, child); err != nil {
			t.Fatal(err)
		}
		if err := dir.AddNodeLink(name, child); err != nil {
			t.Fatal(err)
		}
	}
	if err := dag.Add(ctx, dir); err != nil {
		t.Fatal(err)
	}
	return dir.Cid()
}

// nestedHostileDir puts dir under an entry called "sub", so the bad name is
// one level down.
func nestedHostileDir(t testing.TB, dag ipld.DAGService, inner cid.Cid) cid.Cid {
	t.Helper()
	ctx := context.Background()
	nd, err := dag.Get(ctx, inner)
	if err != nil {
		t.Fatal(err)
	}
	outer := unixfs.EmptyDirNode()
	outer.SetCidBuilder(merkledag.V1CidPrefix())
	if err := outer.AddNodeLink("sub", nd); err != nil {
		t.Fatal(err)
	}
	if err := dag.Add(ctx, outer); err != nil {
		t.Fatal(err)
	}
	return outer.Cid()
}

// listTree returns every path under root, relative to it.
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func TestExportRefusesHostileDAGs(t *testing.T) {
	tests := []struct {
		name    string
		entries map[string]string
		nested  bool
	}{
		{"dot-dot would write beside the output", map[string]string{"..": ""}, false},
		{"dot-dot one level down", map[string]string{"..": ""}, true},
		{"dot is the directory itself", map[string]string{".": ""}, false},
		{"empty name", map[string]string{"": ""}, false},
		{"slash would create a path", map[string]string{"a/b": ""}, false},
		{"path traversal in one name", map[string]string{"../../escaped": ""}, true},
		{"backslash is a separator on Windows", map[string]string{`..\escaped`: ""}, false},
		{"NUL no file system can hold", map[string]string{"a\x00b": ""}, false},
		{"absolute name", map[string]string{"/etc/passwd": ""}, false},
		{"symlink out of the output", map[string]string{"link": "../../../etc"}, false},
		{"absolute symlink", map[string]string{"link": "/etc/passwd"}, true},
		{"a good entry written first does not excuse a bad one", map[string]string{"a-good-file": "", "z/../../escape": ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t)
			root := hostileDir(t, s.LocalDAG(), tt.entries)
			if tt.nested {
				root = nestedHostileDir(t, s.LocalDAG(), root)
			}
			base := t.TempDir()
			parent := filepath.Join(base, "parent")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(parent, "out")
			if err := Export(ctx, s.LocalDAG(), root, dest); err == nil {
				t.Fatal("export of a hostile DAG succeeded")
			}
			if got := listTree(t, base); !slices.Equal(got, []string{".", "parent"}) {
				t.Errorf("a refused export left files behind: %q", got)
			}
		})
	}
}

func FuzzCheckEntryName(f *testing.F) {
	for _, s := range []string{"model.safetensors", "", ".", "..", "a/b", `a\b`, "a\x00", "...", " ", "ü", "/"} {
		f.Add(s)
	}
	base := filepath.Join(os.TempDir(), "dest")
	f.Fuzz(func(t *testing.T, name string) {
		if CheckEntryName(name) != nil {
			return
		}
		p := filepath.Join(base, name)
		if filepath.Dir(p) != base || filepath.Base(p) != name {
			t.Errorf("accepted %q, which joins to %s, not a direct child of %s", name, p, base)
		}
	})
}

// FuzzExportEntryName exports a directory with one entry of a fuzzed name
// and checks that nothing is ever written outside the destination.
func FuzzExportEntryName(f *testing.F) {
	for _, s := range []string{"file", "..", "a/b", "", ".", "../x", `..\x`, "x\x00", "/abs"} {
		f.Add(s, "")
		f.Add(s, "../escape")
	}
	ctx := context.Background()
	dir := filepath.Join(f.TempDir(), "store")
	if err := Init(dir); err != nil {
		f.Fatal(err)
	}
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, name, target string) {
		root := hostileDir(t, s.LocalDAG(), map[string]string{name: target})
		base := t.TempDir()
		dest := filepath.Join(base, "out")
		err := Export(ctx, s.LocalDAG(), root, dest)
		for _, p := range listTree(t, base) {
			if p != "." && p != "out" && filepath.Dir(p) != "out" {
				t.Fatalf("entry %q (target %q): export (err %v) wrote %s", name, target, err, p)
			}
		}
	})
}
