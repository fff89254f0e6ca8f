package manifest_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store/manifest"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// goldenV1 is a version 1 record signed by the code before version 2
// existed (key from a fixed seed): records already published must keep
// verifying.
const goldenV1 = `{"v":1,"name":"acme/tiny","revision":"main","manifest":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","seq":42,"expires":"2036-01-02T03:04:05Z","publisher":"k51qzi5uqu5dm0t4vbwri4lkg76q03b4x9tsvekgvbu4zli6454ff7w8wdosa4","sig":"vjPJnv9ug5QJFr+5s8Rv3hDfcZOMcps953E766Q/wjbOPCx+P5B8pPhbSFYpSqXMVAvlzUjcEAVJKZsnnY3+Cw=="}`

func fixedKey(t testing.TB) crypto.PrivKey {
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func TestRecordV1StillVerifies(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := manifest.DecodeRecord([]byte(goldenV1), now)
	if err != nil || r.Version != manifest.RecordVersion || r.Seq != 42 {
		t.Fatalf("golden v1 record: %+v %v", r, err)
	}
	// The same record signed again today is byte for byte the golden one:
	// a record without kind and commit is still written as version 1.
	again := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Seq: 42, Expires: r.Expires}
	if err := again.Sign(fixedKey(t)); err != nil {
		t.Fatal(err)
	}
	raw, _ := again.Encode()
	if string(raw) != goldenV1 {
		t.Errorf("v1 record re-signed:\n got %s\nwant %s", raw, goldenV1)
	}
}

func TestRecordBranchVersions(t *testing.T) {
	sk := fixedKey(t)
	now := time.Now()
	commit := strings.Repeat("c", 40)
	tests := []struct {
		why     string
		rec     manifest.Record
		version int // 0: Sign's choice is refused by DecodeRecord
	}{
		{"kind and commit make a version 2 record", manifest.Record{Kind: manifest.KindModel, Commit: commit}, manifest.RecordVersionBranch},
		{"a dataset branch", manifest.Record{Kind: manifest.KindDataset, Commit: commit}, manifest.RecordVersionBranch},
		{"neither keeps version 1", manifest.Record{}, manifest.RecordVersion},
		{"a commit without a kind is refused", manifest.Record{Commit: commit}, 0},
		{"a kind without a commit is refused", manifest.Record{Kind: manifest.KindModel}, 0},
		{"an unknown kind is refused", manifest.Record{Kind: "space", Commit: commit}, 0},
		{"a short commit is refused", manifest.Record{Kind: manifest.KindModel, Commit: "abc"}, 0},
		{"an upper-case commit is refused", manifest.Record{Kind: manifest.KindModel, Commit: strings.Repeat("C", 40)}, 0},
	}
	for _, tt := range tests {
		r := tt.rec
		r.Name, r.Revision, r.Manifest, r.Seq, r.Expires = "acme/tiny", "main", testCID, 9, now.Add(time.Hour)
		if err := r.Sign(sk); err != nil {
			t.Fatal(err)
		}
		raw, _ := r.Encode()
		got, err := manifest.DecodeRecord(raw, now)
		switch {
		case tt.version == 0 && !errors.Is(err, manifest.ErrInvalid):
			t.Errorf("%s: err = %v, want ErrInvalid", tt.why, err)
		case tt.version != 0 && (err != nil || got.Version != tt.version || got.Commit != r.Commit || got.Kind != r.Kind):
			t.Errorf("%s: got %+v, %v; want version %d", tt.why, got, err, tt.version)
		}
	}
}

func TestRecordVersionForged(t *testing.T) {
	sk := fixedKey(t)
	now := time.Now()
	r := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Kind: manifest.KindModel,
		Commit: strings.Repeat("c", 40), Seq: 3, Expires: now.Add(time.Hour)}
	if err := r.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, _ := r.Encode()
	for _, tt := range []struct{ why, from, to string }{
		{"the commit changed after signing", `"commit":"cccc`, `"commit":"dddd`},
		{"the kind changed after signing", `"kind":"model"`, `"kind":"dataset"`},
		{"v2 relabelled v1 with its commit dropped", `"v":2`, `"v":1`},
	} {
		bad := []byte(strings.Replace(string(raw), tt.from, tt.to, 1))
		if tt.why == "v2 relabelled v1 with its commit dropped" {
			bad = []byte(strings.Replace(strings.Replace(string(bad), `"kind":"model",`, "", 1), `"commit":"`+r.Commit+`",`, "", 1))
		}
		if _, err := manifest.DecodeRecord(bad, now); !errors.Is(err, manifest.ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", tt.why, err)
		}
	}
}

