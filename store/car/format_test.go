package car

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	_ "github.com/ipld/go-codec-dagpb" // registers DAG-PB for go-car's traversal
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/linking"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/traversal/selector/parse"
)

// TestHeaderMatchesGoCar: the header Export writes is byte for byte the
// one go-car writes for the same roots.
func TestHeaderMatchesGoCar(t *testing.T) {
	v1 := cid.MustParse("bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am")
	v0 := cid.MustParse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	tests := []struct {
		name  string
		roots []cid.Cid
	}{
		{"one CIDv1 root", []cid.Cid{v1}},
		{"a CIDv0 root (Kubo's default before the 2025 profile)", []cid.Cid{v0}},
		{"the three roots of a named model", []cid.Cid{v1, v0, cid.NewCidV1(cid.DagProtobuf, v0.Hash())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			if _, err := storage.NewWritable(&want, tt.roots, carv2.WriteAsCarV1(true)); err != nil {
				t.Fatal(err)
			}
			got, err := encodeHeader(tt.roots)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("header\n%x\ngo-car writes\n%x", got, want.Bytes())
			}
		})
	}
}

// TestExportMatchesKuboTraversal: for one root, Export writes the same
// bytes as go-car's TraverseV1 with the explore-all selector and each
// block once, which is how Kubo's `ipfs dag export` writes a CAR.
func TestExportMatchesKuboTraversal(t *testing.T) {
	src := openStore(t)
	_, root := addTree(t, src, modelTree(11))
	ours := exportCAR(t, src, root)

	ls := cidlink.DefaultLinkSystem()
	ls.StorageReadOpener = func(lc linking.LinkContext, l datamodel.Link) (io.Reader, error) {
		b, err := src.Blockstore().Get(lc.Ctx, l.(cidlink.Link).Cid)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(b.RawData()), nil
	}
	var theirs bytes.Buffer
	_, err := carv2.TraverseV1(context.Background(), &ls, root, selectorparse.CommonSelector_ExploreAllRecursively,
		&theirs, carv2.AllowDuplicatePuts(false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs.Bytes()) {
		t.Fatalf("our CAR (%d bytes) differs from go-car's traversal (%d bytes)", len(ours), theirs.Len())
	}
}

// TestImportCARv2 reads a CARv2 (with its index) that go-car wrote, from a
// plain stream that cannot seek, and an import into a store holding some
// of the blocks already.
func TestImportCARv2(t *testing.T) {
	ctx := context.Background()
	src, dst := openStore(t), openStore(t)
	_, root := addTree(t, src, modelTree(13))
	v1 := exportCAR(t, src, root)

	path := t.TempDir() + "/v2.car"
	w, err := storage.NewReadableWritable(createFile(t, path), []cid.Cid{root})
	if err != nil {
		t.Fatal(err)
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	blocks := int64(0)
	for ; ; blocks++ {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	v2 := readFile(t, path)
	if bytes.Equal(v2[:len(v1)], v1) {
		t.Fatal("go-car wrote a CARv1")
	}

	res, err := Import(ctx, dst, io.MultiReader(bytes.NewReader(v2)), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || !res.Complete() || res.Blocks != blocks || res.Stored != blocks {
		t.Fatalf("result %+v", res)
	}
	again, err := Import(ctx, dst, io.MultiReader(bytes.NewReader(v2)), ImportOptions{})
	if err != nil || !again.Complete() || again.Stored != 0 || again.Blocks != res.Blocks {
		t.Fatalf("second import: %+v, %v; want complete with nothing stored again", again, err)
	}
	if got := exportCAR(t, dst, root); !bytes.Equal(got, v1) {
		t.Error("the DAG imported from the CARv2 exports differently")
	}
}

// TestImportExtraBlocks: blocks no root links to are verified and kept
// (GC frees them unless something pins them), and do not stop the roots
// from being complete.
func TestImportExtraBlocks(t *testing.T) {
	ctx := context.Background()
	src, dst := openStore(t), openStore(t)
	_, root := addTree(t, src, map[string][]byte{"a": []byte("one")})
	_, other := addTree(t, src, modelTree(17))
	var buf bytes.Buffer
	// A CAR that names only root but carries other's DAG too.
	w := &exporter{src: src.Serving(), seen: cidSet{}}
	hdr, _ := encodeHeader([]cid.Cid{root})
	buf.Write(hdr)
	w.w = newBufWriter(&buf)
	for _, r := range []cid.Cid{other, root} {
		if err := w.walk(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	w.w.Flush()
	res, err := Import(ctx, dst, &buf, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete() || len(res.Roots) != 1 || res.Stored != w.stats.Blocks {
		t.Fatalf("result %+v; want the one root complete and %d blocks stored", res, w.stats.Blocks)
	}
	if n := allBlocksSound(t, dst); int64(n) < res.Stored {
		t.Fatalf("%d blocks listed, %d stored", n, res.Stored)
	}
	if has, _ := dst.Blockstore().Has(ctx, other); !has {
		t.Error("the unrelated DAG's root was not kept")
	}
	if _, err := dst.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if has, _ := dst.Blockstore().Has(ctx, other); has {
		t.Error("GC kept an unpinned block of the unrelated DAG")
	}
}

func createFile(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func newBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, exportBuffer) }
