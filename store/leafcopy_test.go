package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func rawCID(t *testing.T, data []byte) cid.Cid {
	t.Helper()
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// TestLeafCopy appends more leaves than one batch to a copy: each reads
// back through the block store and is served by its checksum, the copy is
// one file of their bytes in order, and GC removes it once nothing pins
// its leaves. An empty copy leaves no file.
func TestLeafCopy(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "page cache"
		if direct {
			name = "direct I/O"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "store")
			if err := Init(dir); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, dir, Options{DirectIO: direct, Sync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			empty, err := s.NewLeafCopy()
			if err != nil {
				t.Fatal(err)
			}
			if err := empty.Close(ctx); err != nil {
				t.Fatal(err)
			}
			lc, err := s.NewLeafCopy()
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			var cids []cid.Cid
			for i := range leafCopyBatch + 3 {
				size := 64 << 10
				if i == leafCopyBatch+2 {
					size = 1000 // a short tail, as a file's last leaf
				}
				data := randomBytes(uint64(i), size)
				c := rawCID(t, data)
				if err := lc.Put(ctx, c, data); err != nil {
					t.Fatal(err)
				}
				all = append(all, data...)
				cids = append(cids, c)
			}
			if err := lc.Close(ctx); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, copiesDir))
			if len(entries) != 1 {
				t.Fatalf("%d files in %s, want the one copy", len(entries), copiesDir)
			}
			kept, _ := os.ReadFile(filepath.Join(dir, copiesDir, entries[0].Name()))
			if !bytes.Equal(kept, all) {
				t.Fatal("the copy does not hold the leaves in order")
			}
			for _, c := range cids {
				b, err := s.Serving().Get(ctx, c)
				if err != nil {
					t.Fatalf("leaf %s: %v", c, err)
				}
				if !rawCID(t, b.RawData()).Equals(c) {
					t.Fatalf("leaf %s reads back wrong", c)
				}
			}
			if s.UnhashedReads() != uint64(len(cids)) {
				t.Errorf("%d of %d leaves served by their checksum", s.UnhashedReads(), len(cids))
			}
			if _, err := s.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, copiesDir)); len(entries) != 0 {
				t.Errorf("GC left %d copies no pin reaches", len(entries))
			}
		})
	}
}
