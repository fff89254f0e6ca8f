package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// UserAgent is what the Client calls itself upstream.
const UserAgent = "allmende-mirror (OCI pull)"

// Limits of the Client.
const (
	// ManifestTimeout bounds one manifest request, token dance included.
	// Blob downloads have no overall timeout (they may rightly take hours);
	// callers bound a transfer that stops making progress themselves.
	ManifestTimeout = 2 * time.Minute
	// MaxErrorBody bounds how much of an upstream's error answer is read,
	// to be logged and to learn its error code; it is never passed on.
	MaxErrorBody = 4 << 10
)

// Client reads manifests and blobs from an upstream registry, e.g.
// https://registry.ollama.ai. It asks for anonymous pull tokens when the
// upstream wants them, checks every manifest against its digest and size
// limit, and hands out blobs through a reader that checks size and
// sha256.
//
// Where requests may go — redirects to a CDN, the addresses dialled, the
// token realm's host — is decided by the *http.Client it is given, which
// must carry the mirror's upstream rules (node/mirror/upstreamhttp, which
// Hugging Face fills use too: redirects only to https or the upstream's own
// origin, no loopback, link-local or private addresses unless the upstream
// is one, checked at dial time). The Client itself only refuses a token realm that
// is neither https nor the upstream's own origin.
type Client struct {
	base   *url.URL
	hc     *http.Client
	log    *slog.Logger
	tokens tokenCache
}

// NewClient returns a client for the registry at endpoint (scheme and host,
// no path), sending its requests through hc, and logging upstream error
// answers to log (nil discards them).
func NewClient(endpoint string, hc *http.Client, log *slog.Logger) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("registry %q: want http(s)://host[:port]", endpoint)
	}
	if hc == nil {
		return nil, errors.New("registry client: no HTTP client given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{base: u, hc: hc, log: log}, nil
}

// Manifest fetches the manifest ref names in repository name, asking for
// all four manifest types. It fails with ErrNameUnknown or
// ErrManifestUnknown when the upstream has none, ErrMismatch when the
// bytes do not hash to the digest asked for or the one the upstream
// declared, and ErrUpstream (wrapping ErrInvalid) for a manifest
// ParseManifest refuses. name and ref must be valid, or nothing is sent.
func (c *Client) Manifest(ctx context.Context, name string, ref Reference) (*Manifest, error) {
	if err := checkRef(name, ref); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ManifestTimeout)
	defer cancel()
	what := name + " manifest " + ref.String()
	resp, err := c.get(ctx, name, what, "/v2/"+name+"/manifests/"+ref.String(), strings.Join(ManifestTypes, ", "), ErrManifestUnknown)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrUpstream, what, resp.ContentLength, MaxManifestBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, what, err)
	}
	given, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !IsManifestType(given) {
		given = "" // e.g. application/json: the manifest's own field decides
	}
	p, err := ParseManifest(given, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, what, err)
	}
	m := &Manifest{MediaType: p.MediaType, Data: data}
	if err := checkManifestDigest(m, ref, resp.Header.Get(DigestHeader)); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return m, nil
}

// checkRef checks a name and reference before anything is sent.
func checkRef(name string, ref Reference) error {
	if err := ValidName(name); err != nil {
		return err
	}
	switch {
	case ref.Digest != "" && ref.Tag != "":
		return fmt.Errorf("%w reference: both tag %q and digest", ErrInvalid, clip(ref.Tag))
	case ref.Digest != "":
		_, err := ParseDigest(string(ref.Digest))
		return err
	}
	return ValidTag(ref.Tag)
}

// checkManifestDigest compares a manifest's digest with the one asked for
// and the one the upstream declared (if it declared a sha256 one).
func checkManifestDigest(m *Manifest, ref Reference, declared string) error {
	dg := m.Digest()
	if ref.Digest != "" && dg != ref.Digest {
		return fmt.Errorf("%w: asked for %s, got bytes hashing to %s", ErrMismatch, ref.Digest, dg)
	}
	if strings.HasPrefix(declared, sha256Prefix) && declared != dg.String() {
		return fmt.Errorf("%w: the upstream declared %s, the bytes hash to %s", ErrMismatch, clip(declared), dg)
	}
	return nil
}

