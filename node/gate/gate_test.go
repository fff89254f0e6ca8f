package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/policy/denylist"
	"github.com/allmende/allmende/policy/license"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// block makes a raw block of text.
func block(text string) blocks.Block { return blocks.NewBlock([]byte(text)) }

func sum(text string) string {
	s := sha256.Sum256([]byte(text))
	return hex.EncodeToString(s[:])
}

// held is a fixed set of manifests.
type held map[string]*manifest.Manifest

func (h held) List() []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	return out
}

func (h held) Manifest(_ context.Context, c cid.Cid) (*manifest.Manifest, error) {
	if m, ok := h[c.String()]; ok {
		return m, nil
	}
	return nil, errors.New("not held")
}

// fixture is a gate over one list file, a licence policy denying
// CC-BY-NC-*, and two held models: acme/nc (CC-BY-NC-4.0) and acme/ok
// (MIT) whose second file's sha256 is listed.
type fixture struct {
	g                                   *Gate
	list                                string
	denied, free, ncFile, okFile, okBad cid.Cid
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	denied, free := block("denied"), block("free")
	ncFile, okFile, okBad := block("nc weights"), block("ok weights"), block("ok bad file")
	list := filepath.Join(dir, "denylists", "local.deny")
	if err := os.MkdirAll(filepath.Dir(list), 0o700); err != nil {
		t.Fatal(err)
	}
	rules := "/ipfs/" + denied.Cid().String() + "\nname:leaks/*\nsha256:" + sum("ok bad file") + "\n"
	if err := os.WriteFile(list, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	bl, err := denylist.Open(denylist.Config{Dir: filepath.Dir(list), CacheDir: filepath.Join(dir, "fetched"), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bl.Close() })
	lic, err := license.NewPolicy(nil, []string{"CC-BY-NC-*"}, license.UnknownAllow)
	if err != nil {
		t.Fatal(err)
	}
	root := block("dir").Cid().String()
	h := held{
		block("manifest nc").Cid().String(): {Name: "acme/nc", License: "CC-BY-NC-4.0", Root: root,
			Files: []manifest.File{{Path: "w.bin", SHA256: sum("nc weights"), CID: ncFile.Cid().String()}}},
		block("manifest ok").Cid().String(): {Name: "acme/ok", License: "MIT", Root: root,
			Files: []manifest.File{{Path: "w.bin", SHA256: sum("ok weights"), CID: okFile.Cid().String()},
				{Path: "bad.bin", SHA256: sum("ok bad file"), CID: okBad.Cid().String()}}},
	}
	g := New(Config{Blocker: bl, Licenses: lic, Held: h, Log: quiet()})
	g.Recheck(context.Background())
	return fixture{g: g, list: list, denied: denied.Cid(), free: free.Cid(), ncFile: ncFile.Cid(), okFile: okFile.Cid(), okBad: okBad.Cid()}
}

func TestCID(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		c       cid.Cid
		where   policy.Surface
		refused bool
		reason  policy.Reason
	}{
		{"a listed CID, fetched", f.denied, policy.SurfaceFetch, true, policy.ReasonDenyCID},
		{"a listed CID, served", f.denied, policy.SurfaceBitswap, true, policy.ReasonDenyCID},
		{"an unlisted CID", f.free, policy.SurfaceBitswap, false, ""},
		{"a held file whose licence is denied, served", f.ncFile, policy.SurfaceBulk, true, policy.ReasonLicense},
		{"a held file whose licence is denied, fetched by the user", f.ncFile, policy.SurfaceFetch, false, ""},
		{"a held file whose sha256 is listed", f.okBad, policy.SurfaceFetch, true, policy.ReasonDenySHA256},
		{"a held file of an allowed model", f.okFile, policy.SurfaceAnnounce, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.g.Refusals().Count(tt.reason, tt.where)
			err := f.g.CID(tt.c, tt.where)
			if (err != nil) != tt.refused || f.g.Blocked(tt.c, tt.where) != tt.refused {
				t.Fatalf("CID = %v, Blocked = %v; want refused %v", err, f.g.Blocked(tt.c, tt.where), tt.refused)
			}
			if !tt.refused {
				return
			}
			if !errors.Is(err, ErrRefused) || f.g.Refusals().Count(tt.reason, tt.where) != before+1 {
				t.Errorf("err %v, count %d (before %d) for %s", err, f.g.Refusals().Count(tt.reason, tt.where), before, tt.reason)
			}
		})
	}
}

