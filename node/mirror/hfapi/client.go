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
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/allmende/allmende/node/mirror/upstreamhttp"
	"github.com/allmende/allmende/store/manifest"
)

// Limits on what an upstream may send.
const (
	// MaxInfoBytes bounds a repository info document.
	MaxInfoBytes = 32 << 20
	// MaxFiles bounds the files of one repository revision.
	MaxFiles = 100_000
)

// Timeouts of the client beyond upstreamhttp's transport ones.
const (
	// InfoTimeout bounds a whole repository info request.
	InfoTimeout = 2 * time.Minute
)

// ErrMismatch means downloaded bytes do not match what the upstream
// declared (size, sha256 or git blob sha1).
var ErrMismatch = errors.New("content does not match the declared hash")

// MaxErrorBody bounds how much of an upstream's error answer is read, to
// be logged; it is never passed on to clients.
const MaxErrorBody = 1 << 10

// Client reads repositories from a Hugging Face-compatible endpoint (the
// hub, or another allmende mirror), following the rules in upstream.go,
// and resumes and retries downloads (see resume.go).
type Client struct {
	rules *upstreamhttp.Rules
	http  *http.Client
	log   *slog.Logger
	opts  Options
}

// Options of a Client; zero fields take their defaults.
type Options struct {
	// Log receives the upstream's error answers and the retries (nil
	// discards them).
	Log *slog.Logger
	// Token, if set, is sent as "Authorization: Bearer" to the endpoint
	// (and never to another host a redirect leads to), for requests that
	// carry no token of their own (see WithToken). It is never logged.
	Token string
	// UserAgent names the client to the upstream.
	UserAgent string
	// Stall resumes a download that received nothing for this long.
	Stall time.Duration
	// Retries bounds the attempts in a row that bring no byte.
	Retries int
	// RetryWait is the first backoff (see backoff).
	RetryWait time.Duration
}

// NewClient returns a client for endpoint, e.g. https://huggingface.co,
// with the connect, TLS and response header timeouts above, the redirect
// and address rules of upstream.go and the retries of resume.go.
func NewClient(endpoint string, opts Options) (*Client, error) {
	rules, err := upstreamhttp.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Stall <= 0 {
		opts.Stall = DefaultStall
	}
	if opts.Retries <= 0 {
		opts.Retries = DefaultRetries
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = DefaultRetryWait
	}
	hc := rules.Client()
	return &Client{rules: rules, http: hc, log: opts.Log, opts: opts}, nil
}

func kindPlural(k Kind) string {
	if k == Dataset {
		return "datasets"
	}
	return "models"
}

// tokenKey carries a request's own upstream token in a context.
type tokenKey struct{}

// WithToken returns ctx carrying token, which the client's requests under
// it send instead of Options.Token; an empty token sends none at all.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// token is the token for requests under ctx.
func (c *Client) token(ctx context.Context) string {
	if t, ok := ctx.Value(tokenKey{}).(string); ok {
		return t
	}
	return c.opts.Token
}

// downloadToken is the token for downloading a file of repo: the one the
// context carries, else the one repo was read with, else Options.Token.
func (c *Client) downloadToken(ctx context.Context, repo *Repo) string {
	if t, ok := ctx.Value(tokenKey{}).(string); ok {
		return t
	}
	if repo.token != "" {
		return repo.token
	}
	return c.opts.Token
}

// send sends one GET for the escaped path (below the endpoint), for the
// bytes from off on if off > 0, and returns the answer if it is 200 or
// 206. Any other answer becomes an error without the answer's body, which
// is logged (at most MaxErrorBody bytes).
func (c *Client) send(ctx context.Context, what, escaped, token string, off uint64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.rules.Base().String()+escaped, nil)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", what, err)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	if token != "" {
		// net/http drops it on a redirect to another host (a CDN).
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", what, err)
	}
	if resp.StatusCode == http.StatusPartialContent && off > 0 {
		return resp, nil
	}
	if err := c.statusError(resp); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("upstream %s: %w", what, err)
	}
	return resp, nil
}

// get sends a GET for the escaped path and returns the answer if it is
// 200, retrying 429, 5xx and transport errors like a download does, while
// the waits add up to MaxInfoRetryWait at most.
func (c *Client) get(ctx context.Context, what, escaped string) (*http.Response, error) {
	token := c.token(ctx)
	var waited time.Duration
	for failures := 0; ; failures++ {
		resp, err := c.send(ctx, what, escaped, token, 0)
		if err == nil {
			return resp, nil
		}
		ok, after := retryable(err)
		wait := backoff(c.opts.RetryWait, failures+1, after)
		if !ok || failures >= c.opts.Retries || waited+wait > MaxInfoRetryWait || ctx.Err() != nil {
			return nil, err
		}
		c.log.Info("upstream request failed; retrying", "what", what, "err", err)
		if serr := sleep(ctx, wait); serr != nil {
			return nil, err
		}
		waited += wait
	}
}

