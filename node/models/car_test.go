package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// publishedModel imports a small model as name into reg and publishes it.
func publishedModel(t *testing.T, reg *Registry, name string) api.PublishResult {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	for path, data := range map[string]string{"config.json": `{"hidden":8}`, "weights.bin": strings.Repeat("w", 3<<20+17)} {
		if err := os.WriteFile(filepath.Join(src, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Import(ctx, api.ImportRequest{Path: src, Name: name, Copy: true}, nil); err != nil {
		t.Fatal(err)
	}
	pub, err := reg.Publish(ctx, api.PublishRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestCARNameNeedsTrust: a model's CAR carries its signed record; the
// importing registry pins everything, keeps the record, but indexes the
// name only once the publisher is trusted (here: on a second import after
// Trust), as it does for records from peers.
func TestCARNameNeedsTrust(t *testing.T) {
	ctx := context.Background()
	a, b := newTestRegistry(t), newTestRegistry(t)
	pub := publishedModel(t, a, "acme/tiny")
	out := filepath.Join(t.TempDir(), "tiny.car")
	exp, err := a.ExportCAR(ctx, api.ExportRequest{Ref: "acme/tiny", Out: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Roots) != 3 || exp.Publisher != pub.Publisher || exp.Manifest != pub.Manifest {
		t.Fatalf("export result %+v, want 3 roots and the record of %s", exp, pub.Publisher)
	}

	imp, err := b.ImportCAR(ctx, api.CARImportRequest{Path: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Pinned) != 3 || len(imp.Names) != 1 || imp.Names[0].Trusted || !imp.Names[0].Kept {
		t.Fatalf("import result %+v, want 3 pins and an untrusted record kept", imp)
	}
	if _, ok := b.index.ByName("acme/tiny", "main"); ok {
		t.Fatal("an untrusted publisher's name was indexed")
	}
	if _, ok := readRecord(b.home, "acme/tiny", "main"); !ok {
		t.Fatal("the untrusted record was not kept")
	}

	if _, err := trust.Add(string(b.home), pub.Publisher, "", nil); err != nil {
		t.Fatal(err)
	}
	imp, err = b.ImportCAR(ctx, api.CARImportRequest{Path: out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !imp.Names[0].Trusted || !imp.Names[0].Kept || imp.Stored != 0 {
		t.Fatalf("second import %+v, want the record trusted and no new block", imp)
	}
	if mc, ok := b.index.ByName("acme/tiny", "main"); !ok || mc.String() != pub.Manifest {
		t.Fatalf("after trust: ByName = %s, %v; want %s", mc, ok, pub.Manifest)
	}
	keys, _ := trust.Trusted(string(b.home))
	if len(keys) != 1 || len(keys[0].Names) != 1 || keys[0].Names[0] != "acme/*" {
		t.Errorf("trust list %+v: the key should be bound to acme/* by the record it accepted", keys)
	}
}

// TestExportCARRefuses: bad outputs and content not held fail before or
// without leaving anything at the output path.
func TestExportCARRefuses(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t)
	publishedModel(t, reg, "acme/tiny")
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists.car")
	if err := os.WriteFile(exists, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	notHeld := "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	tests := []struct {
		why, ref, out string
		want          error
	}{
		{"the output exists", "acme/tiny", exists, api.ErrBadInput},
		{"the output's directory does not exist", "acme/tiny", filepath.Join(dir, "no", "x.car"), api.ErrBadInput},
		{"a relative output", "acme/tiny", "x.car", api.ErrBadInput},
		{"not a CID", "bafy-not", filepath.Join(dir, "a.car"), api.ErrBadInput},
		{"a CID not held", notHeld, filepath.Join(dir, "b.car"), api.ErrNotFound},
		{"a model not held", "acme/other", filepath.Join(dir, "c.car"), api.ErrNotFound},
		{"a sha256 not held", "sha256:" + strings.Repeat("ab", 32), filepath.Join(dir, "d.car"), api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			_, err := reg.ExportCAR(ctx, api.ExportRequest{Ref: tt.ref, Out: tt.out}, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.out != exists {
				if _, err := os.Lstat(tt.out); err == nil {
					t.Errorf("%s was written", tt.out)
				}
			}
		})
	}
}

// TestExportCARIncompleteLeavesNothing: a DAG whose root is held but a
// leaf is not fails the export, with neither the CAR nor its partial file
// left behind.
func TestExportCARIncompleteLeavesNothing(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t)
	pub := publishedModel(t, reg, "acme/tiny")
	m, err := ReadManifest(ctx, reg.store.LocalDAG(), cid.MustParse(pub.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.Lookup("config.json")
	if err := reg.store.Blockstore().DeleteBlock(ctx, cid.MustParse(f.CID)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tiny.car")
	_, err = reg.ExportCAR(ctx, api.ExportRequest{Ref: "acme/tiny", Out: out}, nil)
	if err == nil || !strings.Contains(err.Error(), f.CID) {
		t.Fatalf("err = %v, want one naming the missing block %s", err, f.CID)
	}
	for _, p := range []string{out, store.PartialPath(out)} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// TestPreferRecord: which record a CAR's record replaces.
func TestPreferRecord(t *testing.T) {
	them, other := newTestPublisher(t), newTestPublisher(t)
	expired := func(p testPublisher) *manifest.Record {
		r := p.record(t, "acme/tiny", 1)
		r.Expires = time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
		if err := r.Sign(p.sk); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		why     string
		kept    *manifest.Record // nil: none
		trust   []string         // keys trusted for acme/*
		own     bool             // kept is this node's own record
		rec     *manifest.Record
		trusted bool
		want    bool
	}{
		{"none kept", nil, nil, false, them.record(t, "acme/tiny", 1), false, true},
		{"the same publisher, later", them.record(t, "acme/tiny", 1), nil, false, them.record(t, "acme/tiny", 2), false, true},
		{"the same record again", them.record(t, "acme/tiny", 2), nil, false, them.record(t, "acme/tiny", 2), false, true},
		{"the same publisher, older", them.record(t, "acme/tiny", 2), nil, false, them.record(t, "acme/tiny", 1), true, false},
		{"both untrusted: the kept one stays", other.record(t, "acme/tiny", 1), nil, false, them.record(t, "acme/tiny", 9), false, false},
		{"trusted over untrusted", other.record(t, "acme/tiny", 9), []string{them.id}, false, them.record(t, "acme/tiny", 1), true, true},
		{"untrusted never over trusted", them.record(t, "acme/tiny", 1), []string{them.id}, false, other.record(t, "acme/tiny", 9), false, false},
		{"both trusted: the later", them.record(t, "acme/tiny", 1), []string{them.id, other.id}, false, other.record(t, "acme/tiny", 2), true, true},
		{"never over this node's own", nil, nil, true, other.record(t, "acme/tiny", 9), false, false},
		{"over an expired untrusted one", expired(other), nil, false, them.record(t, "acme/tiny", 1), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			reg := newTestRegistry(t)
			kept := tt.kept
			if tt.own {
				sk, err := trust.LoadPublisherKey(reg.home)
				if err != nil {
					t.Fatal(err)
				}
				kept = &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testManifestCID, Seq: 1, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
				if err := kept.Sign(sk); err != nil {
					t.Fatal(err)
				}
			}
			if kept != nil {
				if err := writeRecord(reg.home, kept); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range tt.trust {
				if _, err := trust.Add(string(reg.home), k, "", []string{"acme/*"}); err != nil {
					t.Fatal(err)
				}
			}
			got, why, err := reg.preferRecord(tt.rec, tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !got && why == "" {
				t.Errorf("preferRecord = %v (%q), want %v", got, why, tt.want)
			}
		})
	}
}
