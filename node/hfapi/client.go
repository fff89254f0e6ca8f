package hfapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/allmende/allmende/store/manifest"
)

// Limits on what an upstream may send.
const (
	// MaxInfoBytes bounds a repository info document.
	MaxInfoBytes = 32 << 20
	// MaxFiles bounds the files of one repository revision.
	MaxFiles = 100_000
)

// Timeouts of the default HTTP client (NewClient with nil). There is no
// overall timeout, since a download of many gigabytes may rightly take
// hours; callers bound a transfer that stops making progress themselves
// (the mirror's mirror.stall_timeout).
const (
	// DialTimeout bounds a TCP connect to the upstream.
	DialTimeout = 30 * time.Second
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout = 15 * time.Second
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is sent.
	ResponseHeaderTimeout = time.Minute
	// IdleConnTimeout closes pooled connections unused for this long.
	IdleConnTimeout = 90 * time.Second
	// InfoTimeout bounds a whole repository info request.
	InfoTimeout = 2 * time.Minute
)

// ErrMismatch means downloaded bytes do not match what the upstream
// declared (size, sha256 or git blob sha1).
var ErrMismatch = errors.New("content does not match the declared hash")

// Client reads repositories from a Hugging Face-compatible endpoint (the
// hub, or another allmende mirror).
type Client struct {
	endpoint string
	http     *http.Client
}

// NewClient returns a client for endpoint, e.g. https://huggingface.co.
// With hc nil it uses an HTTP client with the connect, TLS and response
// header timeouts above.
func NewClient(endpoint string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: newTransport()}
	}
	return &Client{endpoint: strings.TrimRight(endpoint, "/"), http: hc}
}

// newTransport is http.DefaultTransport's setup with bounded connect, TLS
// and response header waits.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       IdleConnTimeout,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

func kindPlural(k Kind) string {
	if k == Dataset {
		return "datasets"
	}
	return "models"
}

// Repo fetches the info of a repository revision, with file sizes and LFS
// hashes.
func (c *Client) Repo(ctx context.Context, kind Kind, name, rev string) (*Repo, error) {
	ctx, cancel := context.WithTimeout(ctx, InfoTimeout)
	defer cancel()
	u := fmt.Sprintf("%s/api/%s/%s/revision/%s?blobs=true", c.endpoint, kindPlural(kind), name, url.PathEscape(normRev(rev)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return nil, fmt.Errorf("upstream %s@%s: %w", name, rev, err)
	}
	var info struct {
		SHA          string    `json:"sha"`
		LastModified time.Time `json:"lastModified"`
		CardData     struct {
			License any `json:"license"`
		} `json:"cardData"`
		Siblings []sibling `json:"siblings"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxInfoBytes)).Decode(&info); err != nil {
		return nil, fmt.Errorf("upstream %s: info: %w", name, err)
	}
	if len(info.Siblings) > MaxFiles {
		return nil, fmt.Errorf("upstream %s: %d files, more than %d", name, len(info.Siblings), MaxFiles)
	}
	if !isCommitID(info.SHA) {
		return nil, fmt.Errorf("upstream %s: commit id %q is not 40 hex digits", name, info.SHA)
	}
	repo := &Repo{Kind: kind, Name: name, Revision: normRev(rev), Commit: info.SHA, LastModified: info.LastModified}
	if l, ok := info.CardData.License.(string); ok {
		repo.License = l
	}
	for _, s := range info.Siblings {
		if !safeRepoPath(s.RFilename) {
			return nil, fmt.Errorf("upstream %s: unsafe file path %q", name, s.RFilename)
		}
		f := File{Path: s.RFilename, Size: s.Size}
		if s.LFS != nil {
			f.SHA256, f.Size = strings.ToLower(s.LFS.SHA256), s.LFS.Size
			if !manifest.IsSHA256(f.SHA256) {
				return nil, fmt.Errorf("upstream %s: %s: sha256 %q is not 64 hex digits", name, s.RFilename, s.LFS.SHA256)
			}
		} else {
			f.BlobSHA1 = strings.ToLower(s.BlobID)
			if !isCommitID(f.BlobSHA1) {
				return nil, fmt.Errorf("upstream %s: %s: blob id %q is not 40 hex digits", name, s.RFilename, s.BlobID)
			}
		}
		repo.Files = append(repo.Files, f)
	}
	return repo, nil
}

func isCommitID(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func statusError(resp *http.Response) error {
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.Header.Get("X-Error-Code") == "RepoNotFound" || resp.StatusCode == http.StatusUnauthorized:
		return ErrRepoNotFound
	case resp.Header.Get("X-Error-Code") == "RevisionNotFound":
		return ErrRevisionNotFound
	case resp.Header.Get("X-Error-Code") == "EntryNotFound":
		return ErrEntryNotFound
	}
	return fmt.Errorf("upstream answered %s", resp.Status)
}

// Download streams f of repo from the upstream. The reader fails with
// ErrMismatch at the end if the bytes do not match f's size and hash, so
// callers must read to EOF before they trust what they read.
func (c *Client) Download(ctx context.Context, repo *Repo, f File) (io.ReadCloser, error) {
	prefix := ""
	if repo.Kind == Dataset {
		prefix = "/datasets"
	}
	u := fmt.Sprintf("%s%s/%s/resolve/%s/%s", c.endpoint, prefix, repo.Name, repo.Commit, escapePath(f.Path))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s/%s: %w", repo.Name, f.Path, err)
	}
	if err := statusError(resp); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("upstream %s/%s: %w", repo.Name, f.Path, err)
	}
	return NewVerifyingReader(resp.Body, f), nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// verifyingReader checks size and hash of what passes through it.
type verifyingReader struct {
	r    io.ReadCloser
	f    File
	h    hash.Hash
	n    uint64
	want string
}

// NewVerifyingReader wraps r so that reading past f.Size, or reaching EOF
// with other bytes than f declares, fails with ErrMismatch.
func NewVerifyingReader(r io.ReadCloser, f File) io.ReadCloser {
	v := &verifyingReader{r: r, f: f}
	if f.LFS() {
		v.h, v.want = sha256.New(), f.SHA256
	} else {
		v.h, v.want = manifest.NewBlobHash(f.Size), f.BlobSHA1
	}
	return v
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += uint64(n)
	if v.n > v.f.Size {
		return n, fmt.Errorf("%s: %w: more than the declared %d bytes", v.f.Path, ErrMismatch, v.f.Size)
	}
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.f.Size || got != v.want {
			return n, fmt.Errorf("%s: %w: got %d bytes hashing to %s, declared %d bytes, %s", v.f.Path, ErrMismatch, v.n, got, v.f.Size, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }
