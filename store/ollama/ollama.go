// Package ollama owns Ollama's local model store on disk ($OLLAMA_MODELS,
// default ~/.ollama/models): manifests/<host>/<namespace>/<model>/<tag>
// holding a model's manifest (Docker image manifest v2 with Ollama's layer
// types), and blobs/sha256-<hex> holding its config and layers. It reads a
// store into models (for an import that copies no blob) and writes a model
// into one, atomically and verified, so that `ollama list` shows it.
//
// Every name, digest and path is checked before it touches the disk; all
// access goes through an os.Root on the store, and no symlink inside it is
// followed.
package ollama

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of an Ollama model's manifest, config and layers, as
// Ollama's registry serves them.
const (
	// MediaTypeManifest is the type of every Ollama manifest.
	MediaTypeManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// MediaTypeConfig is the config blob: JSON naming format, family, size.
	MediaTypeConfig = "application/vnd.docker.container.image.v1+json"
	// MediaTypeModel is the weights, a GGUF file.
	MediaTypeModel = "application/vnd.ollama.image.model"
	// MediaTypeProjector is a multimodal projector, a GGUF file.
	MediaTypeProjector = "application/vnd.ollama.image.projector"
	// MediaTypeAdapter is a LoRA adapter, a GGUF file.
	MediaTypeAdapter = "application/vnd.ollama.image.adapter"
	// MediaTypeTemplate is the prompt template (Go text/template).
	MediaTypeTemplate = "application/vnd.ollama.image.template"
	// MediaTypeSystem is the system prompt.
	MediaTypeSystem = "application/vnd.ollama.image.system"
	// MediaTypeParams is the default parameters, JSON.
	MediaTypeParams = "application/vnd.ollama.image.params"
	// MediaTypeMessages is example messages, JSON.
	MediaTypeMessages = "application/vnd.ollama.image.messages"
	// MediaTypeLicense is a license text.
	MediaTypeLicense = "application/vnd.ollama.image.license"
	// MediaTypePrompt is the template of old models.
	MediaTypePrompt = "application/vnd.ollama.image.prompt"
	// MediaTypeTensor is one tensor of a safetensors-based model.
	MediaTypeTensor = "application/vnd.ollama.image.tensor"
)

// The defaults a short name is completed with, as Ollama does.
const (
	DefaultHost      = "registry.ollama.ai"
	DefaultNamespace = "library"
	DefaultTag       = "latest"
)

// Limits on names and manifests, Ollama's own where it has them.
const (
	// MaxPartLength bounds a namespace, model or tag.
	MaxPartLength = 80
	// MaxHostLength bounds a host (with its port).
	MaxHostLength = 350
	// MaxManifestBytes bounds a manifest file.
	MaxManifestBytes = 4 << 20
	// MaxLayers bounds the layers of a manifest.
	MaxLayers = 1 << 16
	// maxMediaTypeLength bounds a layer's media type.
	maxMediaTypeLength = 255
)

// Errors of the package.
var (
	// ErrInvalid: a name, digest or manifest breaks the rules; nothing was
	// read or written.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the store has no such model or blob.
	ErrNotFound = errors.New("not in the Ollama store")
	// ErrMismatch: bytes do not match the digest or size that names them.
	ErrMismatch = errors.New("content does not match its digest")
)

// Name is a fully qualified Ollama model name.
type Name struct {
	Host, Namespace, Model, Tag string
}

// ParseName reads [host/][namespace/]model[:tag] (no scheme), completing
// what is left out with DefaultHost, DefaultNamespace and DefaultTag, and
// checks each part.
func ParseName(s string) (Name, error) {
	if strings.Contains(s, "://") {
		return Name{}, fmt.Errorf("%w model name %q: no scheme, please", ErrInvalid, s)
	}
	n := Name{Host: DefaultHost, Namespace: DefaultNamespace, Tag: DefaultTag}
	rest := s
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		rest, n.Tag = s[:i], s[i+1:]
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 1:
		n.Model = parts[0]
	case 2:
		n.Namespace, n.Model = parts[0], parts[1]
	case 3:
		n.Host, n.Namespace, n.Model = parts[0], parts[1], parts[2]
	default:
		return Name{}, fmt.Errorf("%w model name %q: want [host/][namespace/]model[:tag]", ErrInvalid, s)
	}
	return n, n.Validate()
}

// Validate checks each part with Ollama's rules: a letter, digit or '_'
// first, then letters, digits, '_', '-' and '.' (not in a namespace), and
// ':' in the host only; at most MaxPartLength characters (MaxHostLength
// for the host). No part can be empty, "." or "..", or hold a slash.
func (n Name) Validate() error {
	for _, p := range []struct {
		what, s string
		max     int
		extra   string
	}{
		{"host", n.Host, MaxHostLength, ".-:"},
		{"namespace", n.Namespace, MaxPartLength, "-"},
		{"model", n.Model, MaxPartLength, ".-"},
		{"tag", n.Tag, MaxPartLength, ".-"},
	} {
		if !validPart(p.s, p.max, p.extra) {
			return fmt.Errorf("%w model name: %s %q", ErrInvalid, p.what, clip(p.s))
		}
	}
	return nil
}

