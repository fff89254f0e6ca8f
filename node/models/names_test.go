package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/store/manifest"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// testManifestCID is any valid CID for records that are never followed.
const testManifestCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

// testPublisher is a publisher key and its ID.
type testPublisher struct {
	sk crypto.PrivKey
	id string
}

func newTestPublisher(t *testing.T) testPublisher {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := manifest.KeyID(sk.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return testPublisher{sk, id}
}

func (p testPublisher) record(t *testing.T, name string, seq uint64) *manifest.Record {
	t.Helper()
	r := &manifest.Record{Name: name, Revision: "main", Manifest: testManifestCID, Seq: seq, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	if err := r.Sign(p.sk); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPickRecord(t *testing.T) {
	acme, other, stranger := newTestPublisher(t), newTestPublisher(t), newTestPublisher(t)
	tests := []struct {
		why      string
		trust    []trust.Key
		name     string
		recs     []*manifest.Record
		trustAny bool
		want     string // publisher of the chosen record, "" for none
		trusted  bool
		bind     bool
		outside  int
	}{
		{"a key trusted for the org signs a name in it",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}}, "acme/tiny",
			[]*manifest.Record{acme.record(t, "acme/tiny", 1)}, false, acme.id, true, false, 0},
		{"a trusted key signing a name outside its patterns is refused like an untrusted one",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}}, "evil/tiny",
			[]*manifest.Record{acme.record(t, "evil/tiny", 1)}, false, "", false, false, 1},
		{"... and with --trust-any it is taken, but not as trusted",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}}, "evil/tiny",
			[]*manifest.Record{acme.record(t, "evil/tiny", 1)}, true, acme.id, false, false, 1},
		{"a key without patterns (an old trust file) is taken and to be bound",
			[]trust.Key{{Key: acme.id}}, "acme/tiny",
			[]*manifest.Record{acme.record(t, "acme/tiny", 1)}, false, acme.id, true, true, 0},
		{"the highest sequence number among trusted publishers wins",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}, {Key: other.id, Names: []string{"*/*"}}}, "acme/tiny",
			[]*manifest.Record{acme.record(t, "acme/tiny", 5), other.record(t, "acme/tiny", 9), acme.record(t, "acme/tiny", 7)}, false, other.id, true, false, 0},
		{"--trust-any never overrides a trusted record, however high the other's sequence number",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}}, "acme/tiny",
			[]*manifest.Record{stranger.record(t, "acme/tiny", manifest.MaxSeq), acme.record(t, "acme/tiny", 1)}, true, acme.id, true, false, 0},
		{"a trusted key out of its patterns does not beat a trusted one in them",
			[]trust.Key{{Key: acme.id, Names: []string{"acme/*"}}, {Key: other.id, Names: []string{"other/*"}}}, "acme/tiny",
			[]*manifest.Record{other.record(t, "acme/tiny", 100), acme.record(t, "acme/tiny", 1)}, true, acme.id, true, false, 1},
		{"only untrusted records and no --trust-any: none",
			nil, "acme/tiny",
			[]*manifest.Record{stranger.record(t, "acme/tiny", 1)}, false, "", false, false, 0},
		{"only untrusted records with --trust-any: the highest",
			nil, "acme/tiny",
			[]*manifest.Record{stranger.record(t, "acme/tiny", 1), other.record(t, "acme/tiny", 2)}, true, other.id, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			pick := pickRecord(tt.recs, tt.trust, tt.name, tt.trustAny)
			got := ""
			if pick.best != nil {
				got = pick.best.Record.Publisher
				if pick.best.Trusted != tt.trusted {
					t.Errorf("trusted = %v, want %v", pick.best.Trusted, tt.trusted)
				}
			}
			if got != tt.want || pick.bind != tt.bind || len(pick.outside) != tt.outside {
				t.Errorf("picked %q (bind %v, %d outside), want %q (bind %v, %d outside)", got, pick.bind, len(pick.outside), tt.want, tt.bind, tt.outside)
			}
		})
	}
}

// TestTrustFile: the trust file keeps old entries (no names) working,
// records patterns, and binds an unbound key once.
func TestTrustFile(t *testing.T) {
	reg := newTestRegistry(t)
	home := string(reg.home)
	acme, other := newTestPublisher(t), newTestPublisher(t)
	old := `[{"key": "` + acme.id + `", "label": "from before names"}]`
	if err := os.WriteFile(reg.home.Trust(), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := trust.Trusted(home)
	if err != nil || len(keys) != 1 || keys[0].Names != nil || keys[0].Label != "from before names" {
		t.Fatalf("old trust file: %+v, %v", keys, err)
	}
	names, err := reg.bindTrust(acme.id, "acme/tiny")
	if err != nil || !slices.Equal(names, []string{"acme/*"}) {
		t.Fatalf("bind: %q, %v", names, err)
	}
	if names, _ := reg.bindTrust(acme.id, "evil/tiny"); !slices.Equal(names, []string{"acme/*"}) {
		t.Errorf("a bound key was bound again: %q", names)
	}
	if _, err := trust.Add(home, other.id, "", []string{"other/*", "friends/model"}); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(home, other.id, "", []string{"not a pattern"}); !errors.Is(err, api.ErrBadInput) {
		t.Errorf("a bad pattern: err = %v, want api.ErrBadInput", err)
	}
	if _, err := trust.Add(home, acme.id, "acme", nil); err != nil {
		t.Fatal(err)
	}
	keys, _ = trust.Trusted(home)
	a, _ := trust.Find(keys, acme.id)
	o, _ := trust.Find(keys, other.id)
	if !slices.Equal(a.Names, []string{"acme/*"}) || a.Label != "acme" || !slices.Equal(o.Names, []string{"friends/model", "other/*"}) {
		t.Errorf("trust list %+v: adding again without --names must keep the names", keys)
	}
}

// TestPublishRefusesSeqAtTop: a record at MaxSeq leaves no room for a
// later one; publish says so instead of signing a record nobody accepts.
func TestPublishRefusesSeqAtTop(t *testing.T) {
	ctx := context.Background()
	reg := newTestRegistry(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "config.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Import(ctx, api.ImportRequest{Path: src, Name: "acme/top"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, api.PublishRequest{Name: "acme/top"}); err != nil {
		t.Fatal(err)
	}
	sk, err := trust.LoadPublisherKey(reg.home)
	if err != nil {
		t.Fatal(err)
	}
	top := &manifest.Record{Name: "acme/top", Revision: "main", Manifest: testManifestCID, Seq: manifest.MaxSeq, Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	if err := top.Sign(sk); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(reg.home, top); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, api.PublishRequest{Name: "acme/top"}); err == nil {
		t.Error("published after a record at MaxSeq")
	}
}
