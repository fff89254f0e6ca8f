package car

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
)

// TestRoundTrip exports a DAG from one store and imports it into an empty
// one: the same roots are complete there, the tree written out has the
// same bytes, and exporting again gives the same CAR, so the same CIDs and
// blocks came across.
func TestRoundTrip(t *testing.T) {
	many := map[string][]byte{}
	for i := range 1200 { // names long enough for a HAMT-sharded directory
		many[fmt.Sprintf("%04d-%s", i, strings.Repeat("n", 200))] = []byte("same")
	}
	tests := []struct {
		name  string
		files map[string][]byte
		// copied is the leaf bytes expected in whole-file copies: those
		// of the files larger than a chunk.
		copied int64
		// hamt is set for a root that must be a HAMT shard; its 1200
		// files are not written out (a sync each), the CAR's equality
		// shows the DAG came across.
		hamt bool
	}{
		{"a tree added with whole copies of large files", modelTree(1), 3*store.ChunkSize + 12345 + 2*store.ChunkSize + 1, false},
		{"a single small file's directory", map[string][]byte{"a": []byte("hello\n")}, 0, false},
		{"a HAMT-sharded directory of one shared block", many, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := openStore(t), openStore(t)
			dir, root := addTree(t, src, tt.files)
			data := exportCAR(t, src, root)

			res, err := Import(ctx, dst, bytes.NewReader(data), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pins := res.ToPin(); len(pins) != 1 || !pins[0].Equals(root) {
				t.Fatalf("ToPin = %v, want [%s]", pins, root)
			}
			if res.Bytes != int64(len(data)) || res.Stored != res.Blocks || res.Version != 1 {
				t.Errorf("result %+v for a CAR of %d bytes into an empty store", res, len(data))
			}
			if res.Copied != tt.copied {
				t.Errorf("%d leaf bytes kept in whole-file copies, want %d", res.Copied, tt.copied)
			}
			if err := dst.Pin(ctx, root, "imported"); err != nil {
				t.Fatal(err)
			}
			if tt.hamt {
				if kind := unixfsKind(t, dst, root); kind != unixfs.THAMTShard {
					t.Fatalf("root is a %s, not a HAMT shard", kind)
				}
			} else {
				out := filepath.Join(t.TempDir(), "out")
				if err := store.Export(ctx, dst.LocalDAG(), root, out); err != nil {
					t.Fatal(err)
				}
				sameTree(t, dir, out)
			}
			if again := exportCAR(t, dst, root); !bytes.Equal(again, data) {
				t.Error("the imported DAG exports to a different CAR")
			}
			allBlocksSound(t, dst)
		})
	}
}

