package manifest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/format/formattest"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/storetest"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
)

const testCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

func sample() *manifest.Manifest {
	return &manifest.Manifest{
		Version: manifest.Version, Kind: manifest.KindModel, Name: "acme/tiny", Revision: "main",
		Commit: strings.Repeat("a", 40), License: "mit", Root: testCID,
		Files: []manifest.File{
			{Path: "z.bin", Size: 3, SHA256: strings.Repeat("1", 64), CID: testCID},
			{Path: "config.json", Size: 2, SHA256: strings.Repeat("2", 64), BlobSHA1: strings.Repeat("3", 40), CID: testCID},
		},
	}
}

func TestValidatePath(t *testing.T) {
	cases := []struct {
		path, why string
		ok        bool
	}{
		{"model.safetensors", "a plain name", true},
		{"tokenizer/special/tokens.txt", "nested", true},
		{"", "empty paths name nothing", false},
		{"/etc/passwd", "absolute paths escape the output", false},
		{"../x", "dot-dot escapes the output", false},
		{"a/../../x", "dot-dot in the middle escapes too", false},
		{"a/./b", "dot segments make two names for one file", false},
		{"a//b", "empty segments make two names for one file", false},
		{"a/", "trailing slash is an empty segment", false},
		{`a\b`, "backslash is a separator on Windows", false},
		{"a\x00b", "NUL truncates C paths", false},
		{"\xff", "not UTF-8", false},
		{strings.Repeat("a/", 40) + "b", "too deep", false},
	}
	for _, c := range cases {
		if err := manifest.ValidatePath(c.path); (err == nil) != c.ok {
			t.Errorf("%q (%s): err = %v, want ok=%v", c.path, c.why, err, c.ok)
		}
	}
}

func TestValidateCollisions(t *testing.T) {
	cases := []struct {
		a, b, why string
	}{
		{"Model.bin", "model.bin", "case folding: one file on macOS and Windows"},
		{"caf\u00e9", "cafe\u0301", "NFC: precomposed and decomposed é are one name"},
		{"a", "a/b", "a file cannot also be a directory"},
		{"x.bin", "x.bin", "exact duplicates"},
	}
	for _, c := range cases {
		m := sample()
		m.Files = []manifest.File{
			{Path: c.a, SHA256: strings.Repeat("1", 64), CID: testCID},
			{Path: c.b, SHA256: strings.Repeat("1", 64), CID: testCID},
		}
		if err := m.Validate(); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", c.why, err)
		}
	}
}

func TestEncodeDecodeDeterministic(t *testing.T) {
	m := sample()
	a, err := m.Block()
	if err != nil {
		t.Fatal(err)
	}
	m.Files[0], m.Files[1] = m.Files[1], m.Files[0]
	b, _ := m.Block()
	if a.Cid() != b.Cid() {
		t.Errorf("file order changed the CID: %s vs %s", a.Cid(), b.Cid())
	}
	got, err := manifest.Decode(a.RawData())
	if err != nil {
		t.Fatal(err)
	}
	if got.Files[0].Path != "config.json" || got.Name != "acme/tiny" {
		t.Errorf("decoded %+v", got)
	}
	c1, _ := m.ComputeCommit()
	c2, _ := got.ComputeCommit()
	if c1 != c2 || len(c1) != 40 {
		t.Errorf("commit not stable: %s vs %s", c1, c2)
	}
	nonCanon := strings.Replace(string(a.RawData()), `{"version"`, `{ "version"`, 1)
	if _, err := manifest.Decode([]byte(nonCanon)); err == nil {
		t.Error("a non-canonical encoding was accepted: two byte strings (two CIDs) for one manifest")
	}
}

