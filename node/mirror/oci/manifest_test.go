package oci

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseManifest(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	desc := func(mt string) string { return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":3}`, mt, d) }
	image := func(mt string) string {
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":%s,"layers":[%s,%s]}`, mt, desc(MediaTypeDockerConfig),
			desc("application/vnd.ollama.image.model"), desc("application/vnd.ollama.image.template"))
	}
	index := fmt.Sprintf(`{"schemaVersion":2,"manifests":[%s]}`, desc(ocispec.MediaTypeImageManifest))
	tests := []struct {
		why    string
		given  string
		data   string
		want   string // the media type, or "" for a refusal
		layers int
	}{
		{"Ollama's Docker manifest", MediaTypeDockerManifest, image(MediaTypeDockerManifest), MediaTypeDockerManifest, 2},
		{"the type from the manifest's own field", "", image(MediaTypeDockerManifest), MediaTypeDockerManifest, 2},
		{"an OCI manifest without a mediaType field", ocispec.MediaTypeImageManifest, image(""), ocispec.MediaTypeImageManifest, 2},
		{"nothing said: an image manifest", "", image(""), ocispec.MediaTypeImageManifest, 2},
		{"nothing said, manifests present: an index", "", index, ocispec.MediaTypeImageIndex, 0},
		{"served as one type, says another", ocispec.MediaTypeImageManifest, image(MediaTypeDockerManifest), "", 0},
		{"a type that is no manifest", "application/json", image(""), "", 0},
		{"schema version 1", "", strings.Replace(image(""), `"schemaVersion":2`, `"schemaVersion":1`, 1), "", 0},
		{"no config", "", `{"schemaVersion":2,"layers":[]}`, "", 0},
		{"an index with layers", ocispec.MediaTypeImageIndex, `{"schemaVersion":2,"manifests":[],"layers":[]}`, "", 0},
		{"a sha512 layer", "", strings.Replace(image(""), d, "sha512:"+strings.Repeat("ab", 64), 1), "", 0},
		{"a negative size", "", strings.Replace(image(""), `"size":3`, `"size":-1`, 1), "", 0},
		{"one digest listed with two sizes", "", strings.Replace(image(""), `"size":3`, `"size":4`, 1), "", 0},
		{"a layer without a media type", "", strings.Replace(image(""), `"mediaType":"application/vnd.ollama.image.model",`, "", 1), "", 0},
		{"not JSON", "", "GGUF", "", 0},
		{"JSON but not an object", "", "[]", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			p, err := ParseManifest(tt.given, []byte(tt.data))
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrInvalid) {
					t.Fatalf("accepted (%v): %+v", err, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MediaType != tt.want || len(p.Layers) != tt.layers {
				t.Errorf("type %q with %d layers, want %q with %d", p.MediaType, len(p.Layers), tt.want, tt.layers)
			}
		})
	}
}

func TestParseManifestLimits(t *testing.T) {
	big := append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("a"), MaxManifestBytes)...)
	if _, err := ParseManifest("", append(big, `"}`...)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a manifest over %d bytes: %v", MaxManifestBytes, err)
	}
	layer := fmt.Sprintf(`{"mediaType":"x","digest":"sha256:%s","size":1}`, strings.Repeat("0", 64))
	many := `{"schemaVersion":2,"config":` + layer + `,"layers":[` + strings.Repeat(layer+",", MaxDescriptors) + layer + `]}`
	if _, err := ParseManifest("", []byte(many)); !errors.Is(err, ErrInvalid) {
		t.Errorf("%d layers: %v", MaxDescriptors+1, err)
	}
}

func TestBlobs(t *testing.T) {
	f := newFixture(t)
	m := f.b.repos["library/tiny"].manifests[f.ollamaDigest]
	p, err := ParseManifest(m.MediaType, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	blobs := p.Blobs()
	if len(blobs) != 4 || blobs[0].MediaType != MediaTypeDockerConfig || blobs[1].Digest != f.ggufDigest {
		t.Errorf("blobs %+v: want the config first, then the GGUF layer", blobs)
	}
}

// FuzzParseManifest: no manifest bytes make the parser panic, and whatever
// it accepts has only valid sha256 descriptors within the limits.
func FuzzParseManifest(f *testing.F) {
	fx := newFixture(f)
	for _, r := range fx.b.repos {
		for _, m := range r.manifests {
			f.Add(m.MediaType, m.Data)
		}
	}
	f.Add("", []byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add(MediaTypeDockerManifestList, []byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:x"}]}`))
	f.Fuzz(func(t *testing.T, mediaType string, data []byte) {
		p, err := ParseManifest(mediaType, data)
		if err != nil {
			return
		}
		if !IsManifestType(p.MediaType) || (mediaType != "" && p.MediaType != mediaType) {
			t.Fatalf("type %q accepted for %q", p.MediaType, mediaType)
		}
		all := append(append([]ocispec.Descriptor{}, p.Layers...), p.Manifests...)
		if p.Config != nil {
			all = append(all, *p.Config)
		}
		if IsIndex(p.MediaType) != (p.Config == nil) || len(all) > MaxDescriptors+1 {
			t.Fatalf("inconsistent: %+v", p)
		}
		for _, d := range all {
			if _, err := ParseDigest(string(d.Digest)); err != nil || d.Size < 0 || d.MediaType == "" {
				t.Fatalf("descriptor %+v accepted", d)
			}
		}
	})
}
