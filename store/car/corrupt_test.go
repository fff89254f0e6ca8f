package car

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-varint"
)

// section is where one block lies in a CAR: its length prefix at off, its
// CID at cidOff, its data from dataOff to end.
type section struct {
	off, cidOff, dataOff, end int
	cid                       cid.Cid
}

// sections parses a well-formed CARv1 into its header length and sections.
func sections(t testing.TB, data []byte) (headerEnd int, out []section) {
	t.Helper()
	n, k, err := varint.FromUvarint(data)
	if err != nil {
		t.Fatal(err)
	}
	headerEnd = k + int(n)
	for off := headerEnd; off < len(data); {
		size, k, err := varint.FromUvarint(data[off:])
		if err != nil {
			t.Fatal(err)
		}
		cl, c, err := cid.CidFromBytes(data[off+k:])
		if err != nil {
			t.Fatal(err)
		}
		s := section{off: off, cidOff: off + k, dataOff: off + k + cl, end: off + k + int(size), cid: c}
		out = append(out, s)
		off = s.end
	}
	return headerEnd, out
}

// checkRefused asserts what must hold after any import of a bad CAR:
// an error, nothing to pin, no root complete, and no corrupt block kept.
func checkRefused(t *testing.T, st *store.Store, res *Result, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("a damaged CAR was imported without error")
	}
	if res.Complete() || len(res.ToPin()) > 0 {
		t.Fatalf("a damaged CAR left roots to pin: %+v", res.Roots)
	}
	for _, rt := range res.Roots {
		if rt.Complete {
			t.Fatalf("root %s reported complete after %v", rt.CID, err)
		}
	}
	allBlocksSound(t, st)
}