func TestSelect(t *testing.T) {
	files := []manifest.File{{Path: "config.json"}, {Path: "model-q4.gguf"}, {Path: "model-q8.gguf"}, {Path: "sub/x.safetensors"}}
	cases := []struct {
		inc, exc []string
		want     string
		why      string
	}{
		{nil, nil, "config.json model-q4.gguf model-q8.gguf sub/x.safetensors", "no patterns: everything"},
		{[]string{"*q4*"}, nil, "model-q4.gguf", "one quantisation"},
		{[]string{"*.safetensors", "*.json"}, nil, "config.json sub/x.safetensors", "* crosses / as in fnmatch"},
		{nil, []string{"*.gguf"}, "config.json sub/x.safetensors", "exclude"},
		{[]string{"sub/"}, nil, "sub/x.safetensors", "a trailing slash selects a directory"},
		{[]string{"model-q[48].gguf"}, []string{"*8*"}, "model-q4.gguf", "classes, exclude wins"},
	}
	for _, c := range cases {
		sel, err := manifest.Select(files, c.inc, c.exc)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range sel {
			got = append(got, f.Path)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s: got %v, want %s", c.why, got, c.want)
		}
	}
}

func TestRecord(t *testing.T) {
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	r := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Seq: 7, Expires: time.Now().Add(time.Hour).UTC()}
	if err := r.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, _ := r.Encode()
	got, err := manifest.DecodeRecord(raw, time.Now())
	if err != nil || got.Seq != 7 || !strings.HasPrefix(got.Publisher, "k51") {
		t.Fatalf("decode: %+v %v", got, err)
	}
	tampered := []byte(strings.Replace(string(raw), `"seq":7`, `"seq":8`, 1))
	if _, err := manifest.DecodeRecord(tampered, time.Now()); !errors.Is(err, manifest.ErrBadSignature) {
		t.Errorf("tampered seq: err = %v, want ErrBadSignature", err)
	}
	if _, err := manifest.DecodeRecord(raw, time.Now().Add(2*time.Hour)); !errors.Is(err, manifest.ErrExpired) {
		t.Errorf("expired: err = %v, want ErrExpired", err)
	}
	other, _, _ := crypto.GenerateEd25519Key(nil)
	oid, _ := manifest.KeyID(other.GetPublic())
	forged := []byte(strings.Replace(string(raw), r.Publisher, oid, 1))
	if _, err := manifest.DecodeRecord(forged, time.Now()); !errors.Is(err, manifest.ErrBadSignature) {
		t.Errorf("publisher swapped: err = %v, want ErrBadSignature", err)
	}
}

func TestImport(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, b []byte) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := formattest.Safetensors([]formattest.Tensor{{Name: "w", DType: "F32", Shape: []uint64{4}}}, nil)
	write("config.json", []byte(`{"a":1}`))
	write("model.safetensors", st)
	write("sub/empty", nil)
	os.Symlink("config.json", filepath.Join(dir, "link.json"))
	m, err := manifest.Import(context.Background(), storetest.MemDAG(), dir, manifest.ImportOptions{Name: "acme/tiny"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 || m.Revision != "main" || len(m.Commit) != 40 {
		t.Fatalf("manifest %+v", m)
	}
	f, _ := m.Lookup("config.json")
	if f.BlobSHA1 != gitBlob([]byte(`{"a":1}`)) {
		t.Errorf("blob sha1 %s", f.BlobSHA1)
	}
	sf, _ := m.Lookup("model.safetensors")
	if sum := sha256.Sum256(st); sf.SHA256 != hex.EncodeToString(sum[:]) || sf.Header == nil || sf.Header.Format != "safetensors" {
		t.Errorf("safetensors entry %+v", sf)
	}

	write("bad.safetensors", []byte("\xff\xff\xff\xffgarbage"))
	_, err = manifest.Import(context.Background(), storetest.MemDAG(), dir, manifest.ImportOptions{Name: "acme/tiny"})
	if !errors.Is(err, manifest.ErrBadInput) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("malformed header: err = %v, want bad input mentioning --force", err)
	}
	if _, err := manifest.Import(context.Background(), storetest.MemDAG(), dir, manifest.ImportOptions{Name: "acme/tiny", Force: true}); err != nil {
		t.Errorf("--force: %v", err)
	}
	os.Remove(filepath.Join(dir, "bad.safetensors"))
	os.Symlink("../../etc/passwd", filepath.Join(dir, "escape"))
	if _, err := manifest.Import(context.Background(), storetest.MemDAG(), dir, manifest.ImportOptions{Name: "acme/tiny"}); !errors.Is(err, manifest.ErrBadInput) {
		t.Errorf("symlink leaving the tree: err = %v", err)
	}
}