func TestNamesSumsLicences(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		err      error
		kind     error
		mentions string
	}{
		{"a listed name", f.g.Name("leaks/tiny", policy.SurfaceHF), denylist.ErrBlocked, f.list},
		{"another name", f.g.Name("acme/tiny", policy.SurfaceHF), nil, ""},
		{"a listed sha256", f.g.SHA256(sum("ok bad file"), "acme/ok/bad.bin", policy.SurfaceHF), denylist.ErrBlocked, "acme/ok/bad.bin"},
		{"a denied licence on a fill", f.g.License("cc-by-nc-4.0", "acme/x", policy.SurfaceFill), license.ErrDenied, "CC-BY-NC-4.0"},
		{"a denied licence fetched by the user", f.g.License("cc-by-nc-4.0", "acme/x", policy.SurfaceFetch), nil, ""},
		{"an allowed licence", f.g.License("apache-2.0", "acme/x", policy.SurfaceFill), nil, ""},
		{"a manifest with a listed file", f.g.Manifest(&manifest.Manifest{Name: "acme/ok",
			Files: []manifest.File{{Path: "bad.bin", SHA256: sum("ok bad file"), CID: f.okBad.String()}}}, cid.Undef, policy.SurfaceHF),
			denylist.ErrBlocked, "bad.bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kind == nil {
				if tt.err != nil {
					t.Fatalf("refused: %v", tt.err)
				}
				return
			}
			if !errors.Is(tt.err, tt.kind) || !errors.Is(tt.err, ErrRefused) || !strings.Contains(tt.err.Error(), tt.mentions) {
				t.Errorf("err %v; want %v mentioning %q", tt.err, tt.kind, tt.mentions)
			}
		})
	}
}

func TestServingAndGateway(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bs := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	for _, b := range []blocks.Block{block("denied"), block("free")} {
		if err := bs.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	served := f.g.Serving(bs, policy.SurfaceBitswap)
	if has, _ := served.Has(ctx, f.denied); has {
		t.Error("Has: a listed block is offered")
	}
	if _, err := served.Get(ctx, f.denied); !ipld.IsNotFound(err) {
		t.Errorf("Get of a listed block: %v, want not found", err)
	}
	if has, _ := served.Has(ctx, f.free); !has {
		t.Error("Has: an unlisted block is not offered")
	}
	if f.g.Refusals().Count(policy.ReasonDenyCID, policy.SurfaceBitswap) != 2 {
		t.Errorf("bitswap refusals = %d, want 2", f.g.Refusals().Count(policy.ReasonDenyCID, policy.SurfaceBitswap))
	}

	h := f.g.Gateway(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/ipfs/" + f.denied.String() + "?format=raw", http.StatusGone},
		{"/ipfs/" + f.denied.String() + "/a/b", http.StatusGone},
		{"/ipfs/" + f.ncFile.String(), http.StatusGone}, // a held file the licence policy keeps from re-seeding
		{"/ipfs/" + f.free.String(), http.StatusTeapot},
		{"/ipfs/not-a-cid", http.StatusTeapot},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if w.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.path, w.Code, tt.want)
		}
	}
}

func TestNilGateRefusesNothing(t *testing.T) {
	var g *Gate
	if g.CID(block("x").Cid(), policy.SurfaceFetch) != nil || g.Name("a/b", policy.SurfaceHF) != nil ||
		g.License("x", "a/b", policy.SurfaceFill) != nil || g.Manifest(&manifest.Manifest{Name: "a/b"}, cid.Undef, policy.SurfaceHF) != nil {
		t.Error("a nil gate refused")
	}
}
