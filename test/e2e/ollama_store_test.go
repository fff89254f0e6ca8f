package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/store/ollama"
	"github.com/allmende/allmende/test/harness"
	"github.com/allmende/allmende/test/ocitools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ollamaWeightsSize is the size of the weights layer of the test models:
// larger than the store's chunk, so a copy would show in the store.
const ollamaWeightsSize = 4 << 20

// writeOllamaModel writes an Ollama-shaped model (config, a weights layer
// of random bytes seeded by seed, template and license) as n into the
// Ollama store s.
func writeOllamaModel(t *testing.T, s *ollama.Store, n ollama.Name, seed uint64) {
	t.Helper()
	weights := filepath.Join(t.TempDir(), "w")
	harness.WriteRandomFile(t, weights, ollamaWeightsSize, seed)
	w, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	desc := func(mt string, data []byte) ocispec.Descriptor {
		d := digest.SHA256.FromBytes(data)
		blobs[d] = data
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	m, err := json.Marshal(ollama.Manifest{SchemaVersion: 2, MediaType: ollama.MediaTypeManifest,
		Config: desc(ollama.MediaTypeConfig, []byte(`{"model_format":"gguf","model_family":"llama","model_type":"0M","file_type":"F32","rootfs":{"type":"layers","diff_ids":[]}}`)),
		Layers: []ocispec.Descriptor{desc(ollama.MediaTypeModel, w), desc(ollama.MediaTypeTemplate, []byte("{{ .Prompt }}")),
			desc(ollama.MediaTypeLicense, []byte("license of "+n.String()+"\n"))}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[d.Digest])), nil
	}
	if err := s.WriteModel(context.Background(), n, m, open); err != nil {
		t.Fatal(err)
	}
}

// assertSameOllamaModel checks that two Ollama stores hold model n with
// the same manifest bytes and blobs.
func assertSameOllamaModel(t *testing.T, want, got *ollama.Store, n ollama.Name) {
	t.Helper()
	a, err := want.Read(n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.Read(n)
	if err != nil {
		t.Fatalf("the written store lacks %s: %v", n, err)
	}
	if !bytes.Equal(a.Manifest, b.Manifest) {
		t.Errorf("%s: manifests differ:\n%s\n%s", n, a.Manifest, b.Manifest)
	}
	for i, blob := range a.Blobs {
		if ok, err := harness.FilesEqual(blob.Path, b.Blobs[i].Path); !ok || err != nil {
			t.Errorf("%s: blob %s differs (%v)", n, blob.Digest, err)
		}
	}
}

// TestOllamaStoreImportAndFetch: `import --ollama` shares the models of an
// Ollama store without copying their blobs; another node fetches one by
// its Ollama name into an empty Ollama store (and one into a store that
// already holds some of its blobs), and the stores then hold the same
// manifests and blobs; Ollama lists what was written.
func TestOllamaStoreImportAndFetch(t *testing.T) {
	srcDir := filepath.Join(t.TempDir(), "models")
	src, err := ollama.Create(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tiny := ollama.Name{Host: ollama.DefaultHost, Namespace: "library", Model: "tiny", Tag: "latest"}
	mini := ollama.Name{Host: ollama.DefaultHost, Namespace: "alice", Model: "mini", Tag: "q4"}
	writeOllamaModel(t, src, tiny, 1)
	writeOllamaModel(t, src, mini, 2)

	a := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	a.Start()
	out := a.MustRun("import", "--ollama", srcDir)
	if cids := strings.Fields(out); len(cids) != 2 {
		t.Fatalf("import --ollama printed %q, want two manifest CIDs", out)
	}
	if blocks, copies := a.StoreBytes(); blocks+copies >= ollamaWeightsSize {
		t.Errorf("the store holds %d bytes after importing two models of %d-byte weights: blobs were copied", blocks+copies, ollamaWeightsSize)
	}
	for _, ref := range []string{"library/tiny@latest", "alice/mini@q4"} {
		a.MustRun("publish", ref)
	}
	key := strings.TrimSpace(a.MustRun("trust", "key"))

	b := harness.NewNode(t)
	b.Start()
	b.MustRun("trust", "add", key, "--names", "library/*,alice/*")
	b.MustRun("connect", a.TCPAddr())
	dstDir := filepath.Join(t.TempDir(), "ollama")
	b.MustRun("fetch", "ollama:tiny", "--ollama-store", dstDir)
	b.MustRun("fetch", "ollama:alice/mini:q4", "--ollama-store", dstDir)
	dst, err := ollama.Open(dstDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, n := range []ollama.Name{tiny, mini} {
		assertSameOllamaModel(t, src, dst, n)
	}

	t.Run("a name nobody published is refused, nothing written", func(t *testing.T) {
		r := b.Run("fetch", "ollama:none:latest", "--ollama-store", dstDir)
		if r.Code != 1 {
			t.Errorf("exit %d, want 1: %s", r.Code, r.Stderr)
		}
		if _, err := dst.Read(ollama.Name{Host: ollama.DefaultHost, Namespace: "library", Model: "none", Tag: "latest"}); err == nil {
			t.Error("a manifest was written for a model not fetched")
		}
	})

	t.Run("bad usage is exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"fetch", "ollama:../x", "--ollama-store", dstDir},
			{"fetch", "ollama:tiny", "-o", filepath.Join(t.TempDir(), "x")},
			{"import", "--ollama", filepath.Join(t.TempDir(), "missing")},
		} {
			if r := b.Run(args...); r.Code != 2 {
				t.Errorf("%v: exit %d, want 2: %s", args, r.Code, r.Stderr)
			}
		}
	})

	t.Run("the mirror serves an imported model to OCI clients", func(t *testing.T) {
		crane := ocitools.Tool(t, "crane")
		ref := strings.TrimPrefix(a.MirrorURL(t), "http://") + "/alice/mini:q4"
		m, err := src.Read(mini)
		if err != nil {
			t.Fatal(err)
		}
		if got := runTool(t, ocitools.ClientEnv(t), crane, "manifest", "--insecure", ref); got != string(m.Manifest) {
			t.Errorf("crane manifest %s:\n%s\nwant\n%s", ref, got, m.Manifest)
		}
		layout := filepath.Join(t.TempDir(), "layout")
		runTool(t, ocitools.ClientEnv(t), crane, "pull", "--insecure", "--format", "oci", ref, layout)
		for _, blob := range m.Blobs {
			if ok, err := harness.FilesEqual(blob.Path, filepath.Join(layout, "blobs", "sha256", blob.Digest.Encoded())); !ok || err != nil {
				t.Errorf("crane pull: blob %s differs (%v)", blob.Digest, err)
			}
		}
	})

	t.Run("ollama lists the models written", func(t *testing.T) {
		bin := ocitools.Tool(t, "ollama")
		env := ocitools.OllamaServe(t, bin, dstDir)
		list := runTool(t, env, bin, "list")
		t.Logf("ollama list:\n%s", list)
		for _, want := range []string{"tiny:latest", "alice/mini:q4"} {
			if !strings.Contains(list, want) {
				t.Errorf("ollama list does not show %s", want)
			}
		}
	})
}
