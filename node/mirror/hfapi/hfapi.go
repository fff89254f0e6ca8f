// Package hfapi serves the subset of the Hugging Face Hub HTTP API that stock
// clients (huggingface_hub, @huggingface/hub, transformers) use to download
// models and datasets: repository info, file trees, paths-info, and
// resolve/raw downloads with ranges, ETags and the hub's error codes. Set
// HF_ENDPOINT to a server running this handler.
//
// The package knows HTTP and the hub's conventions only; a Backend supplies
// repositories and file contents.
package hfapi

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/allmende/allmende/store/manifest"
)

// Kind is a repository type.
type Kind string

// Repository kinds, as in the hub's URLs (/api/models, /api/datasets).
const (
	Model   Kind = "model"
	Dataset Kind = "dataset"
)

// Backend errors, mapped to the hub's error codes.
var (
	// ErrRepoNotFound: no such repository (401 RepoNotFound, as the hub).
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repository exists, the revision does not.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the revision has no such file.
	ErrEntryNotFound = errors.New("entry not found")
	// ErrUpstream: the server this one fills from failed, could not be
	// reached or sent other bytes than it declared (502 Bad Gateway). A
	// later request tries again.
	ErrUpstream = errors.New("upstream failed")
	// ErrUpstreamTimeout: the server this one fills from stopped sending
	// (504 Gateway Timeout). A later request tries again.
	ErrUpstreamTimeout = errors.New("upstream stalled")
	// ErrRefused: this server's policy refuses the repository or file (a
	// denylist entry, or a licence it does not pass on): 451 Unavailable
	// For Legal Reasons, the error's message saying which rule.
	ErrRefused = errors.New("refused by this mirror's policy")
	// ErrGated: a gated or private repository, and the client sent no
	// token the upstream accepts for it (403 GatedRepo, as the hub).
	ErrGated = errors.New("gated repository: send a token with access to it")
	// ErrBusy: the client already has as many downloads being filled as it
	// may (429 Too Many Requests, with Retry-After: BusyRetryAfter).
	ErrBusy = errors.New("too many downloads being filled for this client")
)

// BusyRetryAfter is the Retry-After of a 429 answer to ErrBusy.
const BusyRetryAfter = 2 * time.Second

// Repo is one revision of a repository.
type Repo struct {
	Kind Kind
	// Name is org/name.
	Name string
	// Revision is what the client asked for resolved to a name (e.g. main).
	Revision string
	// Commit is the 40-hex commit id all answers about this revision carry.
	Commit       string
	LastModified time.Time
	License      string
	Files        []File
	// Gated: the upstream serves this repository only with a token (it is
	// gated or private).
	Gated bool
	// token is the upstream token it was read with, for its downloads.
	token string
}

// File is one file of a revision.
type File struct {
	// Path is slash-separated and relative to the repository root.
	Path string
	Size uint64
	// SHA256 is the hex sha256 of the content. Set for LFS files.
	SHA256 string
	// BlobSHA1 is the git blob sha1 of the content, set for files kept in
	// git itself (not LFS). Exactly one of SHA256 and BlobSHA1 decides how
	// the file is presented: with BlobSHA1 it is a plain git file.
	BlobSHA1 string
	// Ref is the backend's handle for the content (e.g. a CID).
	Ref string
}

// LFS reports whether the file is presented as a Git LFS file.
func (f File) LFS() bool { return f.BlobSHA1 == "" }

// ETag is the hub's ETag for the file: the sha256 for LFS files, the git
// blob sha1 otherwise.
func (f File) ETag() string {
	if f.LFS() {
		return f.SHA256
	}
	return f.BlobSHA1
}

// Pointer is the Git LFS pointer file that stands in git for an LFS file.
func (f File) Pointer() string {
	return manifest.LFSPointer(f.SHA256, f.Size)
}

// GitOID is the git blob id of what git holds for the file: the content's
// blob sha1, or the blob sha1 of the LFS pointer.
func (f File) GitOID() string {
	if !f.LFS() {
		return f.BlobSHA1
	}
	return manifest.GitBlobSHA1([]byte(f.Pointer()))
}

// Backend supplies repositories and their files.
type Backend interface {
	// Repo returns the revision rev ("main", a branch, or a commit id) of
	// the named repository, or ErrRepoNotFound / ErrRevisionNotFound.
	Repo(ctx context.Context, kind Kind, name, rev string) (*Repo, error)
	// Open returns the content of f, seekable for range requests.
	Open(ctx context.Context, repo *Repo, f File) (io.ReadSeekCloser, error)
}
