package fetch

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/store/storetest"
	"github.com/allmende/allmende/store/ufs"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	h "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// testChunk is small so that a small file has a DAG of several levels.
const testChunk = 64

// buildFile imports data with tiny chunks and few links per node.
func buildFile(t *testing.T, data []byte, rawLeaves bool) (ipld.DAGService, ipld.Node) {
	t.Helper()
	dag := storetest.MemDAG()
	params := h.DagBuilderParams{Dagserv: dag, Maxlinks: 4, RawLeaves: rawLeaves}
	if rawLeaves {
		params.CidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: 0x12}
	}
	db, err := params.New(chunker.NewSizeSplitter(bytes.NewReader(data), testChunk))
	if err != nil {
		t.Fatal(err)
	}
	root, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return dag, root
}

// feed puts every node below root into s, one put per occurrence, a
// parent always before its children but otherwise in random order, as a
// fetch delivers them. It stops before the last `skip` puts.
func feed(t *testing.T, s *fileSink, dag ipld.DAGService, root ipld.Node, rng *rand.Rand, skip int) {
	t.Helper()
	var order []ipld.Node
	frontier := []ipld.Node{root}
	for len(frontier) > 0 {
		i := rng.IntN(len(frontier))
		nd := frontier[i]
		frontier = append(frontier[:i], frontier[i+1:]...)
		order = append(order, nd)
		for _, l := range nd.Links() {
			child, err := dag.Get(context.Background(), l.Cid)
			if err != nil {
				t.Fatal(err)
			}
			frontier = append(frontier, child)
		}
	}
	for _, nd := range order[:len(order)-skip] {
		if err := s.put(nd); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileSinkAssemblesFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 5000)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	cases := []struct {
		name      string
		data      []byte
		rawLeaves bool
	}{
		{"raw leaves, several levels", random, true},
		{"data in protobuf leaves", random, false},
		{"repeated leaves: one CID at many offsets", make([]byte, 3000), true},
		{"single leaf root", random[:10], true},
		{"empty file", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dag, root := buildFile(t, tc.data, tc.rawLeaves)
			size, ok := ufs.FileSize(root)
			if !ok || size != uint64(len(tc.data)) {
				t.Fatalf("fileSize = %d, %v; want %d", size, ok, len(tc.data))
			}
			dir := t.TempDir()
			s, err := createFileSink(filepath.Join(dir, "part"), root.Cid(), size, nil)
			if err != nil {
				t.Fatal(err)
			}
			feed(t, s, dag, root, rng, 0)
			dest := filepath.Join(dir, "out")
			if err := s.finish(context.Background(), dest); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("assembled file differs from the input (%d vs %d bytes)", len(got), len(tc.data))
			}
		})
	}
}

func TestFileSinkRejects(t *testing.T) {
	data := make([]byte, 800)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	dag, root := buildFile(t, data, true)

	t.Run("a root that declares the wrong size", func(t *testing.T) {
		s, err := createFileSink(filepath.Join(t.TempDir(), "part"), root.Cid(), uint64(len(data))+1, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.abort(false)
		if err := s.put(root); !errors.Is(err, errBadFileDAG) {
			t.Fatalf("put = %v, want errBadFileDAG", err)
		}
	})
	t.Run("a missing block is not a finished file", func(t *testing.T) {
		dir := t.TempDir()
		s, err := createFileSink(filepath.Join(dir, "part"), root.Cid(), uint64(len(data)), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.abort(false)
		feed(t, s, dag, root, rand.New(rand.NewPCG(3, 4)), 1)
		if err := s.finish(context.Background(), filepath.Join(dir, "out")); !errors.Is(err, errBadFileDAG) {
			t.Fatalf("finish = %v, want errBadFileDAG", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
			t.Fatalf("output exists after a failed finish: %v", err)
		}
	})
}
