package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/ufs"
)

// TestReopen: a store from New can be closed and opened again with Open,
// and what was pinned is still there; the cleanups close both once.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	s := New(t)
	nd, err := store.BuildFile(ctx, s.LocalDAG(), bytes.NewReader([]byte("kept")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, nd.Cid(), "kept"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := Open(t, s.Dir(), store.Options{Sync: true})
	if ok, err := again.IsPinned(ctx, nd.Cid()); err != nil || !ok {
		t.Errorf("after reopening: pinned %v, %v", ok, err)
	}
}

// TestMemDAG: the in-memory DAG holds what is added to it, and only that.
func TestMemDAG(t *testing.T) {
	ctx := context.Background()
	dag := MemDAG()
	nd, err := store.BuildFile(ctx, dag, bytes.NewReader([]byte("in memory")))
	if err != nil {
		t.Fatal(err)
	}
	if size, ok := ufs.FileSize(nd); !ok || size != 9 {
		t.Errorf("file size %d, %v", size, ok)
	}
	if _, err := DAGOver(MemBlockstore()).Get(ctx, nd.Cid()); err == nil {
		t.Error("another in-memory DAG has the node")
	}
}