func TestRecordDescribes(t *testing.T) {
	commit := strings.Repeat("a", 40) // sample()'s commit
	m := sample()                     // acme/tiny@main, a model
	atCommit := sample()
	atCommit.Revision = commit // a mirror files what it filled under the commit
	tests := []struct {
		why string
		rec manifest.Record
		m   *manifest.Manifest
		ok  bool
	}{
		{"v1: same name and revision", manifest.Record{Version: 1, Name: "acme/tiny", Revision: "main"}, m, true},
		{"v1: the revision is the manifest's commit", manifest.Record{Version: 1, Name: "acme/tiny", Revision: commit}, m, true},
		{"v1: main cannot stand for a manifest filed under its commit", manifest.Record{Version: 1, Name: "acme/tiny", Revision: "main"}, atCommit, false},
		{"v2: main at the manifest's commit", manifest.Record{Version: 2, Kind: "model", Name: "acme/tiny", Revision: "main", Commit: commit}, atCommit, true},
		{"v2: another commit", manifest.Record{Version: 2, Kind: "model", Name: "acme/tiny", Revision: "main", Commit: strings.Repeat("b", 40)}, m, false},
		{"v2: a dataset record for a model", manifest.Record{Version: 2, Kind: "dataset", Name: "acme/tiny", Revision: "main", Commit: commit}, m, false},
		{"another name", manifest.Record{Version: 1, Name: "acme/other", Revision: "main"}, m, false},
	}
	for _, tt := range tests {
		err := tt.rec.Describes(tt.m)
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, manifest.ErrMismatch)) {
			t.Errorf("%s: err = %v", tt.why, err)
		}
	}
}

func TestNextSeq(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		why  string
		prev *manifest.Record
		want uint64
		ok   bool
	}{
		{"no earlier record: the time", nil, uint64(now.UnixNano()), true},
		{"an older record: the time", &manifest.Record{Seq: 5}, uint64(now.UnixNano()), true},
		{"a record from a clock ahead: one above it", &manifest.Record{Seq: uint64(now.UnixNano()) + 10}, uint64(now.UnixNano()) + 11, true},
		{"the branch moves twice in one tick: still higher", &manifest.Record{Seq: uint64(now.UnixNano())}, uint64(now.UnixNano()) + 1, true},
		{"no room above the last", &manifest.Record{Seq: manifest.MaxSeq}, 0, false},
	}
	for _, tt := range tests {
		got, err := manifest.NextSeq(tt.prev, now)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.why, got, err, tt.want)
		}
	}
	if got, _ := manifest.NextSeq(nil, time.Unix(-5, 0)); got != 0 {
		t.Errorf("a clock before 1970: got %d, want 0", got)
	}
}

func FuzzDecodeBranchRecord(f *testing.F) {
	sk := fixedKey(f)
	r := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Kind: manifest.KindDataset,
		Commit: strings.Repeat("e", 40), Seq: 1, Expires: time.Now().Add(time.Hour)}
	r.Sign(sk)
	raw, _ := r.Encode()
	f.Add(raw)
	f.Add([]byte(goldenV1))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := manifest.DecodeRecord(data, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			return
		}
		if got.Version == manifest.RecordVersion && (got.Kind != "" || got.Commit != "") {
			t.Fatalf("a version 1 record with a kind or commit was accepted: %s", data)
		}
		if got.Version == manifest.RecordVersionBranch && (got.Commit == "" || got.Kind == "") {
			t.Fatalf("a version 2 record without kind or commit was accepted: %s", data)
		}
	})
}
