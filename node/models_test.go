package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/store/format/formattest"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// TestModelsInProcess runs the model flow between two in-process nodes so
// the race detector sees the resolve protocol, the index and the fetches.
func TestModelsInProcess(t *testing.T) {
	ctx := context.Background()
	a, b := newTestNode(t), newTestNode(t)
	defer a.Close()
	defer b.Close()
	src := t.TempDir()
	gguf := formattest.GGUF("qwen2", 7, []formattest.Tensor{{Name: "t", Shape: []uint64{300, 1000}}}) // > 1 MiB: two leaves
	os.WriteFile(filepath.Join(src, "m.gguf"), gguf, 0o644)
	os.WriteFile(filepath.Join(src, "README.md"), []byte("# m\n"), 0o644)
	imp, err := a.Import(ctx, api.ImportRequest{Path: src, Name: "acme/m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.Publish(ctx, api.PublishRequest{Name: "acme/m"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := a.ID(ctx)
	if err := b.Connect(ctx, id.Addrs[0]); err != nil {
		t.Fatal(err)
	}

	_, err = b.FetchModel(ctx, api.ModelFetchRequest{Ref: "acme/m", Out: filepath.Join(t.TempDir(), "x")}, nil)
	if !errors.Is(err, models.ErrUntrusted) {
		t.Fatalf("untrusted: err = %v, want ErrUntrusted", err)
	}
	if _, err := trust.Add(b.cfg.Home, pub.Publisher, "", nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m")
	res, err := b.FetchModel(ctx, api.ModelFetchRequest{Ref: "acme/m@main", Out: out}, nil)
	if err != nil || res.Manifest != imp.Manifest || !res.Trusted || res.Files != 2 {
		t.Fatalf("fetch by name: %+v, %v", res, err)
	}

	ins, err := b.Inspect(ctx, api.InspectRequest{Ref: "acme/m"})
	if err != nil || len(ins.Files) != 1 || ins.Files[0].Info == nil || ins.Files[0].Info.Architecture != "qwen2" {
		t.Fatalf("inspect by name: %+v, %v", ins, err)
	}

	c := newTestNode(t)
	defer c.Close()
	if err := c.Connect(ctx, id.Addrs[0]); err != nil {
		t.Fatal(err)
	}
	byCID, err := c.Inspect(ctx, api.InspectRequest{Ref: ins.Files[0].CID})
	if err != nil || byCID.Files[0].Info == nil || byCID.Files[0].Info.Params != 300_000 {
		t.Fatalf("inspect by CID: %+v, %v", byCID, err)
	}
	if byCID.Received >= uint64(len(gguf)) {
		t.Errorf("inspect by CID received %d bytes of a %d-byte file: it should fetch only the first leaf", byCID.Received, len(gguf))
	}
	sum := mustSHA(t, b, "m.gguf")
	one := filepath.Join(t.TempDir(), "one.gguf")
	if _, err := c.FetchModel(ctx, api.ModelFetchRequest{Ref: api.SHA256Prefix + sum, Out: one}, nil); err != nil {
		t.Fatalf("fetch by sha256: %v", err)
	}
}

// mustSHA returns the sha256 the node's index holds for path.
func mustSHA(t *testing.T, n *Node, path string) string {
	t.Helper()
	for _, m := range n.models.Manifests(context.Background()) {
		if f, ok := m.Lookup(path); ok {
			return f.SHA256
		}
	}
	t.Fatalf("%s not indexed", path)
	return ""
}

// TestLargeManifestSpansBlocks stores a manifest bigger than one block and
// fetches it on another node.
func TestLargeManifestSpansBlocks(t *testing.T) {
	ctx := context.Background()
	a, b := newTestNode(t), newTestNode(t)
	defer a.Close()
	defer b.Close()
	const files = 8000 // about 2 MiB encoded
	m := &manifest.Manifest{Version: manifest.Version, Kind: manifest.KindDataset, Name: "acme/big-data", Revision: "main",
		Commit: strings.Repeat("c", 40), Root: "bafkqaaa"}
	for i := range files {
		m.Files = append(m.Files, manifest.File{Path: fmt.Sprintf("data/shard-%05d.parquet", i), Size: uint64(i),
			SHA256: fmt.Sprintf("%064x", i), CID: "bafkqaaa"})
	}
	nd, err := a.models.ManifestFile(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	c := nd.Cid()
	if c.Prefix().Codec == cid.Raw {
		t.Fatalf("a %d-file manifest was stored as one raw block", files)
	}
	id, _ := a.ID(ctx)
	if err := b.Connect(ctx, id.Addrs[0]); err != nil {
		t.Fatal(err)
	}
	got, err := b.models.FetchManifest(ctx, c, testFetchTimeout, new(atomic.Uint64))
	if err != nil || len(got.Files) != files {
		t.Fatalf("fetch manifest: %v", err)
	}
}

// TestModelIndexSurvivesRestart reopens a home and finds the model by
// name and sha256 again.
func TestModelIndexSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	a := newTestNode(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "w.bin"), []byte("weights"), 0o644)
	imp, err := a.Import(ctx, api.ImportRequest{Path: src, Name: "acme/r", Copy: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.cfg
	a.Close()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if c, ok := b.models.Index().ByName("acme/r", "main"); !ok || c.String() != imp.Manifest {
		t.Errorf("after restart byName = %v, %v; want %s", c, ok, imp.Manifest)
	}
	if _, err := b.Publish(ctx, api.PublishRequest{Name: "acme/r"}); err != nil {
		t.Errorf("publish after restart: %v", err)
	}
}
