package car

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// openStore opens a fresh store in a temporary directory, closed when the
// test ends.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	st := newStore(t)
	t.Cleanup(func() { st.Close() })
	return st
}

// newStore opens a fresh store that the caller closes.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := store.Init(dir); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeTree creates files under dir from relative path to content.
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// modelTree is a directory of random files of the sizes that matter: empty,
// one byte, just under, at and over a chunk, several chunks with a short
// tail, nested.
func modelTree(seed uint64) map[string][]byte {
	return map[string][]byte{
		"config.json":          []byte(`{"hidden": 64}`),
		"empty":                nil,
		"one":                  {7},
		"under-chunk.bin":      randomBytes(seed+1, store.ChunkSize-1),
		"chunk.bin":            randomBytes(seed+2, store.ChunkSize),
		"weights.bin":          randomBytes(seed+3, 3*store.ChunkSize+12345),
		"sub/dir/shard-01.bin": randomBytes(seed+4, 2*store.ChunkSize+1),
		"sub/readme.md":        []byte("# a model\n"),
	}
}

// addTree writes files to a temporary directory and adds it to st the
// way `allmende add` does (whole copies of large files), returning the
// directory and the root.
func addTree(t testing.TB, st *store.Store, files map[string][]byte) (string, cid.Cid) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	writeTree(t, dir, files)
	nd, err := st.Add(context.Background(), dir, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, nd.Cid()
}

// sameTree fails unless the trees at a and b hold the same files with the
// same bytes.
func sameTree(t testing.TB, a, b string) {
	t.Helper()
	read := func(root string) map[string][]byte {
		out := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			out[rel] = data
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ta, tb := read(a), read(b)
	if len(ta) != len(tb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(ta), b, len(tb))
	}
	for rel, data := range ta {
		if !bytes.Equal(data, tb[rel]) {
			t.Fatalf("%s differs (%d vs %d bytes)", rel, len(data), len(tb[rel]))
		}
	}
}

// exportCAR writes the CAR of roots from st into memory.
func exportCAR(t testing.TB, st *store.Store, roots ...cid.Cid) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Export(context.Background(), st.Serving(), &buf, roots, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// namedModel imports files as a named model in place (leaves held as
// references into the files, as `allmende import` does), stores its
// manifest as a UnixFS file and signs a record for it.
func namedModel(t testing.TB, st *store.Store, files map[string][]byte) (dir string, m *manifest.Manifest, model Model) {
	t.Helper()
	ctx := context.Background()
	dir = filepath.Join(t.TempDir(), "model")
	writeTree(t, dir, files)
	m, err := manifest.Import(ctx, st.LocalDAG(), dir, manifest.ImportOptions{Name: "acme/tiny", NoCopy: true})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mnd, err := store.BuildFile(ctx, st.LocalDAG(), bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &manifest.Record{Name: m.Name, Revision: m.Revision, Manifest: mnd.Cid().String(), Seq: 1,
		Expires: time.Now().Add(time.Hour).UTC()}
	if err := rec.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	content, err := cid.Decode(m.Root)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, Model{Content: content, Manifest: mnd.Cid(), Record: raw}
}

// allBlocksSound fails if any block the store lists does not read back
// verified, or if a read quarantined one.
func allBlocksSound(t testing.TB, st *store.Store) int {
	t.Helper()
	ctx := context.Background()
	keys, err := st.Blockstore().AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range keys {
		if _, err := st.Blockstore().Get(ctx, k); err != nil {
			t.Errorf("block %s kept but unreadable: %v", k, err)
		}
		n++
	}
	if q := st.Quarantined(); q > 0 {
		t.Errorf("%d blocks kept were corrupt (quarantined on read)", q)
	}
	return n
}
