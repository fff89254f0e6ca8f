package ollama

import (
	"fmt"
	"strings"

	"github.com/allmende/allmende/store/manifest"
	"github.com/opencontainers/go-digest"
)

// An OCI model (an Ollama model, or any image or artifact manifest with its
// blobs) is kept on an allmende node as an allmende model, so that it is
// found, announced, fetched, evicted and published like any other: its
// name is the repository (namespace/model), its revision the tag, and its
// files are the OCI manifest's exact bytes at RecordManifest and each blob
// at RecordBlobPath. The manifest file's sha256 is the OCI manifest's
// digest, and every blob's is its own: peers find both by sha256.
const (
	// RecordManifest is the path of the OCI manifest in the model.
	RecordManifest = "manifest.json"
	// recordBlobs is the folder of the blobs in the model.
	recordBlobs = "blobs/"
	// SourcePrefix starts the source of a model imported from an Ollama
	// store (ollama:host/namespace/model:tag).
	SourcePrefix = "ollama:"
	// OCISourcePrefix starts the source of a model a mirror filled from an
	// OCI registry (oci:host/name:tag).
	OCISourcePrefix = "oci:"
)

// RecordBlobPath is the path of blob d in the model: blobs/sha256-<hex>,
// as in an Ollama store.
func RecordBlobPath(d digest.Digest) string {
	return recordBlobs + blobPrefix + strings.TrimPrefix(string(d), "sha256:")
}

// RecordRef is the allmende name and revision an OCI repository and tag
// are kept under. A repository of other than two path components, or one
// allmende names do not allow, is refused with ErrInvalid.
func RecordRef(repository, tag string) (name, rev string, err error) {
	if err := manifest.ValidName(repository); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := manifest.ValidRevision(tag); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return repository, tag, nil
}

// IsRecord reports whether an allmende model holds an OCI model: it has
// the manifest file and comes from an Ollama store or an OCI registry.
func IsRecord(m *manifest.Manifest) bool {
	if !strings.HasPrefix(m.Source, SourcePrefix) && !strings.HasPrefix(m.Source, OCISourcePrefix) {
		return false
	}
	_, ok := m.Lookup(RecordManifest)
	return ok
}
