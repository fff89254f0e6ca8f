package oci

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits on descriptors inside a manifest.
const (
	// MaxMediaTypeLength bounds a media type (RFC 6838: 127 characters per
	// type and subtype).
	MaxMediaTypeLength = 255
	// schemaVersion is the only schema version of the four manifest types.
	schemaVersion = 2
)

// The platform a client gets from an index when it does not accept indexes,
// as in distribution.
const (
	defaultOS   = "linux"
	defaultArch = "amd64"
)

// Parsed is what a manifest refers to: an image manifest's config and
// layers, or an index's manifests. Every descriptor in it has a sha256
// digest, a size of at least 0 and a media type.
type Parsed struct {
	// MediaType is the manifest's type: the one it was served with, or its
	// own mediaType field.
	MediaType string
	// ArtifactType is an OCI artifact manifest's artifactType, if any.
	ArtifactType string
	// Config is an image manifest's config blob; nil for an index.
	Config *ocispec.Descriptor
	// Layers are an image manifest's blobs in order.
	Layers []ocispec.Descriptor
	// Manifests are an index's manifests.
	Manifests []ocispec.Descriptor
}

// IsIndex reports whether the media type is an OCI index or a Docker
// manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifestType reports whether the media type is one of the four
// manifest types this package serves.
func IsManifestType(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// ManifestTypes are the four manifest types, in the order the Client asks
// for them.
var ManifestTypes = []string{ocispec.MediaTypeImageManifest, MediaTypeDockerManifest, ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList}

// wireManifest holds the fields of all four manifest types.
type wireManifest struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
}

// ParseManifest checks a manifest's bytes and returns what it refers to.
// mediaType is the type it was served or stored with; empty means "take
// the manifest's own mediaType field, or infer it" (an OCI manifest may
// leave the field out). A manifest whose own field disagrees with
// mediaType is refused, as is anything over MaxManifestBytes, with more
// than MaxDescriptors entries, or with a descriptor that is not sha256.
func ParseManifest(mediaType string, data []byte) (*Parsed, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w manifest: %d bytes, more than %d", ErrInvalid, len(data), MaxManifestBytes)
	}
	var w wireManifest
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w manifest: %w", ErrInvalid, err)
	}
	if w.SchemaVersion != schemaVersion {
		return nil, fmt.Errorf("%w manifest: schemaVersion %d, want %d", ErrInvalid, w.SchemaVersion, schemaVersion)
	}
	mt, err := manifestType(mediaType, &w)
	if err != nil {
		return nil, err
	}
	p := &Parsed{MediaType: mt, ArtifactType: w.ArtifactType}
	if IsIndex(mt) {
		if w.Config != nil || w.Layers != nil {
			return nil, fmt.Errorf("%w manifest: an index with a config or layers", ErrInvalid)
		}
		if p.Manifests, err = checkDescriptors("manifest", w.Manifests); err != nil {
			return nil, err
		}
		return p, sameSizes(p.Manifests)
	}
	if w.Config == nil || w.Manifests != nil {
		return nil, fmt.Errorf("%w manifest: an image manifest needs a config and has no manifests", ErrInvalid)
	}
	if err := checkDescriptor("config", *w.Config); err != nil {
		return nil, err
	}
	p.Config = w.Config
	if p.Layers, err = checkDescriptors("layer", w.Layers); err != nil {
		return nil, err
	}
	return p, sameSizes(p.all())
}

// sameSizes refuses a manifest that lists one digest with two sizes.
func sameSizes(ds []ocispec.Descriptor) error {
	sizes := map[digest.Digest]int64{}
	for _, d := range ds {
		if s, ok := sizes[d.Digest]; ok && s != d.Size {
			return fmt.Errorf("%w manifest: %s is listed with sizes %d and %d", ErrInvalid, d.Digest, s, d.Size)
		}
		sizes[d.Digest] = d.Size
	}
	return nil
}

// all is the config and the layers, repeats included.
func (p *Parsed) all() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{*p.Config}, p.Layers...)
}

// manifestType decides a manifest's type from the type it came with and
// its own mediaType field.
func manifestType(given string, w *wireManifest) (string, error) {
	own := w.MediaType
	switch {
	case given != "" && own != "" && given != own:
		return "", fmt.Errorf("%w manifest: served as %q but says it is %q", ErrInvalid, clip(given), clip(own))
	case given == "" && own == "" && w.Manifests != nil:
		own = ocispec.MediaTypeImageIndex
	case given == "" && own == "":
		own = ocispec.MediaTypeImageManifest
	case given != "":
		own = given
	}
	if !IsManifestType(own) {
		return "", fmt.Errorf("%w manifest: media type %q is none of the four manifest types", ErrInvalid, clip(own))
	}
	return own, nil
}

func checkDescriptors(what string, ds []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if len(ds) > MaxDescriptors {
		return nil, fmt.Errorf("%w manifest: %d %ss, more than %d", ErrInvalid, len(ds), what, MaxDescriptors)
	}
	for _, d := range ds {
		if err := checkDescriptor(what, d); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func checkDescriptor(what string, d ocispec.Descriptor) error {
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return fmt.Errorf("manifest %s: %w", what, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%w manifest %s %s: size %d", ErrInvalid, what, d.Digest, d.Size)
	}
	if d.MediaType == "" || len(d.MediaType) > MaxMediaTypeLength {
		return fmt.Errorf("%w manifest %s %s: media type %q", ErrInvalid, what, d.Digest, clip(d.MediaType))
	}
	return nil
}

// Blobs returns the blobs an image manifest refers to, config first, each
// digest once. An index has none of its own.
func (p *Parsed) Blobs() []ocispec.Descriptor {
	if p.Config == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []ocispec.Descriptor
	for _, d := range p.all() {
		if !seen[string(d.Digest)] {
			seen[string(d.Digest)] = true
			out = append(out, d)
		}
	}
	return out
}

// pick chooses the manifest of an index that a client gets when it does
// not accept indexes: the linux/amd64 one, or the only one, provided the
// client accepts its type.
func (p *Parsed) pick(accepts func(string) bool) (ocispec.Descriptor, bool) {
	var usable []ocispec.Descriptor
	for _, d := range p.Manifests {
		if IsManifestType(d.MediaType) && !IsIndex(d.MediaType) && accepts(d.MediaType) {
			usable = append(usable, d)
		}
	}
	for _, d := range usable {
		if d.Platform != nil && d.Platform.OS == defaultOS && d.Platform.Architecture == defaultArch {
			return d, true
		}
	}
	if len(usable) == 1 && len(p.Manifests) == 1 {
		return usable[0], true
	}
	return ocispec.Descriptor{}, false
}
