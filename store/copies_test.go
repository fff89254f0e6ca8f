package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// addedCopies lists the store's copies of added files.
func addedCopies(t *testing.T, s *Store) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(s.Dir(), copiesDir, "*"))
	return m
}

// readBack reads the file DAG root out of s.
func readBack(t *testing.T, s *Store, root cid.Cid) []byte {
	t.Helper()
	ctx := context.Background()
	nd, err := s.LocalDAG().Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(ctx, nd, s.LocalDAG())
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAddKeepsWholeCopies checks that Add keeps a file of more than one
// leaf as one whole copy (with and without direct I/O), under the CID
// Import gives, served without re-hashing, and that GC frees the copy once
// its root is unpinned, and a stray copy an interrupted add left.
func TestAddKeepsWholeCopies(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		size   int
		copies int
	}{
		{ChunkSize - 3, 0}, // one leaf: the block store
		{ChunkSize, 0},
		{3*ChunkSize + 5, 1},
		{8 * ChunkSize, 1},
	} {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d bytes, direct %v", tc.size, direct), func(t *testing.T) {
				data := randomBytes(uint64(tc.size), tc.size)
				src := filepath.Join(t.TempDir(), "w.bin")
				if err := os.WriteFile(src, data, 0o644); err != nil {
					t.Fatal(err)
				}
				want, err := Import(ctx, openTestStore(t).LocalDAG(), src, ImportOptions{})
				if err != nil {
					t.Fatal(err)
				}
				s := openTestStore(t)
				s.directIO = direct
				nd, err := s.Add(ctx, src, ImportOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !nd.Cid().Equals(want.Cid()) {
					t.Fatalf("Add gave %s, Import %s", nd.Cid(), want.Cid())
				}
				copies := addedCopies(t, s)
				if len(copies) != tc.copies {
					t.Fatalf("%d copies, want %d", len(copies), tc.copies)
				}
				if !bytes.Equal(readBack(t, s, nd.Cid()), data) {
					t.Fatal("bytes read back differ")
				}
				if tc.copies == 1 {
					if got, _ := os.ReadFile(copies[0]); !bytes.Equal(got, data) {
						t.Fatal("the copy differs from the file")
					}
					runServingCases(t, s, []servingCase{
						{"a leaf of the copy", func() {}, nd.Links()[1].Cid, data[ChunkSize : 2*ChunkSize], true},
					})
				}
				if err := s.Pin(ctx, nd.Cid(), "w"); err != nil {
					t.Fatal(err)
				}
				stray := filepath.Join(s.Dir(), copiesDir, "stray.data") // an add killed before it recorded anything
				os.MkdirAll(filepath.Dir(stray), 0o700)
				os.WriteFile(stray, []byte("left over"), 0o600)
				if _, err := s.GC(ctx); err != nil {
					t.Fatal(err)
				}
				if got := addedCopies(t, s); len(got) != tc.copies {
					t.Errorf("after GC with the root pinned: copies %v, want %d", got, tc.copies)
				}
				if err := s.Unpin(ctx, nd.Cid()); err != nil {
					t.Fatal(err)
				}
				res, err := s.GC(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := addedCopies(t, s); len(got) != 0 || (tc.copies == 1 && res.Freed < uint64(tc.size)) {
					t.Errorf("after GC of the unpinned root: copies %v, freed %d", got, res.Freed)
				}
			})
		}
	}
}

// TestRotInACopyIsQuarantined checks that a leaf gone bad in one of the
// store's copies is treated like a rotten block: never served, kept in
// quarantine, reported missing by verify.
func TestRotInACopyIsQuarantined(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	data := randomBytes(31, 4*ChunkSize)
	src := filepath.Join(t.TempDir(), "w.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nd, err := s.Add(ctx, src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, nd.Cid(), "w"); err != nil {
		t.Fatal(err)
	}
	copies := addedCopies(t, s)
	if len(copies) != 1 {
		t.Fatalf("copies %v", copies)
	}
	rotten := append([]byte(nil), data...)
	rotten[2*ChunkSize+100] ^= 0x04 // the third leaf
	if err := os.WriteFile(copies[0], rotten, 0o600); err != nil {
		t.Fatal(err)
	}
	leaf := nd.Links()[2].Cid
	if b, err := s.Serving().Get(ctx, leaf); err == nil {
		t.Fatalf("served %d bytes of a rotten leaf", len(b.RawData()))
	}
	if got := s.Quarantined(); got != 1 {
		t.Errorf("quarantined %d, want 1", got)
	}
	if q, _ := os.ReadFile(filepath.Join(s.QuarantineDir(), leaf.String()+".data")); !bytes.Equal(q, rotten[2*ChunkSize:3*ChunkSize]) {
		t.Error("quarantine does not hold the rotten bytes")
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Missing) != 1 || rep.Missing[0] != leaf.String() || len(rep.Damaged) != 1 {
		t.Errorf("verify = %+v, want the rotten leaf missing", rep)
	}
}