// Repo fetches the info of a repository revision, with file sizes and LFS
// hashes. name and rev must pass ValidRef, or nothing is sent.
func (c *Client) Repo(ctx context.Context, kind Kind, name, rev string) (*Repo, error) {
	rev, err := ValidRef(name, rev)
	if err != nil {
		return nil, err
	}
	rp, _ := repoPath(name)
	ctx, cancel := context.WithTimeout(ctx, InfoTimeout)
	defer cancel()
	resp, err := c.get(ctx, name+"@"+rev, "/api/"+kindPlural(kind)+rp+"/revision/"+url.PathEscape(rev)+"?blobs=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var info struct {
		SHA          string    `json:"sha"`
		LastModified time.Time `json:"lastModified"`
		Private      bool      `json:"private"`
		Gated        any       `json:"gated"`
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
	repo := &Repo{Kind: kind, Name: name, Revision: rev, Commit: info.SHA, LastModified: info.LastModified,
		Gated: info.Private || (info.Gated != nil && info.Gated != false), token: c.token(ctx)}
	if l, ok := info.CardData.License.(string); ok {
		repo.License = l
	}
	for _, s := range info.Siblings {
		f, err := siblingFile(s)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		repo.Files = append(repo.Files, f)
	}
	return repo, nil
}

// siblingFile checks one entry of an upstream's file list.
func siblingFile(s sibling) (File, error) {
	if err := manifest.ValidatePath(s.RFilename); err != nil {
		return File{}, err
	}
	f := File{Path: s.RFilename, Size: s.Size}
	if s.LFS != nil {
		f.SHA256, f.Size = strings.ToLower(s.LFS.SHA256), s.LFS.Size
		if !manifest.IsSHA256(f.SHA256) {
			return File{}, fmt.Errorf("%q: sha256 %q is not 64 hex digits", s.RFilename, s.LFS.SHA256)
		}
		return f, nil
	}
	f.BlobSHA1 = strings.ToLower(s.BlobID)
	if !isCommitID(f.BlobSHA1) {
		return File{}, fmt.Errorf("%q: blob id %q is not 40 hex digits", s.RFilename, s.BlobID)
	}
	return f, nil
}

func isCommitID(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// statusError turns an answer other than 200 into an error: the hub's
// not-found codes into their sentinels, anything else into one naming the
// status only. The start of the body goes to the log, never further.
func (c *Client) statusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	c.log.Info("upstream answered an error", "url", resp.Request.URL.Redacted(), "status", resp.StatusCode,
		"code", resp.Header.Get("X-Error-Code"), "body", strings.ToValidUTF8(string(body), "?"))
	switch {
	case resp.Header.Get("X-Error-Code") == "GatedRepo":
		return ErrGated
	case resp.Header.Get("X-Error-Code") == "RepoNotFound" || resp.StatusCode == http.StatusUnauthorized:
		return ErrRepoNotFound
	case resp.Header.Get("X-Error-Code") == "RevisionNotFound":
		return ErrRevisionNotFound
	case resp.Header.Get("X-Error-Code") == "EntryNotFound":
		return ErrEntryNotFound
	case resp.StatusCode == http.StatusUnavailableForLegalReasons:
		return fmt.Errorf("%w: the upstream refused it (451)", ErrRefused)
	}
	err := fmt.Errorf("%w: it answered %d %s", ErrUpstream, resp.StatusCode, http.StatusText(resp.StatusCode))
	retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	return &statusErr{err: err, retry: retry, after: retryAfter(resp.Header, time.Now())}
}

// Download streams f of repo from the upstream. The reader fails with
// ErrMismatch at the end if the bytes do not match f's size and hash, so
// callers must read to EOF before they trust what they read. The name,
// commit and path must pass the rules, or nothing is sent.
func (c *Client) Download(ctx context.Context, repo *Repo, f File) (io.ReadCloser, error) {
	rp, err := repoPath(repo.Name)
	if err != nil {
		return nil, err
	}
	if !isCommitID(repo.Commit) {
		return nil, fmt.Errorf("%w: commit %q is not 40 hex digits", ErrBadRequest, repo.Commit)
	}
	fp, err := escapePath(f.Path)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if repo.Kind == Dataset {
		prefix = "/datasets"
	}
	r := &resumingReader{c: c, ctx: ctx, what: repo.Name + "/" + f.Path, url: prefix + rp + "/resolve/" + repo.Commit + "/" + fp,
		auth: c.downloadToken(ctx, repo), size: f.Size}
	if err := r.connect(); err != nil {
		return nil, err
	}
	return NewVerifyingReader(r, f), nil
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
