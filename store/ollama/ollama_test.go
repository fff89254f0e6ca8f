package ollama

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		why  string
		in   string
		want Name
		ok   bool
	}{
		{"a bare model gets the defaults", "llama3.2", Name{DefaultHost, DefaultNamespace, "llama3.2", DefaultTag}, true},
		{"a tag", "llama3.2:1b", Name{DefaultHost, DefaultNamespace, "llama3.2", "1b"}, true},
		{"a namespace", "alice/tiny:q4_K_M", Name{DefaultHost, "alice", "tiny", "q4_K_M"}, true},
		{"a mirror with a port, as ollama pull --insecure names it", "192.168.1.5:8080/library/tiny:latest", Name{"192.168.1.5:8080", "library", "tiny", "latest"}, true},
		{"a host with a port and no tag", "localhost:5000/ns/m", Name{"localhost:5000", "ns", "m", DefaultTag}, true},
		{"upper case, as Ollama allows", "Alice/Tiny:Q4", Name{DefaultHost, "Alice", "Tiny", "Q4"}, true},
		{"too many parts", "a/b/c/d", Name{}, false},
		{"a scheme", "https://registry.ollama.ai/library/x", Name{}, false},
		{"dot-dot as a model", "library/..:x", Name{}, false},
		{"a dot in a namespace", "a.b/m", Name{}, false},
		{"a leading dash", "-m", Name{}, false},
		{"an empty tag", "m:", Name{}, false},
		{"an empty model", "library/:x", Name{}, false},
		{"a colon in a tag", "m:a:b", Name{}, false},
		{"a backslash", `m\x`, Name{}, false},
		{"a long model", strings.Repeat("m", MaxPartLength+1), Name{}, false},
		{"the longest model", strings.Repeat("m", MaxPartLength), Name{DefaultHost, DefaultNamespace, strings.Repeat("m", MaxPartLength), DefaultTag}, true},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, err := ParseName(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("ParseName(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestNameForms(t *testing.T) {
	tests := []struct{ in, short, repo string }{
		{"llama3.2:1b", "llama3.2:1b", "library/llama3.2"},
		{"alice/tiny", "alice/tiny:latest", "alice/tiny"},
		{"127.0.0.1:9/library/tiny:q4", "127.0.0.1:9/library/tiny:q4", "library/tiny"},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if n.Short() != tt.short || n.Repository() != tt.repo {
			t.Errorf("%q: Short %q, Repository %q; want %q, %q", tt.in, n.Short(), n.Repository(), tt.short, tt.repo)
		}
	}
}

func TestParseManifest(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	layer := func(mt string) string { return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":3}`, mt, d) }
	doc := func(mt, config, layers string) string {
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":%s,"layers":[%s]}`, mt, config, layers)
	}
	tests := []struct {
		why    string
		data   string
		ok     bool
		blobs  int
		hasGGF bool
	}{
		{"Ollama's manifest", doc(MediaTypeManifest, layer(MediaTypeConfig), layer(MediaTypeModel)+","+layer(MediaTypeTemplate)), true, 1, true},
		{"an OCI manifest (oras pushes these)", doc("application/vnd.oci.image.manifest.v1+json", layer(MediaTypeConfig), layer(MediaTypeModel)), true, 1, true},
		{"no config, as Ollama allows", doc(MediaTypeManifest, "{}", layer(MediaTypeModel)), true, 1, true},
		{"no weights (an adapter-only model)", doc(MediaTypeManifest, layer(MediaTypeConfig), layer(MediaTypeAdapter)), true, 1, false},
		{"an index is no model", doc("application/vnd.oci.image.index.v1+json", layer(MediaTypeConfig), ""), false, 0, false},
		{"a layer digest that could walk out of blobs/", doc(MediaTypeManifest, layer(MediaTypeConfig), strings.Replace(layer(MediaTypeModel), d, "sha256:../../x", 1)), false, 0, false},
		{"Ollama's file spelling as a digest", doc(MediaTypeManifest, layer(MediaTypeConfig), strings.Replace(layer(MediaTypeModel), "sha256:", "sha256-", 1)), false, 0, false},
		{"one digest listed with two sizes", doc(MediaTypeManifest, layer(MediaTypeConfig), strings.Replace(layer(MediaTypeModel), `"size":3`, `"size":4`, 1)), false, 0, false},
		{"a negative size", doc(MediaTypeManifest, layer(MediaTypeConfig), strings.Replace(layer(MediaTypeModel), `"size":3`, `"size":-3`, 1)), false, 0, false},
		{"schema version 1", strings.Replace(doc(MediaTypeManifest, layer(MediaTypeConfig), ""), `"schemaVersion":2`, `"schemaVersion":1`, 1), false, 0, false},
		{"not JSON", "GGUF", false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.data))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				return
			}
			if len(m.Blobs()) != tt.blobs {
				t.Errorf("%d blobs, want %d (one digest, counted once)", len(m.Blobs()), tt.blobs)
			}
			if _, ok := m.ModelLayer(); ok != tt.hasGGF {
				t.Errorf("model layer found: %v, want %v", ok, tt.hasGGF)
			}
		})
	}
}

func TestLayerKind(t *testing.T) {
	for mt, want := range map[string]string{
		MediaTypeModel: "model", MediaTypeTemplate: "template", MediaTypeParams: "params", MediaTypeLicense: "license",
		MediaTypeSystem: "system", MediaTypeProjector: "projector", MediaTypeAdapter: "adapter", MediaTypeConfig: "config",
		"application/vnd.oci.image.layer.v1.tar": "", "application/vnd.ollama.image.": "", "application/vnd.ollama.image.x+json": "",
	} {
		if got := LayerKind(mt); got != want {
			t.Errorf("LayerKind(%q) = %q, want %q", mt, got, want)
		}
	}
}

// FuzzParseName: no input panics, and an accepted name maps to exactly the
// four path parts below manifests/, none of which can leave it.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"llama3.2", "a/b:c", "h:1/n/m:t", "../x", "a/b/c/d", "m:..", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		p := n.manifestPath()
		parts := strings.Split(p, "/")
		if len(parts) != 1+nameDepth || path.Clean(p) != p {
			t.Fatalf("%q → path %q", s, p)
		}
		for _, part := range parts {
			if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\\\x00") {
				t.Fatalf("%q → part %q of %q", s, part, p)
			}
		}
		if again, err := ParseName(n.String()); err != nil || again != n {
			t.Fatalf("%q → %+v, which reads back as %+v, %v", s, n, again, err)
		}
	})
}

// FuzzParseManifest: no manifest panics the parser, and every blob of an
// accepted one has a blob path inside blobs/.
func FuzzParseManifest(f *testing.F) {
	m, _ := testModel(f, "seed")
	f.Add(m)
	f.Add([]byte(`{"schemaVersion":2,"config":{},"layers":[{"digest":"sha256:x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, d := range m.Blobs() {
			b := blobName(d.Digest)
			if path.Clean(b) != b || path.Dir(b) != blobsDir || !strings.HasPrefix(path.Base(b), blobPrefix) || len(path.Base(b)) != len(blobPrefix)+64 {
				t.Fatalf("blob %q → %q", d.Digest, b)
			}
		}
	})
}