func validPart(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		word := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if !word && (i == 0 || strings.IndexByte(extra, c) < 0) {
			return false
		}
	}
	return true
}

// String is host/namespace/model:tag.
func (n Name) String() string {
	return n.Host + "/" + n.Namespace + "/" + n.Model + ":" + n.Tag
}

// Short is the name as `ollama list` shows it: without the default host,
// and without the default namespace when the host is the default.
func (n Name) Short() string {
	switch {
	case !strings.EqualFold(n.Host, DefaultHost):
		return n.String()
	case !strings.EqualFold(n.Namespace, DefaultNamespace):
		return n.Namespace + "/" + n.Model + ":" + n.Tag
	}
	return n.Model + ":" + n.Tag
}

// Repository is namespace/model, the repository a registry serves the
// model under (/v2/<namespace>/<model>/manifests/<tag>).
func (n Name) Repository() string { return n.Namespace + "/" + n.Model }

// manifestPath is the slash-separated path of n's manifest in a store.
func (n Name) manifestPath() string {
	return manifestsDir + "/" + n.Host + "/" + n.Namespace + "/" + n.Model + "/" + n.Tag
}

// Manifest is an Ollama model's manifest.
type Manifest struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
}

// ParseManifest checks a manifest's bytes: at most MaxManifestBytes and
// MaxLayers, schema version 2, Docker's or OCI's image manifest type (an
// OCI manifest may leave it out), every layer a sha256 digest with a size
// of at least 0 and a media type. The config may be absent (empty), as
// Ollama allows.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w manifest: %d bytes, more than %d", ErrInvalid, len(data), MaxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w manifest: %w", ErrInvalid, err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w manifest: schemaVersion %d, want 2", ErrInvalid, m.SchemaVersion)
	}
	if m.MediaType != MediaTypeManifest && m.MediaType != ocispec.MediaTypeImageManifest && m.MediaType != "" {
		return nil, fmt.Errorf("%w manifest: media type %q is no image manifest", ErrInvalid, clip(m.MediaType))
	}
	if len(m.Layers) > MaxLayers {
		return nil, fmt.Errorf("%w manifest: %d layers, more than %d", ErrInvalid, len(m.Layers), MaxLayers)
	}
	sizes := map[digest.Digest]int64{}
	for _, d := range m.all() {
		if err := checkDescriptor(d); err != nil {
			return nil, err
		}
		if s, ok := sizes[d.Digest]; ok && s != d.Size {
			return nil, fmt.Errorf("%w manifest: blob %s is listed with sizes %d and %d", ErrInvalid, d.Digest, s, d.Size)
		}
		sizes[d.Digest] = d.Size
	}
	return &m, nil
}

// all is the config (if any) and the layers, repeats included.
func (m *Manifest) all() []ocispec.Descriptor {
	if m.Config.Digest == "" && m.Config.Size == 0 && m.Config.MediaType == "" {
		return m.Layers
	}
	return append([]ocispec.Descriptor{m.Config}, m.Layers...)
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := CheckDigest(d.Digest); err != nil {
		return fmt.Errorf("manifest layer: %w", err)
	}
	if d.Size < 0 || d.MediaType == "" || len(d.MediaType) > maxMediaTypeLength {
		return fmt.Errorf("%w manifest layer %s: size %d, media type %q", ErrInvalid, d.Digest, d.Size, clip(d.MediaType))
	}
	return nil
}

// Blobs returns the blobs the manifest refers to: the config (if any)
// first, then the layers, each digest once.
func (m *Manifest) Blobs() []ocispec.Descriptor {
	seen := map[digest.Digest]bool{}
	var out []ocispec.Descriptor
	for _, d := range m.all() {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	return out
}

// Size is the sum of the sizes of the model's blobs, as `ollama list`
// shows it.
func (m *Manifest) Size() int64 {
	var n int64
	for _, d := range m.Blobs() {
		n += d.Size
	}
	return n
}

// ModelLayer returns the GGUF weights layer, if the model has one.
func (m *Manifest) ModelLayer() (ocispec.Descriptor, bool) {
	for _, d := range m.Layers {
		if d.MediaType == MediaTypeModel {
			return d, true
		}
	}
	return ocispec.Descriptor{}, false
}

// LayerKind names what a layer holds, from its media type: "model",
// "projector", "template", ... ("config" for the config), or "" for a
// type that is not Ollama's.
func LayerKind(mediaType string) string {
	if mediaType == MediaTypeConfig {
		return "config"
	}
	kind, ok := strings.CutPrefix(mediaType, "application/vnd.ollama.image.")
	if !ok || kind == "" || strings.ContainsAny(kind, "/+;") {
		return ""
	}
	return kind
}

// CheckDigest accepts only sha256 digests: "sha256:" and 64 lower-case hex
// digits.
func CheckDigest(d digest.Digest) error {
	hex, ok := strings.CutPrefix(string(d), "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("%w digest %q: want sha256: and 64 lower-case hex digits", ErrInvalid, clip(string(d)))
	}
	return nil
}

// maxQuoted bounds how much of a bad input an error message repeats.
const maxQuoted = 80

func clip(s string) string {
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "…"
	}
	return s
}
