package ollama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testModel returns an Ollama-shaped model (config, a small GGUF, a
// template, params) whose weights differ by seed: its manifest and blobs.
func testModel(t testing.TB, seed string) ([]byte, map[digest.Digest][]byte) {
	blobs := map[digest.Digest][]byte{}
	desc := func(mt string, data []byte) ocispec.Descriptor {
		d := digest.SHA256.FromBytes(data)
		blobs[d] = data
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	gguf := append([]byte("GGUF\x03\x00\x00\x00"), bytes.Repeat([]byte(seed), 500)...)
	m, err := json.Marshal(Manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        desc(MediaTypeConfig, []byte(`{"model_format":"gguf","model_family":"llama","model_type":"1M","file_type":"F32"}`)),
		Layers: []ocispec.Descriptor{
			desc(MediaTypeModel, gguf),
			desc(MediaTypeTemplate, []byte("{{ .Prompt }}")),
			desc(MediaTypeParams, []byte(`{"stop":["<|end|>"]}`)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, blobs
}

func opener(blobs map[digest.Digest][]byte) BlobOpener {
	return func(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		b, ok := blobs[d.Digest]
		if !ok {
			return nil, ErrNotFound
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

func newStore(t *testing.T) *Store {
	s, err := Create(filepath.Join(t.TempDir(), "models"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustName(t *testing.T, s string) Name {
	n, err := ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// noTemps fails if a write left a temporary file behind.
func noTemps(t *testing.T, s *Store) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), blobsDir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m1, b1 := testModel(t, "one")
	m2, b2 := testModel(t, "two")
	n1, n2 := mustName(t, "tiny:latest"), mustName(t, "127.0.0.1:8080/library/tiny:q4")
	if err := s.WriteModel(ctx, n1, m1, opener(b1)); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteModel(ctx, n2, m2, opener(b2)); err != nil {
		t.Fatal(err)
	}
	// The layout Ollama reads.
	for _, p := range []string{"manifests/registry.ollama.ai/library/tiny/latest", "manifests/127.0.0.1:8080/library/tiny/q4"} {
		if st, err := os.Lstat(filepath.Join(s.Dir(), p)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %v", p, err)
		}
	}
	for d, want := range b1 {
		got, err := os.ReadFile(filepath.Join(s.Dir(), "blobs", "sha256-"+d.Encoded()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("blob %s: %v", d, err)
		}
	}
	noTemps(t, s)

	models, err := s.List()
	if err != nil || len(models) != 2 {
		t.Fatalf("List: %d models, %v", len(models), err)
	}
	for _, m := range models {
		want, blobs := m1, b1
		if m.Name == n2 {
			want, blobs = m2, b2
		}
		if !bytes.Equal(m.Manifest, want) || m.Digest != digest.SHA256.FromBytes(want) {
			t.Errorf("%s: manifest differs", m.Name)
		}
		if len(m.Blobs) != 4 || m.Blobs[0].MediaType != MediaTypeConfig {
			t.Errorf("%s: blobs %+v", m.Name, m.Blobs)
		}
		for _, b := range m.Blobs {
			got, err := os.ReadFile(b.Path)
			if err != nil || !bytes.Equal(got, blobs[b.Digest]) {
				t.Errorf("%s: blob %s at %s: %v", m.Name, b.Digest, b.Path, err)
			}
		}
	}
	// Shared blobs (config, template, params) are written once; rewriting
	// a model needs no blob at all.
	if err := s.WriteModel(ctx, n1, m1, opener(nil)); err != nil {
		t.Errorf("rewriting a model whose blobs are all there: %v", err)
	}
	if _, err := s.Read(mustName(t, "tiny:7b")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing tag: %v", err)
	}
}

func TestWriteBlobRefusesWrongBytes(t *testing.T) {
	s := newStore(t)
	good := []byte("the weights")
	d := digest.SHA256.FromBytes(good)
	tests := []struct {
		why  string
		data []byte
		size int64
	}{
		{"one byte changed", []byte("the weighTs"), int64(len(good))},
		{"short", good[:4], int64(len(good))},
		{"long", append(bytes.Clone(good), '!'), int64(len(good))},
		{"the right bytes under another size", good, int64(len(good)) + 1},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			if err := s.WriteBlob(d, tt.size, bytes.NewReader(tt.data)); !errors.Is(err, ErrMismatch) {
				t.Errorf("err = %v, want ErrMismatch", err)
			}
			if _, err := os.Lstat(filepath.Join(s.Dir(), "blobs", "sha256-"+d.Encoded())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a blob file exists after a refused write: %v", err)
			}
			noTemps(t, s)
		})
	}
	if err := s.WriteBlob("sha256:../../../etc/passwd", 1, bytes.NewReader(nil)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a digest that walks out: %v", err)
	}
}

func TestWriteManifestNeedsItsBlobs(t *testing.T) {
	s := newStore(t)
	m, blobs := testModel(t, "x")
	p, _ := ParseManifest(m)
	model, _ := p.ModelLayer()
	partial := map[digest.Digest][]byte{}
	for d, b := range blobs {
		if d != model.Digest {
			partial[d] = b
		}
	}
	n := mustName(t, "tiny")
	if err := s.WriteModel(context.Background(), n, m, opener(partial)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound for the missing weights", err)
	}
	if _, err := s.Read(n); !errors.Is(err, ErrNotFound) {
		t.Errorf("a manifest was written without its blobs: %v", err)
	}
	if models, err := s.List(); len(models) != 0 || err != nil {
		t.Errorf("List: %d models, %v", len(models), err)
	}
}

func TestWriteModelReplacesABadBlob(t *testing.T) {
	s := newStore(t)
	m, blobs := testModel(t, "x")
	p, _ := ParseManifest(m)
	model, _ := p.ModelLayer()
	bad := bytes.Clone(blobs[model.Digest])
	bad[10] ^= 0xff
	path, _ := s.BlobPath(model.Digest)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasBlob(model.Digest, model.Size); ok || err != nil {
		t.Fatalf("HasBlob of a rotten blob of the right size: %v, %v", ok, err)
	}
	if err := s.WriteModel(context.Background(), mustName(t, "tiny"), m, opener(blobs)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, blobs[model.Digest]) {
		t.Error("the rotten blob was kept")
	}
}

// TestSymlinksAreNotFollowed plants links where a store has files and
// directories: reading refuses them, writing replaces a link by a file and
// never touches what it points to.
func TestSymlinksAreNotFollowed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	outside := t.TempDir()
	m, blobs := testModel(t, "x")
	p, _ := ParseManifest(m)
	model, _ := p.ModelLayer()

	// A host directory that is a link to a manifest tree outside.
	other := newStoreAt(t, filepath.Join(outside, "elsewhere"))
	if err := other.WriteModel(ctx, mustName(t, "evil/m"), m, opener(blobs)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other.Dir(), "manifests", DefaultHost), filepath.Join(s.Dir(), "manifests", DefaultHost)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(mustName(t, "evil/m")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read through a linked host directory: %v", err)
	}
	if models, err := s.List(); len(models) != 0 || err == nil {
		t.Errorf("List through a linked host directory: %d models, %v", len(models), err)
	}
	os.Remove(filepath.Join(s.Dir(), "manifests", DefaultHost))

	// A blob that is a link to a file outside.
	target := filepath.Join(outside, "precious")
	if err := os.WriteFile(target, blobs[model.Digest], 0o644); err != nil {
		t.Fatal(err)
	}
	blob, _ := s.BlobPath(model.Digest)
	if err := os.Symlink(target, blob); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasBlob(model.Digest, model.Size); ok {
		t.Error("a linked blob counts as held")
	}
	if err := s.WriteModel(ctx, mustName(t, "tiny"), m, opener(blobs)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(blob); err != nil || !st.Mode().IsRegular() {
		t.Errorf("the link was not replaced by a file: %v", err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, blobs[model.Digest]) {
		t.Error("the file the link pointed to was changed")
	}

	// A manifest file that is a link.
	mf := filepath.Join(s.Dir(), "manifests", DefaultHost, DefaultNamespace, "tiny", "linked")
	if err := os.Symlink(filepath.Join(s.Dir(), "manifests", DefaultHost, DefaultNamespace, "tiny", "latest"), mf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(mustName(t, "tiny:linked")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read of a linked manifest: %v", err)
	}
	models, err := s.List()
	if len(models) != 1 || models[0].Name.Tag != "latest" || err == nil {
		t.Errorf("List with a linked manifest: %d models, %v", len(models), err)
	}
}

func newStoreAt(t *testing.T, dir string) *Store {
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestListReportsAndSkips: a store with one good model and several broken
// entries lists the good one and names each problem.
func TestListReportsAndSkips(t *testing.T) {
	s := newStore(t)
	m, blobs := testModel(t, "x")
	if err := s.WriteModel(context.Background(), mustName(t, "good"), m, opener(blobs)); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(s.Dir(), "manifests", DefaultHost, DefaultNamespace)
	write := func(rel string, data []byte) {
		p := filepath.Join(lib, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing, _ := testModel(t, "nobody has these weights")
	write("broken/latest", []byte("not json"))
	write("missing/latest", missing)
	write("bad name!/latest", m)
	write("toplevel-file", m)
	write("deep/a/b", m)
	write("good/.tmp-hidden", m) // dot files are Ollama's or editors' business, not a problem
	models, err := s.List()
	if len(models) != 1 || models[0].Name.Model != "good" {
		t.Fatalf("List: %d models", len(models))
	}
	for _, want := range []string{"broken/latest", "missing/latest", "bad name!/latest", "toplevel-file", "deep/a"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the problem with %s is not reported: %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), ".tmp-hidden") {
		t.Errorf("a dot file is reported: %v", err)
	}
}

func TestOpenEmptyStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if models, err := s.List(); len(models) != 0 || err != nil {
		t.Errorf("an empty folder lists %d models, %v", len(models), err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Open of a missing folder succeeded")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(ModelsEnv, "/srv/ollama")
	if d, err := DefaultDir(); d != "/srv/ollama" || err != nil {
		t.Errorf("with %s set: %q, %v", ModelsEnv, d, err)
	}
	t.Setenv(ModelsEnv, "")
	t.Setenv("HOME", "/home/u")
	if d, err := DefaultDir(); d != "/home/u/.ollama/models" || err != nil {
		t.Errorf("without: %q, %v", d, err)
	}
}
