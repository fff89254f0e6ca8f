package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
)

// heldFile imports data as a file (copying its blocks), then turns every
// raw leaf into a reference into a file at path holding the same bytes, as
// a fetch that keeps bytes once leaves it. It returns the root.
func heldFile(t *testing.T, s *Store, path string, data []byte) cid.Cid {
	t.Helper()
	ctx := context.Background()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nd, err := Import(ctx, s.DAG(), path, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var refs []FileRef
	for i, l := range nd.Links() {
		leaf, err := s.DAG().Get(ctx, l.Cid)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, FileRef{CID: l.Cid, Offset: uint64(i * ChunkSize), Size: len(leaf.RawData())})
		if err := s.vbs.DeleteBlock(ctx, l.Cid); err != nil { // drop the copy
			t.Fatal(err)
		}
	}
	if err := s.PutFileRefs(ctx, path, refs); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// TestFileRefsAreCollected checks that GC drops the references of an
// unpinned root, not only its stored blocks, and keeps those of a pinned
// one; and that MoveFileRefs follows a renamed file.
func TestFileRefsAreCollected(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	dir := t.TempDir()
	keep := heldFile(t, s, filepath.Join(dir, "keep"), randomBytes(7, 3*ChunkSize+9))
	drop := heldFile(t, s, filepath.Join(dir, "drop"), randomBytes(8, 2*ChunkSize+1))
	unlock := s.Blockstore().PinLock(ctx)
	if err := s.Pin(ctx, keep, "keep"); err != nil {
		t.Fatal(err)
	}
	unlock.Unlock(ctx)

	moved := filepath.Join(dir, "renamed")
	if n, err := s.MoveFileRefs(ctx, filepath.Join(dir, "keep"), moved); err != nil || n != 4 {
		t.Fatalf("MoveFileRefs = %d, %v; want the 4 leaves of keep", n, err)
	}
	if err := os.Rename(filepath.Join(dir, "keep"), moved); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// drop: a root and three leaves go; keep: a root and four leaves stay.
	if res.Removed != 4 || res.Kept != 5 || res.Freed >= ChunkSize {
		t.Errorf("gc = %+v, want 4 removed (drop's root and 3 references), 5 kept, only the root's bytes freed", res)
	}
	if has, _ := s.Blockstore().Has(ctx, drop); has {
		t.Error("the unpinned root survived gc")
	}
	refs, err := s.fs.FileManager().AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range refs {
		n++
	}
	if n != 4 {
		t.Errorf("%d file references left after gc, want keep's 4", n)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s.DAG(), keep, out); err != nil {
		t.Fatalf("pinned file-backed content unreadable after rename and gc: %v", err)
	}
}
