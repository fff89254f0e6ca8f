package ufs_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/storetest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func buildFile(t *testing.T, dag ipld.DAGService, data []byte) ipld.Node {
	t.Helper()
	nd, err := store.BuildFile(context.Background(), dag, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// TestNodeKinds: each helper tells files, leaves and directories apart the
// same way.
func TestNodeKinds(t *testing.T) {
	ctx := context.Background()
	dag := storetest.MemDAG()
	small := buildFile(t, dag, []byte("hello"))                    // one raw leaf
	big := buildFile(t, dag, randomBytes(1, 2*store.ChunkSize+10)) // a dag-pb file node over 3 leaves
	dir, err := ufs.BuildDirectory(ctx, dag, []ufs.Entry{{Path: "a", CID: small.Cid()}})
	if err != nil {
		t.Fatal(err)
	}
	dirNd, err := dag.Get(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		nd       ipld.Node
		size     uint64
		isFile   bool
		isDir    bool
		typ      unixfspb.Data_DataType
		children int
	}{
		{"a raw leaf is a file of its length", small, 5, true, false, unixfs.TRaw, 0},
		{"a file node has its declared size and a link per leaf", big, 2*store.ChunkSize + 10, true, false, unixfs.TFile, 3},
		{"a directory is no file", dirNd, 0, false, true, unixfs.TDirectory, 1},
	} {
		size, ok := ufs.FileSize(tt.nd)
		if ok != tt.isFile || size != tt.size {
			t.Errorf("%s: FileSize = %d, %v; want %d, %v", tt.name, size, ok, tt.size, tt.isFile)
		}
		if got := ufs.IsDir(tt.nd); got != tt.isDir {
			t.Errorf("%s: IsDir = %v", tt.name, got)
		}
		if typ, err := ufs.Type(tt.nd); err != nil || typ != tt.typ {
			t.Errorf("%s: Type = %v (err %v), want %v", tt.name, typ, err, tt.typ)
		}
		if got := ufs.Children(tt.nd); len(got) != tt.children {
			t.Errorf("%s: %d children, want %d", tt.name, len(got), tt.children)
		}
	}
}

// TestReaderAtMatchesOpen: reading at any offset gives the bytes a whole
// read gives, across leaf boundaries and at the end.
func TestReaderAtMatchesOpen(t *testing.T) {
	ctx := context.Background()
	dag := storetest.MemDAG()
	data := randomBytes(2, 3*store.ChunkSize+777)
	nd := buildFile(t, dag, data)
	r, err := ufs.Open(ctx, dag, nd.Cid())
	if err != nil {
		t.Fatal(err)
	}
	whole, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(whole, data) {
		t.Fatalf("Open read %d bytes (err %v), want the %d written", len(whole), err, len(data))
	}
	ra, err := ufs.NewReaderAt(ctx, dag, nd.Cid())
	if err != nil {
		t.Fatal(err)
	}
	if ra.Size() != uint64(len(data)) {
		t.Fatalf("Size = %d, want %d", ra.Size(), len(data))
	}
	for _, tt := range []struct {
		name string
		off  int64
		n    int
	}{
		{"the first bytes", 0, 16},
		{"across a leaf boundary", store.ChunkSize - 8, 16},
		{"a whole leaf and more", store.ChunkSize / 2, store.ChunkSize + 100},
		{"the last bytes", int64(len(data)) - 5, 5},
	} {
		buf := make([]byte, tt.n)
		if _, err := ra.ReadAt(buf, tt.off); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(buf, data[tt.off:tt.off+int64(tt.n)]) {
			t.Errorf("%s: wrong bytes", tt.name)
		}
	}
	if _, err := ra.ReadAt(make([]byte, 1), int64(len(data))); err != io.EOF {
		t.Errorf("a read past the end: %v, want io.EOF", err)
	}
}

// TestBuildDirectoryWalkFiles: a tree built from paths lists every file
// once when walked, and the same files give the same root in any order.
func TestBuildDirectoryWalkFiles(t *testing.T) {
	ctx := context.Background()
	dag := storetest.MemDAG()
	var entries []ufs.Entry
	var want []cid.Cid
	for i, p := range []string{"config.json", "weights/a.safetensors", "weights/b.safetensors", "deep/x/y/z.txt"} {
		nd := buildFile(t, dag, randomBytes(uint64(10+i), 100+i))
		entries = append(entries, ufs.Entry{Path: p, CID: nd.Cid()})
		want = append(want, nd.Cid())
	}
	root, err := ufs.BuildDirectory(ctx, dag, entries)
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(entries)
	slices.Reverse(reversed)
	again, err := ufs.BuildDirectory(ctx, dag, reversed)
	if err != nil || !again.Equals(root) {
		t.Errorf("the same files in another order: %s (err %v), want %s", again, err, root)
	}
	var got []cid.Cid
	if err := ufs.WalkFiles(ctx, dag, root, func(c cid.Cid) { got = append(got, c) }); err != nil {
		t.Fatal(err)
	}
	key := func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) }
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if !slices.EqualFunc(got, want, cid.Cid.Equals) {
		t.Errorf("WalkFiles found %v, want %v", got, want)
	}
	var none []cid.Cid
	if err := ufs.WalkFiles(ctx, dag, want[0], func(c cid.Cid) { none = append(none, c) }); err != nil || len(none) != 0 {
		t.Errorf("walking a file: %v (err %v), want nothing", none, err)
	}
}
