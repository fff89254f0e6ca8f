package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
)

// TestServingChecksummedLeaves checks when Serving skips the SHA-256 of a
// leaf because its bytes still match the CRC-32C taken when they were
// verified, and that every kind of damage still falls through to the
// re-hash, which refuses (and quarantines) bad bytes.
func TestServingChecksummedLeaves(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)

	copied := randomBytes(21, 2*ChunkSize+9)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(copied))
	if err != nil {
		t.Fatal(err)
	}
	copiedLeaf := nd.Links()[0].Cid

	// A file held by reference, with checksums as a fetch records them.
	path := filepath.Join(t.TempDir(), "held.bin")
	held := randomBytes(22, 2*ChunkSize)
	heldLeaf := mustNode(t, s, heldFile(t, s, path, held)).Links()[0].Cid
	sum := Checksum(held[:ChunkSize])
	if err := s.PutFileRefs(ctx, path, []FileRef{{CID: heldLeaf, Size: ChunkSize, Sum: sum}}); err != nil {
		t.Fatal(err)
	}
	// A second file held without checksums.
	bare := filepath.Join(t.TempDir(), "bare.bin")
	bareData := randomBytes(23, 2*ChunkSize)
	bareLeaf := mustNode(t, s, heldFile(t, s, bare, bareData)).Links()[0].Cid

	runServingCases(t, s, []servingCase{
		{"copied leaf: checksum matches, no re-hash", func() {}, copiedLeaf, copied[:ChunkSize], true},
		{"held leaf: checksum matches, no re-hash", func() {}, heldLeaf, held[:ChunkSize], true},
		{"held leaf without a checksum: re-hashed", func() {}, bareLeaf, bareData[:ChunkSize], false},
		{"held file changed in place: re-hashed, refused", func() {
			changed := bytes.Clone(held)
			changed[len(changed)/3] ^= 0x10
			if err := os.WriteFile(path, changed, 0o644); err != nil {
				t.Fatal(err)
			}
		}, heldLeaf, nil, false},
		{"copied leaf rotted: re-hashed, quarantined", func() {
			corruptBlock(t, s, copiedLeaf)
		}, copiedLeaf, nil, false},
	})
	if got := s.Quarantined(); got != 1 {
		t.Errorf("quarantined %d blocks, want the rotted one", got)
	}
}

// corruptBlock flips one byte of c's file in s's block store.
func corruptBlock(t *testing.T, s *Store, c cid.Cid) {
	t.Helper()
	name := strings.TrimPrefix(dshelp.MultihashToDsKey(c.Hash()).String(), "/") + ".data"
	matches, _ := filepath.Glob(filepath.Join(s.Dir(), blocksDir, "*", name))
	if len(matches) != 1 {
		t.Fatalf("block file of %s: found %v", c, matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(matches[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGCDropsChecksums checks that collecting a block forgets its checksum.
func TestGCDropsChecksums(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(randomBytes(24, ChunkSize+3)))
	if err != nil {
		t.Fatal(err)
	}
	leaf := nd.Links()[0].Cid
	if _, ok := s.refs.sums.get(ctx, leaf); !ok {
		t.Fatal("no checksum kept for a stored leaf")
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.refs.sums.get(ctx, leaf); ok {
		t.Error("checksum of a collected leaf is still kept")
	}
}

// TestReadBlockIntoBuffer checks that Serving reads a leaf into the
// caller's buffer, and any other block correctly too.
func TestReadBlockIntoBuffer(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	data := randomBytes(25, 2*ChunkSize+1)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r := s.Serving().(interface {
		ReadBlock(context.Context, cid.Cid, []byte) ([]byte, error)
	})
	buf := make([]byte, ChunkSize)
	tests := []struct {
		name  string
		c     cid.Cid
		want  []byte
		inBuf bool
	}{
		{"a leaf lands in the buffer", nd.Links()[0].Cid, data[:ChunkSize], true},
		{"the short last leaf too", nd.Links()[2].Cid, data[2*ChunkSize:], true},
		{"an inner node is read and re-hashed", nd.Cid(), nd.RawData(), false},
	}
	for _, tt := range tests {
		got, err := r.ReadBlock(ctx, tt.c, buf)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %d bytes, %v; want the block's %d", tt.name, len(got), err, len(tt.want))
			continue
		}
		if inBuf := &got[0] == &buf[0]; inBuf != tt.inBuf {
			t.Errorf("%s: read into the buffer = %v, want %v", tt.name, inBuf, tt.inBuf)
		}
	}
}

// TestVerifyKeepsChecksums checks that verify gives the leaves of a store
// from before checksums theirs, after which they are served without a
// re-hash, and that a second verify has nothing to add.
func TestVerifyKeepsChecksums(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	path := filepath.Join(t.TempDir(), "old.bin")
	root := heldFile(t, s, path, randomBytes(26, 2*ChunkSize+7)) // three leaves without checksums, and a root
	if err := s.Pin(ctx, root, "old"); err != nil {
		t.Fatal(err)
	}
	leaf := mustNode(t, s, root).Links()[0].Cid
	serving := s.Serving()
	for i, want := range []int{3, 0} {
		rep, err := s.Verify(ctx)
		if err != nil || !rep.OK() {
			t.Fatalf("verify %d: %+v, %v", i+1, rep, err)
		}
		if rep.ChecksumsKept != want {
			t.Errorf("verify %d kept %d checksums, want %d", i+1, rep.ChecksumsKept, want)
		}
	}
	before := s.UnhashedReads()
	if _, err := serving.Get(ctx, leaf); err != nil || s.UnhashedReads() == before {
		t.Errorf("leaf after verify: %v, served without re-hash: %v", err, s.UnhashedReads() > before)
	}
}
