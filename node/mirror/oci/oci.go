// Package oci serves the pull half of the OCI distribution API (/v2/...)
// that stock registry clients use — ollama pull, oras pull, crane, docker —
// and reads from an upstream registry to fill a mirror: manifests with
// content negotiation, blobs by sha256 with ranges, tag lists, and the
// spec's error bodies.
//
// The package knows HTTP and the distribution spec only; a Backend supplies
// manifests and blobs, and the Client's caller supplies the HTTP client
// that enforces where upstream requests may go.
package oci

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Media types of manifests this package serves and reads. The OCI ones are
// image-spec's (ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex);
// Docker's are not in image-spec.
const (
	// MediaTypeDockerManifest is Docker's image manifest, schema 2. Ollama's
	// registry serves its models with it.
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// MediaTypeDockerManifestList is Docker's manifest list (the index of
	// per-platform manifests).
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeDockerConfig is the config blob type Docker and Ollama use.
	MediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
)

// Limits on what a request, a manifest or an upstream may carry.
const (
	// MaxManifestBytes bounds a manifest, read or served (the size
	// distribution and containerd accept).
	MaxManifestBytes = 4 << 20
	// MaxNameLength bounds a repository name: many clients refuse more
	// than 255 characters for host, slash and name together.
	MaxNameLength = 255
	// MaxTagLength bounds a tag, as the spec's tag pattern does.
	MaxTagLength = 128
	// MaxDescriptors bounds the layers of a manifest or the manifests of an
	// index.
	MaxDescriptors = 1 << 16
	// MaxTagsPage bounds the tags one tags/list answer carries; more are
	// reached through its Link header.
	MaxTagsPage = 1000
)

// BusyRetryAfter is the Retry-After of a 429 answer to ErrTooManyRequests.
const BusyRetryAfter = 2 * time.Second

// Errors a Backend (or the Client) returns, mapped to the spec's error
// codes by the Handler.
var (
	// ErrNameUnknown: no such repository (404 NAME_UNKNOWN).
	ErrNameUnknown = errors.New("repository name not known to registry")
	// ErrManifestUnknown: the repository has no such tag or manifest
	// (404 MANIFEST_UNKNOWN).
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrBlobUnknown: the repository has no such blob (404 BLOB_UNKNOWN).
	ErrBlobUnknown = errors.New("blob unknown to registry")
	// ErrDenied: the client may not have it (403 DENIED), e.g. a denylist
	// or an allow-list refused it, or an upstream refused us.
	ErrDenied = errors.New("requested access to the resource is denied")
	// ErrRefused: this node's policy refuses to pass it on, a denylist
	// naming the repository or the blob, or the licence policy (451 DENIED).
	ErrRefused = errors.New("unavailable for legal reasons: refused by this mirror's policy")
	// ErrTooManyRequests: the client has as many transfers going as it may
	// (429 TOOMANYREQUESTS, Retry-After: BusyRetryAfter).
	ErrTooManyRequests = errors.New("too many requests")
	// ErrUnsupported: the operation is not offered (405 UNSUPPORTED).
	ErrUnsupported = errors.New("the operation is unsupported")
	// ErrUpstream: the registry this one fills from failed or could not be
	// reached (502). A later request tries again.
	ErrUpstream = errors.New("upstream registry failed")
	// ErrUpstreamTimeout: the upstream stopped sending (504). A later
	// request tries again.
	ErrUpstreamTimeout = errors.New("upstream registry stalled")
	// ErrMismatch: bytes do not match the digest or size that names them.
	ErrMismatch = errors.New("content does not match its digest")
	// ErrInvalid: a name, tag, digest or manifest breaks the rules of this
	// package; nothing was asked of a Backend or sent upstream.
	ErrInvalid = errors.New("invalid")
)

// Manifest is a manifest as stored: its exact bytes and their media type.
// Its digest is the sha256 of Data; the Handler computes it and never takes
// it on trust.
type Manifest struct {
	// MediaType is one of the four manifest types (OCI manifest and index,
	// Docker manifest and list).
	MediaType string
	// Data are the manifest's bytes, at most MaxManifestBytes.
	Data []byte
}

// Digest returns the sha256 digest of the manifest's bytes.
func (m *Manifest) Digest() digest.Digest { return digest.SHA256.FromBytes(m.Data) }

// Reference is what a manifest request names: a tag or a digest, exactly
// one of them set.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// String returns the tag or the digest.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Backend supplies manifests, blobs and tags. Names, tags and digests have
// passed ValidName, ParseReference and ParseDigest before a Backend sees
// them. Methods return the sentinels above (wrapped or not) for the
// client's errors; any other error is a 500 whose text stays in the log.
type Backend interface {
	// Manifest returns the manifest ref names in repository name, or
	// ErrNameUnknown / ErrManifestUnknown. For a digest reference the
	// manifest's bytes must hash to it (the Handler checks).
	Manifest(ctx context.Context, name string, ref Reference) (*Manifest, error)
	// Blob opens blob d of repository name, seekable for range requests,
	// or returns ErrNameUnknown / ErrBlobUnknown. What it returns must be
	// the bytes d names: the Handler streams it without hashing it.
	Blob(ctx context.Context, name string, d digest.Digest) (io.ReadSeekCloser, error)
	// Tags lists the tags of repository name in any order, or returns
	// ErrNameUnknown.
	Tags(ctx context.Context, name string) ([]string, error)
}
