package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/policy/provenance"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// importFilled imports a one-file folder as name with the given content,
// as a mirror's fill would record it, and returns its manifest.
func importFilled(t *testing.T, reg *Registry, name, rev, content string) (cid.Cid, *manifest.Manifest) {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "config.json"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := reg.Import(ctx, api.ImportRequest{Path: src, Name: name, Revision: rev}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc, _ := cid.Decode(res.Manifest)
	m, err := ReadManifest(ctx, reg.store.LocalDAG(), mc)
	if err != nil {
		t.Fatal(err)
	}
	return mc, m
}

// TestSignFill: a fill is signed with an attestation and a version 2
// record for the branch; when the branch moves the new record has a higher
// sequence number; verify --provenance accepts the attestation once its
// signer is trusted, and not before.
func TestSignFill(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t)
	var seqs []uint64
	var last cid.Cid
	var lastM *manifest.Manifest
	for i, content := range []string{`{"v":1}`, `{"v":2}`} {
		mc, m := importFilled(t, reg, "acme/tiny", fmt.Sprintf("r%d", i), content)
		up := provenance.Upstream{URL: "https://huggingface.co", Kind: "model", Name: m.Name, Revision: "main", Commit: m.Commit}
		if err := reg.SignFill(mc, m, up); err != nil {
			t.Fatal(err)
		}
		raw, ok := readRecord(reg.home, "acme/tiny", "main")
		if !ok {
			t.Fatal("no record for main")
		}
		rec, err := manifest.DecodeRecord(raw, time.Now())
		if err != nil || rec.Version != 2 || rec.Manifest != mc.String() || rec.Describes(m) != nil {
			t.Fatalf("record %+v, %v: want a version 2 record for %s", rec, err, mc)
		}
		seqs = append(seqs, rec.Seq)
		if as := reg.Attestations(mc, m); len(as) != 1 || as[0].Commit != m.Commit || as[0].Trusted {
			t.Errorf("attestations of %s: %+v; want one, not trusted yet", mc, as)
		}
		last = mc
		lastM = m
	}
	if seqs[1] <= seqs[0] {
		t.Errorf("the record for the moved branch has seq %d, not above %d", seqs[1], seqs[0])
	}

	ref := "acme/tiny@r1"
	_, err := reg.VerifyProvenance(ctx, ref)
	if !errors.Is(err, ErrUnattested) || !strings.Contains(err.Error(), "not in the trust list") {
		t.Errorf("before trust: %v, want unattested, signer not in the trust list", err)
	}
	key, err := trust.PublisherKey(string(reg.home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(string(reg.home), key, "", []string{"acme/*"}); err != nil {
		t.Fatal(err)
	}
	rep, err := reg.VerifyProvenance(ctx, ref)
	if err != nil || len(rep.Accepted) != 1 || rep.Manifest != last.String() {
		t.Errorf("after trust: %+v, %v", rep, err)
	}
	if as := reg.Attestations(last, lastM); len(as) != 1 || !as[0].Trusted || as[0].Signer != key {
		t.Errorf("attestations after trust: %+v; want %s's, trusted", as, key)
	}
}