// TestNamedModelRoundTrip exports a model imported in place (its leaves
// read from the model's own files, held by reference) with its manifest
// and signed record, and imports it: the roots are told apart, the record
// is found and valid, the manifest reads back, and each large file's
// leaves form a file held whole in the receiving store.
func TestNamedModelRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, dst := openStore(t), openStore(t)
	dir, m, model := namedModel(t, src, modelTree(7))
	var buf bytes.Buffer
	stats, err := ExportModel(ctx, src.Serving(), &buf, model, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := RecordCID(model.Record)
	if want := []cid.Cid{model.Content, model.Manifest, rc}; !equalCIDs(stats.Roots, want) {
		t.Fatalf("roots %v, want %v", stats.Roots, want)
	}

	res, err := Import(ctx, dst, bytes.NewReader(buf.Bytes()), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := []RootKind{KindContent, KindManifest, KindRecord}
	for i, rt := range res.Roots {
		if !rt.Complete || rt.Kind != kinds[i] || !rt.CID.Equals(stats.Roots[i]) {
			t.Errorf("root %d: %+v, want %s %s complete", i, rt, stats.Roots[i], kinds[i])
		}
	}
	if len(res.Records) != 1 || res.Records[0].Err != nil || !bytes.Equal(res.Records[0].Data, model.Record) ||
		res.Records[0].Record.Manifest != model.Manifest.String() {
		t.Fatalf("records %+v, want the one signed", res.Records)
	}
	if got := readManifest(t, dst, model.Manifest); got.Root != m.Root || len(got.Files) != len(m.Files) {
		t.Fatalf("manifest read back: %+v", got)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := store.Export(ctx, dst.LocalDAG(), model.Content, out); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, out)

	// A whole-file copy starts with the file's first byte; once past the
	// window in which a just-written file's state is not trusted, it
	// verifies and is handed out whole.
	time.Sleep(100 * time.Millisecond)
	f, _ := m.Lookup("weights.bin")
	fc, _ := cid.Decode(f.CID)
	if err := dst.VerifyWholeFile(ctx, fc); err != nil {
		t.Fatalf("weights.bin is not held whole after the import: %v", err)
	}
	wf, err := dst.OpenWholeFile(ctx, fc)
	if err != nil {
		t.Fatal(err)
	}
	wf.Close()
}

// TestExportModelRefusesWrongRecord: a record that names another manifest
// or does not verify is not exported with the model.
func TestExportModelRefusesWrongRecord(t *testing.T) {
	src := openStore(t)
	_, _, model := namedModel(t, src, map[string][]byte{"a": []byte("x")})
	tests := []struct {
		name string
		edit func(m *Model)
		want error
	}{
		{"the record names another manifest", func(m *Model) { m.Manifest = m.Content }, manifest.ErrInvalid},
		{"the record was altered", func(m *Model) {
			m.Record = bytes.Replace(m.Record, []byte(`"seq":1`), []byte(`"seq":2`), 1)
		}, manifest.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := model
			tt.edit(&m)
			_, err := ExportModel(context.Background(), src.Serving(), io.Discard, m, ExportOptions{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestExportMissingBlock: a DAG the store does not hold whole fails the
// export with ErrIncomplete naming the block.
func TestExportMissingBlock(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	_, root := addTree(t, src, map[string][]byte{"a": []byte("one"), "b": []byte("two")})
	gone, _ := RecordCID([]byte("two")) // file b's raw block has this CID
	if err := src.Blockstore().DeleteBlock(ctx, gone); err != nil {
		t.Fatal(err)
	}
	_, err := Export(ctx, src.Serving(), io.Discard, []cid.Cid{root}, ExportOptions{})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), gone.String()) {
		t.Fatalf("err = %v, want ErrIncomplete naming %s", err, gone)
	}
}

// TestExportProgressAndCancel: progress counts every block and byte, and a
// cancelled context stops the export.
func TestExportProgressAndCancel(t *testing.T) {
	src := openStore(t)
	_, root := addTree(t, src, modelTree(3))
	var last Progress
	var buf bytes.Buffer
	stats, err := Export(context.Background(), src.Serving(), &buf, []cid.Cid{root}, ExportOptions{
		Progress: func(p Progress) { last = p },
	})
	if err != nil {
		t.Fatal(err)
	}
	if last.Blocks != stats.Blocks || last.Bytes != int64(buf.Len()) || stats.Bytes != last.Bytes {
		t.Errorf("last progress %+v, stats %+v, %d bytes written", last, stats, buf.Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = Export(ctx, src.Serving(), io.Discard, []cid.Cid{root}, ExportOptions{
		Progress: func(Progress) {
			if n++; n == 3 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: err = %v", err)
	}
}

// TestExportIsWhatGoCarReads: an independent reader (go-car's, verifying
// every block) reads our CAR: the roots, and each block once.
func TestExportIsWhatGoCarReads(t *testing.T) {
	src := openStore(t)
	_, root := addTree(t, src, modelTree(5))
	data := exportCAR(t, src, root)
	br, err := carv2.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		t.Fatalf("roots %v", br.Roots)
	}
	seen := map[cid.Cid]bool{}
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[b.Cid()] {
			t.Fatalf("block %s written twice", b.Cid())
		}
		seen[b.Cid()] = true
	}
	if len(seen) == 0 {
		t.Fatal("no blocks")
	}
}

// unixfsKind is the UnixFS type of the DAG-PB node c in st.
func unixfsKind(t testing.TB, st *store.Store, c cid.Cid) unixfspb.Data_DataType {
	t.Helper()
	nd, err := st.LocalDAG().Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		t.Fatalf("%s is not a DAG-PB node", c)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		t.Fatal(err)
	}
	return fsn.Type()
}

func equalCIDs(a, b []cid.Cid) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equals(b[i]) {
			return false
		}
	}
	return true
}

// readManifest reads and decodes the manifest file c from st.
func readManifest(t testing.TB, st *store.Store, c cid.Cid) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	nd, err := st.LocalDAG().Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(ctx, nd, st.LocalDAG())
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestImportProgressAndCancel: progress counts the CAR's bytes and blocks;
// a cancelled import stops with the context's error, leaves nothing to
// pin, and keeps the blocks it had verified.
func TestImportProgressAndCancel(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	_, root := addTree(t, src, modelTree(9))
	data := exportCAR(t, src, root)

	dst := openStore(t)
	var last Progress
	res, err := Import(ctx, dst, bytes.NewReader(data), ImportOptions{Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if last.Bytes != int64(len(data)) || last.Blocks != res.Blocks {
		t.Errorf("last progress %+v; the CAR has %d bytes, %d blocks", last, len(data), res.Blocks)
	}

	dst = openStore(t)
	cctx, cancel := context.WithCancel(ctx)
	res, err = Import(cctx, dst, bytes.NewReader(data), ImportOptions{Progress: func(p Progress) {
		if p.Blocks == 5 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || len(res.ToPin()) > 0 {
		t.Fatalf("cancelled import: %+v, %v", res, err)
	}
	if res.Blocks != 5 || res.Stored != 5 {
		t.Errorf("cancelled after 5 blocks, yet %d read and %d stored", res.Blocks, res.Stored)
	}
	if n := allBlocksSound(t, dst); n != 5 {
		t.Errorf("%d blocks kept after the cancel, want the 5 verified", n)
	}
}