// Blob streams blob d of repository name, following the upstream's
// redirects (as hc allows). size is the size the manifest declares, or
// below 0 if unknown. The reader fails with ErrMismatch, at the latest at
// EOF, if the bytes are not size long or do not hash to d: callers keep
// nothing before they have read to EOF without an error.
func (c *Client) Blob(ctx context.Context, name string, d digest.Digest, size int64) (io.ReadCloser, error) {
	if err := checkRef(name, Reference{Digest: d}); err != nil {
		return nil, err
	}
	what := name + " blob " + d.String()
	resp, err := c.get(ctx, name, what, "/v2/"+name+"/blobs/"+d.String(), "", ErrBlobUnknown)
	if err != nil {
		return nil, err
	}
	if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %w: %d bytes announced, the manifest says %d", what, ErrMismatch, resp.ContentLength, size)
	}
	return NewVerifyingReader(resp.Body, d, size), nil
}

// get sends a GET for path (below the endpoint, already valid) and returns
// the answer if it is 200. A 401 with a Bearer challenge gets a token and
// one more try. Any other answer becomes an error; notFound is the
// sentinel for a 404 whose error code does not say more.
func (c *Client) get(ctx context.Context, name, what, path, accept string, notFound error) (*http.Response, error) {
	resp, err := c.send(ctx, name, path, accept)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, what, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		ch, ok := parseChallenge(resp.Header.Values("WWW-Authenticate"))
		drain(resp)
		if !ok {
			return nil, fmt.Errorf("%s: %w: the upstream wants credentials other than an anonymous token", what, ErrDenied)
		}
		if ch.scope == "" {
			ch.scope = "repository:" + name + ":pull"
		}
		if _, err := c.fetchToken(ctx, name, ch); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if resp, err = c.send(ctx, name, path, accept); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, what, err)
		}
	}
	if resp.StatusCode != http.StatusOK {
		err := c.statusError(resp, what, notFound)
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// send sends one GET, with the token held for name if there is one.
func (c *Client) send(ctx context.Context, name, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if t := c.tokens.get(name, time.Now()); t != "" {
		// net/http drops it on a redirect to another host (the CDN).
		req.Header.Set("Authorization", "Bearer "+t)
	}
	return c.hc.Do(req)
}

// drain reads a little of an answer we do not use, so the connection can
// be reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxErrorBody))
	resp.Body.Close()
}

// statusError turns an answer other than 200 into an error: the spec's
// not-found codes into their sentinels, 401 and 403 into ErrDenied, 429
// into ErrTooManyRequests, anything else into ErrUpstream naming the status
// only. The start of the body goes to the log, never further.
func (c *Client) statusError(resp *http.Response, what string, notFound error) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	code := errorCode(body)
	c.log.Info("upstream registry answered an error", "url", resp.Request.URL.Redacted(), "status", resp.StatusCode,
		"code", code, "body", strings.ToValidUTF8(string(body), "?"))
	var sentinel error
	switch {
	case code == codeNameUnknown:
		sentinel = ErrNameUnknown
	case code == codeManifestUnknown:
		sentinel = ErrManifestUnknown
	case code == codeBlobUnknown:
		sentinel = ErrBlobUnknown
	case resp.StatusCode == http.StatusNotFound:
		sentinel = notFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		sentinel = ErrDenied
	case resp.StatusCode == http.StatusTooManyRequests:
		sentinel = ErrTooManyRequests
	default:
		sentinel = ErrUpstream
	}
	return fmt.Errorf("%s: %w: the upstream answered %d %s", what, sentinel, resp.StatusCode, http.StatusText(resp.StatusCode))
}

// errorCode returns the first error code of a spec error body, if any.
func errorCode(body []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}
