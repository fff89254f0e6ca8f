package provenance_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/policy/provenance"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
)

const testCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

// now is the time attestations are signed at: this second, as the store
// checks times against the clock.
var now = time.Now().UTC().Truncate(time.Second)

func key(t testing.TB, seed byte) crypto.PrivKey {
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// sample is a manifest as a mirror files a fill: under its commit.
func sample() (cid.Cid, *manifest.Manifest) {
	m := &manifest.Manifest{Version: manifest.Version, Kind: manifest.KindModel, Name: "acme/tiny",
		Revision: strings.Repeat("a", 40), Commit: strings.Repeat("a", 40), License: "MIT", Root: testCID,
		Files: []manifest.File{
			{Path: "z.safetensors", Size: 3, SHA256: strings.Repeat("1", 64), CID: testCID},
			{Path: "config.json", Size: 2, SHA256: strings.Repeat("2", 64), BlobSHA1: strings.Repeat("3", 40), CID: testCID},
		}}
	b, _ := m.Block()
	return b.Cid(), m
}

var hub = provenance.Upstream{URL: "https://huggingface.co", Kind: "model", Name: "acme/tiny", Revision: "main", Commit: strings.Repeat("a", 40)}

func signed(t testing.TB, sk crypto.PrivKey) (*provenance.Attestation, []byte) {
	mc, m := sample()
	a := provenance.New(mc, m, hub, now)
	if err := a.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return a, raw
}

func TestSignDecode(t *testing.T) {
	sk := key(t, 1)
	a, raw := signed(t, sk)
	got, err := provenance.Decode(raw, now)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := manifest.KeyID(sk.GetPublic())
	if got.Signer != id || got.Files[0].Path != "config.json" || !got.Time.Equal(now) || got.Upstream != hub {
		t.Errorf("decoded %+v", got)
	}
	again, _ := got.Encode()
	if !bytes.Equal(again, raw) {
		t.Error("decode and encode again changes the bytes")
	}
	// Ed25519 is deterministic: the same statement signs to the same bytes.
	_, raw2 := signed(t, sk)
	if !bytes.Equal(raw, raw2) {
		t.Error("the same attestation signed twice differs")
	}
	_ = a
}

func TestDecodeRefuses(t *testing.T) {
	sk := key(t, 1)
	_, raw := signed(t, sk)
	other, _ := manifest.KeyID(key(t, 2).GetPublic())
	me, _ := manifest.KeyID(sk.GetPublic())
	s := string(raw)
	stamp := now.Format(time.RFC3339)
	if !strings.Contains(s, stamp) {
		t.Fatalf("%s does not hold %s", s, stamp)
	}
	tests := []struct {
		why  string
		data string
		want error
	}{
		{"a file's sha256 changed", strings.Replace(s, strings.Repeat("1", 64), strings.Repeat("4", 64), 1), provenance.ErrBadSignature},
		{"the commit changed", strings.Replace(s, strings.Repeat("a", 40), strings.Repeat("b", 40), 1), provenance.ErrBadSignature},
		{"another signer named", strings.Replace(s, me, other, 1), provenance.ErrBadSignature},
		{"the upstream changed", strings.Replace(s, "https://huggingface.co", "https://evil.example", 1), provenance.ErrBadSignature},
		{"a field added", strings.Replace(s, `{"v":1,`, `{"v":1,"x":1,`, 1), provenance.ErrInvalid},
		{"another version", strings.Replace(s, `{"v":1,`, `{"v":2,`, 1), provenance.ErrInvalid},
		{"not canonical (spaces)", strings.Replace(s, `,"manifest"`, `, "manifest"`, 1), provenance.ErrInvalid},
		{"two documents", s + s, provenance.ErrInvalid},
		{"not JSON", "{", provenance.ErrInvalid},
		{"too large", s + strings.Repeat(" ", provenance.MaxSize), provenance.ErrInvalid},
		{"files out of order", strings.Replace(s, "config.json", "zz.json", 1), provenance.ErrInvalid},
		{"a bad path", strings.Replace(s, "config.json", "../config.json", 1), provenance.ErrInvalid},
		{"a bad upstream URL", strings.Replace(s, "https://huggingface.co", "file:///etc", 1), provenance.ErrInvalid},
		{"a bad kind", strings.Replace(s, `"kind":"model"`, `"kind":"space"`, 1), provenance.ErrInvalid},
		{"a time not in whole seconds", strings.Replace(s, stamp, strings.TrimSuffix(stamp, "Z")+".5Z", 1), provenance.ErrInvalid},
		{"a time in another zone", strings.Replace(s, stamp, now.In(time.FixedZone("x", 7200)).Format(time.RFC3339), 1), provenance.ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := provenance.Decode([]byte(tt.data), now); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.why, err, tt.want)
		}
	}
	if _, err := provenance.Decode(raw, now.Add(-48*time.Hour)); !errors.Is(err, provenance.ErrInvalid) {
		t.Errorf("signed two days after now: err = %v", err)
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	mc, m := sample()
	up := hub
	up.Commit = "short"
	if err := provenance.New(mc, m, up, now).Sign(key(t, 1)); !errors.Is(err, provenance.ErrInvalid) {
		t.Errorf("a short commit: err = %v", err)
	}
}

func TestDescribes(t *testing.T) {
	mc, m := sample()
	a, _ := signed(t, key(t, 1))
	tests := []struct {
		why    string
		change func(*manifest.Manifest) cid.Cid
		ok     bool
	}{
		{"the manifest attested", func(*manifest.Manifest) cid.Cid { return mc }, true},
		{"the same manifest filed under main", func(m *manifest.Manifest) cid.Cid { m.Revision = "main"; return mc }, true},
		{"another CID", func(*manifest.Manifest) cid.Cid { return cid.MustParse(testCID) }, false},
		{"another commit", func(m *manifest.Manifest) cid.Cid { m.Commit = strings.Repeat("b", 40); return mc }, false},
		{"another name", func(m *manifest.Manifest) cid.Cid { m.Name = "acme/other"; return mc }, false},
		{"a dataset of that name", func(m *manifest.Manifest) cid.Cid { m.Kind = manifest.KindDataset; return mc }, false},
		{"a file more", func(m *manifest.Manifest) cid.Cid {
			m.Files = append(m.Files, manifest.File{Path: "extra.bin", Size: 1, SHA256: strings.Repeat("5", 64), CID: testCID})
			return mc
		}, false},
		{"a file less", func(m *manifest.Manifest) cid.Cid { m.Files = m.Files[:1]; return mc }, false},
		{"a file renamed", func(m *manifest.Manifest) cid.Cid { m.Files[0].Path = "y.safetensors"; return mc }, false},
		{"a file's content differs", func(m *manifest.Manifest) cid.Cid { m.Files[1].SHA256 = strings.Repeat("6", 64); return mc }, false},
		{"a file's size differs", func(m *manifest.Manifest) cid.Cid { m.Files[1].Size++; return mc }, false},
	}
	for _, tt := range tests {
		_, mm := sample()
		c := tt.change(mm)
		err := a.Describes(c, mm)
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, provenance.ErrMismatch)) {
			t.Errorf("%s: err = %v", tt.why, err)
		}
	}
	_ = m
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	mc, m := sample()
	a1, _ := signed(t, key(t, 1))
	a2, _ := signed(t, key(t, 2))
	for _, a := range []*provenance.Attestation{a1, a2} {
		if err := provenance.Save(dir, a); err != nil {
			t.Fatal(err)
		}
	}
	// An older one by the same signer does not replace the newer.
	older := provenance.New(mc, m, hub, now.Add(-time.Hour))
	older.Sign(key(t, 1))
	if err := provenance.Save(dir, older); err != nil {
		t.Fatal(err)
	}
	got, err := provenance.ForManifest(dir, mc)
	if err != nil || len(got) != 2 || !got[0].Time.Equal(now) || !got[1].Time.Equal(now) {
		t.Fatalf("ForManifest: %d, %v", len(got), err)
	}
	if got[0].Signer > got[1].Signer {
		t.Error("not sorted by signer")
	}
	// A newer one replaces.
	newer := provenance.New(mc, m, hub, now.Add(time.Hour))
	newer.Sign(key(t, 1))
	provenance.Save(dir, newer)
	got, _ = provenance.ForManifest(dir, mc)
	if len(got) != 2 || !(got[0].Time.Equal(now.Add(time.Hour)) || got[1].Time.Equal(now.Add(time.Hour))) {
		t.Errorf("a newer attestation did not replace the older")
	}
	// Tampered and misplaced files are reported, the good ones kept.
	mdir := filepath.Join(dir, mc.String())
	raw, _ := os.ReadFile(filepath.Join(mdir, a2.Signer+".json"))
	os.WriteFile(filepath.Join(mdir, a2.Signer+".json"), bytes.Replace(raw, []byte(strings.Repeat("1", 64)), []byte(strings.Repeat("7", 64)), 1), 0o644)
	os.WriteFile(filepath.Join(mdir, "k51other.json"), raw, 0o644) // valid, but filed under another name
	os.WriteFile(filepath.Join(mdir, "notes.txt"), []byte("x"), 0o644)
	got, err = provenance.ForManifest(dir, mc)
	if len(got) != 1 || got[0].Signer != a1.Signer || !errors.Is(err, provenance.ErrBadSignature) || !strings.Contains(err.Error(), "wrong place") {
		t.Errorf("with a tampered and a misplaced file: %d kept, err %v", len(got), err)
	}
	if got, err := provenance.ForManifest(dir, cid.MustParse(testCID)); len(got) != 0 || err != nil {
		t.Errorf("a manifest without attestations: %d, %v", len(got), err)
	}
	bad := *a1
	bad.Signature = []byte("nope")
	if err := provenance.Save(dir, &bad); !errors.Is(err, provenance.ErrBadSignature) {
		t.Errorf("saving a forged attestation: err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	_, raw := signed(f, key(f, 1))
	f.Add(raw)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := provenance.Decode(data, now)
		if err != nil {
			return
		}
		again, err := a.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("an accepted attestation does not re-encode to its bytes")
		}
	})
}