// TestImportDamagedCAR flips one byte in each part of a CAR, or cuts it
// short at each kind of place: the import fails with an error that names
// the bad block and its offset, pins nothing, keeps nothing corrupt, and
// keeps the blocks verified before the damage (a retry need not bring
// them again). The CAR holds a file of three chunks, whose leaves go to a
// whole-file copy.
func TestImportDamagedCAR(t *testing.T) {
	src := openStore(t)
	_, root := addTree(t, src, map[string][]byte{
		"a":           []byte("hello"),
		"weights.bin": randomBytes(21, 2*store.ChunkSize+777),
	})
	good := exportCAR(t, src, root)
	hdrEnd, secs := sections(t, good)
	if len(secs) != 6 { // root dir, a, file node, three leaves
		t.Fatalf("%d sections, want 6", len(secs))
	}
	rootEnd := bytes.Index(good[:hdrEnd], root.Bytes()) + root.ByteLen()
	leaf2 := secs[4] // the file's second leaf
	last := secs[len(secs)-1]

	type damage struct {
		name string
		edit func([]byte) []byte
		want error
		// at is the section the error must name (its offset and, when
		// wantCID, its CID); nil for a header error or a missing block.
		at      *section
		wantCID bool
		// kept is how many sections before the damage must be stored.
		kept int
	}
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 0xff; return b }
	}
	cut := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { return b[:n] }
	}
	tests := []damage{
		{"flip: header length", flip(0), ErrMalformed, nil, false, 0},
		{"flip: header map", flip(1), ErrMalformed, nil, false, 0},
		{"flip: a digest byte of the root CID in the header", flip(rootEnd - 1), ErrIncomplete, nil, false, 6},
		{"flip: the header's version", flip(hdrEnd - 1), ErrMalformed, nil, false, 0},
		{"flip: a block's length prefix", flip(leaf2.off), ErrMalformed, &leaf2, false, 4},
		{"flip: a block's CID version", flip(leaf2.cidOff), ErrMalformed, &leaf2, false, 4},
		{"flip: a block's CID digest", flip(leaf2.dataOff - 1), store.ErrCorrupt, &leaf2, false, 4},
		{"flip: the first byte of a leaf's data", flip(leaf2.dataOff), store.ErrCorrupt, &leaf2, true, 4},
		{"flip: a byte in the middle of a leaf", flip((leaf2.dataOff + leaf2.end) / 2), store.ErrCorrupt, &leaf2, true, 4},
		{"flip: the CAR's last byte", flip(len(good) - 1), store.ErrCorrupt, &last, true, 5},
		{"flip: an inner node's data", flip(secs[2].end - 1), store.ErrCorrupt, &secs[2], true, 2},
		{"cut: empty", cut(0), ErrTruncated, nil, false, 0},
		{"cut: inside the header", cut(hdrEnd - 3), ErrTruncated, nil, false, 0},
		{"cut: after the header", cut(hdrEnd), ErrIncomplete, nil, false, 0},
		{"cut: between two blocks", cut(leaf2.off), ErrIncomplete, nil, false, 4},
		{"cut: inside a length prefix", cut(leaf2.off + 1), ErrTruncated, &leaf2, false, 4},
		{"cut: inside a CID", cut(leaf2.cidOff + 5), ErrTruncated, &leaf2, false, 4},
		{"cut: inside a leaf's data", cut(leaf2.dataOff + 1000), ErrTruncated, &leaf2, true, 4},
		{"cut: one byte short", cut(len(good) - 1), ErrTruncated, &last, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dst := openStore(t)
			bad := tt.edit(bytes.Clone(good))
			res, err := Import(ctx, dst, bytes.NewReader(bad), ImportOptions{})
			checkRefused(t, dst, res, err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var be *BlockError
			switch {
			case tt.at == nil && errors.As(err, &be):
				t.Fatalf("err = %v names a block", err)
			case tt.at != nil && (!errors.As(err, &be) || be.Offset != int64(tt.at.off)):
				t.Fatalf("err = %v, want it to name the block at byte %d", err, tt.at.off)
			case tt.wantCID && !be.CID.Equals(tt.at.cid):
				t.Fatalf("err names %s, want %s", be.CID, tt.at.cid)
			}
			for _, s := range secs[:tt.kept] {
				if has, _ := dst.Blockstore().Has(ctx, s.cid); !has {
					t.Errorf("block %s, verified before the damage, was not kept", s.cid)
				}
			}
			// The good CAR afterwards completes the DAG: a retry works.
			res, err = Import(ctx, dst, bytes.NewReader(good), ImportOptions{})
			if err != nil || !res.Complete() {
				t.Fatalf("retry with the good CAR: %+v, %v", res, err)
			}
			if res.Blocks-res.Stored < int64(tt.kept) {
				t.Errorf("the retry stored %d of %d blocks again; %d were kept", res.Stored, res.Blocks, tt.kept)
			}
		})
	}
}

// TestImportEveryDamage flips every byte of a small CAR, and cuts it at
// every length: every one is refused. A cut between two blocks leaves a
// well-formed CAR that lacks blocks (ErrIncomplete); every other cut is
// ErrTruncated. The store is emptied (GC) between imports.
func TestImportEveryDamage(t *testing.T) {
	ctx := context.Background()
	src, dst := openStore(t), openStore(t)
	_, root := addTree(t, src, map[string][]byte{"a": []byte("hello"), "sub/b": randomBytes(2, 40)})
	good := exportCAR(t, src, root)
	_, secs := sections(t, good)
	boundary := map[int]bool{}
	for _, s := range secs {
		boundary[s.off] = true
	}
	run := func(what string, bad []byte) error {
		res, err := Import(ctx, dst, bytes.NewReader(bad), ImportOptions{})
		t.Run(what, func(t *testing.T) { checkRefused(t, dst, res, err) })
		if _, gcErr := dst.GC(ctx); gcErr != nil {
			t.Fatal(gcErr)
		}
		return err
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0xff
		run(fmt.Sprintf("flip byte %d", i), bad)
	}
	for n := range len(good) {
		err := run(fmt.Sprintf("cut at %d", n), good[:n])
		want := ErrTruncated
		if boundary[n] {
			want = ErrIncomplete
		}
		if !errors.Is(err, want) {
			t.Errorf("cut at %d: err = %v, want %v", n, err, want)
		}
	}
}