// gitBlob is git's blob id, computed independently of the importer.
func gitBlob(b []byte) string {
	return sha1Hex(append([]byte("blob "+itoa(len(b))+"\x00"), b...))
}

func FuzzDecode(f *testing.F) {
	b, _ := sample().Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode(data)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil || string(again) != string(data) {
			t.Fatalf("decoded manifest does not re-encode to its bytes")
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	r := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Seq: 1, Expires: time.Now().Add(time.Hour)}
	r.Sign(sk)
	raw, _ := r.Encode()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		manifest.DecodeRecord(data, time.Now())
	})
}

func TestImportNoCopy(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	dir := t.TempDir()
	weights := make([]byte, 3<<20)
	for i := range weights {
		weights[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(dir, "w.bin"), weights, 0o644)
	m, err := manifest.Import(ctx, st.LocalDAG(), dir, manifest.ImportOptions{Name: "acme/nocopy", NoCopy: true})
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := st.DiskUsage(ctx); used > 1<<20 {
		t.Errorf("no-copy import used %d bytes of block store for a 3 MiB file", used)
	}
	f, _ := m.Lookup("w.bin")
	read := func() error {
		var out strings.Builder
		c, _ := cid.Decode(f.CID)
		nd, err := st.LocalDAG().Get(ctx, c)
		if err != nil {
			return err
		}
		r, err := uio.NewDagReader(ctx, nd, st.LocalDAG())
		if err != nil {
			return err
		}
		_, err = io.Copy(&out, r)
		if err == nil && out.String() != string(weights) {
			return errors.New("wrong bytes")
		}
		return err
	}
	if err := read(); err != nil {
		t.Fatalf("reading the referenced file: %v", err)
	}
	weights[1<<20+5] ^= 0xff // change the second leaf on disk
	os.WriteFile(filepath.Join(dir, "w.bin"), weights, 0o644)
	if err := read(); err == nil {
		t.Error("a file changed on disk was read without error")
	}
}

// TestImportInPlaceMatchesCopy checks that a file imported in place (its
// chunks recycled as it is read) gets the CID and sha256 a copying import
// gets, that its bytes read back, and that every leaf kept its checksum
// (a leaf served from it is not re-hashed).
func TestImportInPlaceMatchesCopy(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{0, 5, store.ChunkSize, 13*store.ChunkSize + 4093} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, "w.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			copied := importFile(t, dir, false)
			st := storetest.New(t)
			m, err := manifest.Import(ctx, st.LocalDAG(), dir, manifest.ImportOptions{Name: "acme/w", NoCopy: true})
			if err != nil {
				t.Fatal(err)
			}
			f, _ := m.Lookup("w.bin")
			if sum := sha256.Sum256(data); f.SHA256 != hex.EncodeToString(sum[:]) || f.CID != copied.CID {
				t.Fatalf("in place: sha256 %s, CID %s; copy: %s, %s", f.SHA256, f.CID, copied.SHA256, copied.CID)
			}
			c, _ := cid.Decode(f.CID)
			nd, err := st.LocalDAG().Get(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			r, err := uio.NewDagReader(ctx, nd, st.LocalDAG())
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("read back %d bytes (%v), want the file's %d", len(back), err, len(data))
			}
			serving := st.Serving()
			for _, l := range nd.Links() {
				before := st.UnhashedReads()
				if _, err := serving.Get(ctx, l.Cid); err != nil || st.UnhashedReads() == before {
					t.Fatalf("leaf %s: %v, served without re-hash: %v", l.Cid, err, st.UnhashedReads() > before)
				}
			}
		})
	}
}

// importFile imports dir (holding w.bin) into a fresh store and returns
// w.bin's manifest entry.
func importFile(t *testing.T, dir string, noCopy bool) manifest.File {
	t.Helper()
	st := storetest.New(t)
	m, err := manifest.Import(context.Background(), st.LocalDAG(), dir, manifest.ImportOptions{Name: "acme/w", NoCopy: noCopy})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.Lookup("w.bin")
	return f
}
