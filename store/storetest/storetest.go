// Package storetest gives tests a store the three ways they need one: a
// real store in a fresh temporary directory (New), a store directory
// opened with chosen options, again after a Close or another time (Open),
// and block stores and DAGs kept in memory for code that needs no disk
// (MemBlockstore, MemDAG). Every store it opens is closed when the test
// ends.
package storetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
)

// New initialises a store in a new temporary directory and opens it with
// opts (the zero Options if none are given).
func New(t testing.TB, opts ...store.Options) *store.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := store.Init(dir); err != nil {
		t.Fatal(err)
	}
	var o store.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	return Open(t, dir, o)
}

// Open opens the store initialised in dir with opts. The test may close
// it itself (to open it again); otherwise it is closed when the test ends.
func Open(t testing.TB, dir string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // a second Close does nothing
	return s
}

// MemBlockstore is an empty block store in memory, safe for concurrent use.
func MemBlockstore() blockstore.Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
}

// MemDAG is a DAG service over an empty in-memory block store.
func MemDAG() ipld.DAGService { return DAGOver(MemBlockstore()) }

// DAGOver is a DAG service over bs alone (no exchange: what bs lacks is
// not found).
func DAGOver(bs blockstore.Blockstore) ipld.DAGService {
	return merkledag.NewDAGService(blockservice.New(bs, nil))
}

// LinkTree makes root/top/... with the given symlinks (path → target) and
// directories, and returns root/top. Everything named lies under root, so
// a link that "escapes" top still lands in the test's own directory.
func LinkTree(t *testing.T, dirs []string, links [][2]string) string {
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
