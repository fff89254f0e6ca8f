package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// heldFile imports data as a file (copying its blocks), then turns every
// raw leaf into a reference into a file at path holding the same bytes, as
// a fetch that keeps bytes once leaves it, but without checksums (as a
// store from before they were kept). It returns the root.
func heldFile(t *testing.T, s *Store, path string, data []byte) cid.Cid {
	t.Helper()
	ctx := context.Background()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nd, err := Import(ctx, s.LocalDAG(), path, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var refs []FileRef
	for i, l := range nd.Links() {
		leaf, err := s.LocalDAG().Get(ctx, l.Cid)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, FileRef{CID: l.Cid, Offset: uint64(i * ChunkSize), Size: len(leaf.RawData())})
		if err := s.vbs.DeleteBlock(ctx, l.Cid); err != nil { // drop the copy
			t.Fatal(err)
		}
		if err := s.refs.sums.delete(ctx, l.Cid); err != nil { // and its checksum
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
	if err := Export(ctx, s.LocalDAG(), keep, out); err != nil {
		t.Fatalf("pinned file-backed content unreadable after rename and gc: %v", err)
	}
}

// TestServingTrustsOnlyVerifiedLeaves checks when Serving skips the
// re-hash: only for a leaf that a verification of its file covered, while
// the file is unchanged. A reference left from before the file was
// rewritten in place must never hand out the new bytes under the old CID.
func TestServingTrustsOnlyVerifiedLeaves(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	path := filepath.Join(t.TempDir(), "model.bin")
	v1 := randomBytes(9, 2*ChunkSize+5)
	old := heldFile(t, s, path, v1)
	oldLeaf := mustNode(t, s, old).Links()[0].Cid
	v2 := randomBytes(10, 2*ChunkSize+5) // the file rewritten in place
	cur := heldFile(t, s, path, v2)
	curLeaf := mustNode(t, s, cur).Links()[0].Cid
	runServingCases(t, s, []servingCase{
		{"not verified yet: re-hashed", func() {}, curLeaf, v2[:ChunkSize], false},
		{"verified: read without hashing", func() {
			time.Sleep(2 * racyWindow) // a state taken right after a write is not trusted
			if err := s.VerifyWholeFile(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}, curLeaf, v2[:ChunkSize], true},
		{"a stale reference into the verified file is hashed", func() {}, oldLeaf, nil, false},
		{"verified state forgotten (verify found a leaf gone bad in it): re-hashed", func() {
			s.forgetVerified(ctx, path)
			if f, err := s.OpenWholeFile(ctx, cur); !errors.Is(err, ErrUnverified) {
				if f != nil {
					f.Close()
				}
				t.Errorf("OpenWholeFile after forgetVerified: %v, want ErrUnverified", err)
			}
		}, curLeaf, v2[:ChunkSize], false},
		{"changed after verification: re-hashed, refused", func() {
			if err := os.WriteFile(path, v1, 0o644); err != nil {
				t.Fatal(err)
			}
		}, curLeaf, nil, false},
	})
}

// servingCase is one step of a test of Serving: prepare, then read leaf.
type servingCase struct {
	name     string
	prepare  func()
	leaf     cid.Cid
	want     []byte // nil: not served
	unhashed bool   // served without a SHA-256
}

// runServingCases runs the cases in order against s.Serving().
func runServingCases(t *testing.T, s *Store, cases []servingCase) {
	t.Helper()
	serving := s.Serving()
	for _, tt := range cases {
		tt.prepare()
		before := s.UnhashedReads()
		b, err := serving.Get(context.Background(), tt.leaf)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("%s: served %d bytes, want none", tt.name, len(b.RawData()))
		case tt.want != nil && (err != nil || !bytes.Equal(b.RawData(), tt.want)):
			t.Errorf("%s: got %v, want the leaf's bytes", tt.name, err)
		}
		if got := s.UnhashedReads() > before; got != tt.unhashed {
			t.Errorf("%s: read without hashing = %v, want %v", tt.name, got, tt.unhashed)
		}
	}
}

func mustNode(t *testing.T, s *Store, c cid.Cid) ipld.Node {
	t.Helper()
	nd, err := s.LocalDAG().Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// TestDropCopies: DropCopies deletes the stored copies of the leaves
// recorded as held in a file, and only of those; every leaf still reads
// back (the dropped ones from the file).
func TestDropCopies(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	path := filepath.Join(t.TempDir(), "weights")
	data := randomBytes(9, 3*ChunkSize+5)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nd, err := Import(ctx, s.LocalDAG(), path, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var leaves []cid.Cid
	var refs []FileRef
	for i, l := range nd.Links() {
		leaves = append(leaves, l.Cid)
		if i < 2 { // the first two are held in the file
			leaf, err := s.LocalDAG().Get(ctx, l.Cid)
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, FileRef{CID: l.Cid, Offset: uint64(i * ChunkSize), Size: len(leaf.RawData()), Sum: Checksum(leaf.RawData())})
		}
	}
	if err := s.PutFileRefs(ctx, path, refs); err != nil {
		t.Fatal(err)
	}
	before, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.DropCopies(ctx, leaves)
	if err != nil || n != 2 {
		t.Fatalf("DropCopies = %d, %v; want 2 copies dropped", n, err)
	}
	after, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before-after < 2*ChunkSize {
		t.Errorf("the store shrank by %d bytes, want at least %d", before-after, 2*ChunkSize)
	}
	for i, c := range leaves {
		b, err := s.Blockstore().Get(ctx, c)
		if err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		off := i * ChunkSize
		if !bytes.Equal(b.RawData(), data[off:min(off+ChunkSize, len(data))]) {
			t.Errorf("leaf %d reads back wrong", i)
		}
	}
}

// TestForgetFileRefs: the references to a removed file go, by list or by
// scan; those to another file stay.
func TestForgetFileRefs(t *testing.T) {
	ctx := context.Background()
	for _, byScan := range []bool{false, true} {
		s := openTestStore(t)
		dir := t.TempDir()
		gone, kept := filepath.Join(dir, "gone"), filepath.Join(dir, "kept")
		goneRoot := heldFile(t, s, gone, randomBytes(10, 2*ChunkSize+3))
		keptRoot := heldFile(t, s, kept, randomBytes(11, 2*ChunkSize+3))
		leaves := func(root cid.Cid) []cid.Cid {
			nd, err := s.LocalDAG().Get(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			var out []cid.Cid
			for _, l := range nd.Links() {
				out = append(out, l.Cid)
			}
			return out
		}
		list := leaves(goneRoot)
		if byScan {
			list = nil
		}
		if err := s.ForgetFileRefs(ctx, gone, list); err != nil {
			t.Fatal(err)
		}
		for _, c := range leaves(goneRoot) {
			if has, _ := s.Blockstore().Has(ctx, c); has {
				t.Errorf("scan %v: leaf %s of the removed file is still held", byScan, c)
			}
		}
		for _, c := range leaves(keptRoot) {
			if has, _ := s.Blockstore().Has(ctx, c); !has {
				t.Errorf("scan %v: leaf %s of the other file is gone", byScan, c)
			}
		}
	}
}
