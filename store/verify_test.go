package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// corruptLargestBlock flips one byte in the largest block file of s (a leaf
// of file data) and returns its path.
func corruptLargestBlock(t *testing.T, s *Store) string {
	t.Helper()
	var biggest string
	var size int64
	filepath.WalkDir(filepath.Join(s.Dir(), blocksDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && filepath.Ext(p) == ".data" {
			if info, err := d.Info(); err == nil && info.Size() > size {
				biggest, size = p, info.Size()
			}
		}
		return nil
	})
	if biggest == "" {
		t.Fatal("no block files")
	}
	data, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(biggest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return biggest
}

func TestBitRotIsQuarantinedNotServed(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	data := randomBytes(3, 3<<20+17)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, nd.Cid(), "f"); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK() || rep.Blocks != 5 {
		t.Fatalf("verify of a sound store: %+v, %v; want OK with 5 blocks", rep, err)
	}
	corruptLargestBlock(t, s)

	// Export reads through the verifying store: it must fail, not write
	// wrong bytes.
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s.LocalDAG(), nd.Cid(), out); err == nil {
		t.Fatal("export of a DAG with a corrupt block succeeded")
	}
	if _, err := os.Lstat(out); err == nil {
		t.Error("export left output behind")
	}
	if got := s.Quarantined(); got != 1 {
		t.Errorf("quarantined %d blocks on read, want 1", got)
	}
	q, _ := os.ReadDir(s.QuarantineDir())
	if len(q) != 1 {
		t.Errorf("quarantine holds %d files, want 1", len(q))
	}

	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Missing) != 1 || len(rep.Damaged) != 1 || rep.Damaged[0] != nd.Cid().String() {
		t.Errorf("verify after read quarantine = %+v, want 1 missing block below the root", rep)
	}
}

func TestVerifyFindsCorruptBlocks(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(randomBytes(4, 2<<20+5)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, nd.Cid(), "f"); err != nil {
		t.Fatal(err)
	}
	bad := corruptLargestBlock(t, s)
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 1 || len(rep.Missing) != 1 || rep.Corrupt[0] != rep.Missing[0] {
		t.Errorf("verify = %+v, want the one corrupt block reported and then missing", rep)
	}
	if _, err := os.Stat(bad); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt block file still in the block store: %v", err)
	}
}

func TestWriteErrorsAreClassified(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		space bool
	}{
		{"ENOSPC is a full disk", &fs.PathError{Op: "write", Path: "x", Err: errNoSpc}, true},
		{"other errors stay what they are", &fs.PathError{Op: "write", Path: "x", Err: fs.ErrPermission}, false},
		{"nil stays nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyWriteErr(tt.err)
			if errors.Is(got, ErrNoSpace) != tt.space {
				t.Errorf("classify(%v) = %v; ErrNoSpace %v, want %v", tt.err, got, errors.Is(got, ErrNoSpace), tt.space)
			}
		})
	}
}

// BenchmarkBlockGet measures what re-hashing on read costs for a 1 MiB
// block: "raw" reads flatfs without checking, "verified" through the
// store's verifying block store.
func BenchmarkBlockGet(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "store")
	if err := Init(dir); err != nil {
		b.Fatal(err)
	}
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := randomBytes(5, 1<<20)
	mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	blk, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mh))
	if err := s.Blockstore().Put(ctx, blk); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		bs   blockstore.Blockstore
	}{{"raw", s.vbs.Blockstore}, {"verified", s.Blockstore()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := bc.bs.Get(ctx, blk.Cid()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// errNoSpc is ENOSPC as the syscall package spells it.
var errNoSpc = syscall.ENOSPC
