package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/allmende/allmende/store"
)

// APIVersionHeader is the header every answer carries, as clients probe
// for it on /v2/.
const (
	APIVersionHeader = "Docker-Distribution-API-Version"
	apiVersion       = "registry/2.0"
	// DigestHeader carries a manifest's or blob's digest.
	DigestHeader = "Docker-Content-Digest"
	// blobCacheControl: a blob's bytes never change under its digest.
	blobCacheControl = "max-age=31536000, immutable"
)

// Handler serves the distribution spec's pull API for b: GET /v2/,
// GET|HEAD /v2/<name>/manifests/<reference>, GET|HEAD
// /v2/<name>/blobs/<digest> (with ranges), GET /v2/<name>/tags/list (with
// n and last). Every other method is refused with 405 UNSUPPORTED. Mount it
// at /v2/ of a server: it reads the whole request path.
func Handler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{b: b, log: log}
}

type server struct {
	b   Backend
	log *slog.Logger
}

// apiError is one answer of the spec's error form.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// Error codes of the distribution spec (and two of distribution's own:
// TAG_INVALID and PAGINATION_NUMBER_INVALID).
const (
	codeNameInvalid     = "NAME_INVALID"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeTagInvalid      = "TAG_INVALID"
	codePageInvalid     = "PAGINATION_NUMBER_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codeTooMany         = "TOOMANYREQUESTS"
	codeDenied          = "DENIED"
	codeUnknown         = "UNKNOWN"
)

func badRequest(code string, err error) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: err.Error()}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(APIVersionHeader, apiVersion)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, &apiError{http.StatusMethodNotAllowed, codeUnsupported, "this registry is read-only: " + r.Method + " is not offered"})
		return
	}
	rt, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		s.fail(w, r, &apiError{http.StatusNotFound, codeUnsupported, "no such endpoint"})
		return
	}
	if rt.kind == "base" {
		writeJSON(w, r, http.StatusOK, struct{}{})
		return
	}
	if err := ValidName(rt.name); err != nil {
		s.fail(w, r, badRequest(codeNameInvalid, err))
		return
	}
	switch rt.kind {
	case "manifests":
		s.manifest(w, r, rt.name, rt.ref)
	case "blobs":
		s.blob(w, r, rt.name, rt.ref)
	case "tags":
		s.tags(w, r, rt.name)
	}
}

func (s *server) manifest(w http.ResponseWriter, r *http.Request, name, raw string) {
	ref, err := ParseReference(raw)
	if err != nil {
		code := codeTagInvalid
		if strings.Contains(raw, ":") {
			code = codeDigestInvalid
		}
		s.fail(w, r, badRequest(code, err))
		return
	}
	m, err := s.b.Manifest(r.Context(), name, ref)
	if err == nil {
		m, err = s.negotiate(r.Context(), name, ref, m, parseAccept(r.Header.Values("Accept")))
	}
	if err == nil {
		err = checkServed(m, ref)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dg := m.Digest()
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set(DigestHeader, dg.String())
	h.Set("ETag", `"`+dg.String()+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.Data))
}

// checkServed refuses to serve what a Backend got wrong: a manifest of no
// known type, too large, or not hashing to the digest asked for.
func checkServed(m *Manifest, ref Reference) error {
	switch {
	case !IsManifestType(m.MediaType):
		return fmt.Errorf("backend manifest %s: media type %q", ref, m.MediaType)
	case len(m.Data) > MaxManifestBytes:
		return fmt.Errorf("backend manifest %s: %d bytes", ref, len(m.Data))
	case ref.Digest != "" && m.Digest() != ref.Digest:
		return fmt.Errorf("backend manifest %s: %w: its bytes hash to %s", ref, ErrMismatch, m.Digest())
	}
	return nil
}

// negotiate returns m if the client accepts its type. An index asked for by
// tag by a client that accepts no index yields the linux/amd64 (or only)
// manifest in it, as distribution does; anything else the client does not
// accept is MANIFEST_UNKNOWN.
func (s *server) negotiate(ctx context.Context, name string, ref Reference, m *Manifest, acc accept) (*Manifest, error) {
	if acc.accepts(m.MediaType) {
		return m, nil
	}
	refused := &apiError{http.StatusNotFound, codeManifestUnknown,
		fmt.Sprintf("a manifest of type %s was found, but the request's Accept header does not allow it", m.MediaType)}
	if !IsIndex(m.MediaType) || ref.Tag == "" {
		return nil, refused
	}
	p, err := ParseManifest(m.MediaType, m.Data)
	if err != nil {
		return nil, fmt.Errorf("backend index %s:%s: %w", name, ref, err)
	}
	d, ok := p.pick(acc.accepts)
	if !ok {
		return nil, refused
	}
	child, err := s.b.Manifest(ctx, name, Reference{Digest: d.Digest})
	if err != nil {
		return nil, err
	}
	if child.MediaType != d.MediaType {
		return nil, fmt.Errorf("backend manifest %s: type %q, the index says %q", d.Digest, child.MediaType, d.MediaType)
	}
	return child, checkServed(child, Reference{Digest: d.Digest})
}

func (s *server) blob(w http.ResponseWriter, r *http.Request, name, raw string) {
	d, err := ParseDigest(raw)
	if err != nil {
		s.fail(w, r, badRequest(codeDigestInvalid, err))
		return
	}
	rc, err := s.b.Blob(r.Context(), name, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(DigestHeader, d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", blobCacheControl)
	// Ollama (server/download.go, up to v0.34 at least) reads the blob URL
	// from the Location of the first GET's answer, redirect or not, and
	// fails with "no Location header in response" without one
	// (ollama/ollama#7244). The blob's own path keeps it here.
	h.Set("Location", r.URL.EscapedPath())
	if _, ok := rc.(*os.File); !ok {
		// A blob still arriving from elsewhere: the answer and its first
		// bytes go out at once, not when a buffer fills (clients such as
		// Ollama give up on a blob whose answer takes 30 s to start). A
		// file keeps the writer's sendfile path.
		w = &flushFirst{ResponseWriter: w}
	}
	http.ServeContent(w, r, "", time.Time{}, rc)
}

// flushFirst flushes the answer after its first write.
type flushFirst struct {
	http.ResponseWriter
	flushed bool
}

func (f *flushFirst) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if !f.flushed && err == nil {
		f.flushed = true
		err = http.NewResponseController(f.ResponseWriter).Flush()
		if errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the writer below.
func (f *flushFirst) Unwrap() http.ResponseWriter { return f.ResponseWriter }

func (s *server) tags(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	n := MaxTagsPage
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			s.fail(w, r, badRequest(codePageInvalid, fmt.Errorf("n=%q is not a number of at least 0", clip(v))))
			return
		}
		n = min(i, MaxTagsPage)
	}
	last := q.Get("last")
	all, err := s.b.Tags(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tags := make([]string, 0, len(all))
	for _, t := range all {
		if ValidTag(t) == nil && t > last {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			next := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, name, next.Encode()))
		}
	}
	writeJSON(w, r, http.StatusOK, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

// fail writes err in the spec's error form. Errors of the mirror or its
// upstream reach the client as their kind only; the details stay in the log.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if e.status >= http.StatusInternalServerError {
		s.log.Warn("registry request failed", "path", r.URL.EscapedPath(), "status", e.status, "err", err)
	}
	if e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(BusyRetryAfter/time.Second)))
	}
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, r, e.status, struct {
		Errors []item `json:"errors"`
	}{[]item{{e.code, e.message}}})
}

// classify maps an error to its status, code and the message a client may
// see.
func classify(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, ErrNameUnknown):
		return &apiError{http.StatusNotFound, codeNameUnknown, err.Error()}
	case errors.Is(err, ErrManifestUnknown):
		return &apiError{http.StatusNotFound, codeManifestUnknown, err.Error()}
	case errors.Is(err, ErrBlobUnknown):
		return &apiError{http.StatusNotFound, codeBlobUnknown, err.Error()}
	case errors.Is(err, ErrRefused):
		return &apiError{http.StatusUnavailableForLegalReasons, codeDenied, err.Error()}
	case errors.Is(err, ErrDenied):
		return &apiError{http.StatusForbidden, codeDenied, err.Error()}
	case errors.Is(err, ErrTooManyRequests):
		return &apiError{http.StatusTooManyRequests, codeTooMany, err.Error()}
	case errors.Is(err, ErrUnsupported):
		return &apiError{http.StatusMethodNotAllowed, codeUnsupported, err.Error()}
	case errors.Is(err, store.ErrNoSpace):
		return &apiError{http.StatusInsufficientStorage, codeUnknown, store.ErrNoSpace.Error()}
	case errors.Is(err, ErrUpstreamTimeout):
		return &apiError{http.StatusGatewayTimeout, codeUnknown, ErrUpstreamTimeout.Error() + ": it sent nothing for too long; try again"}
	case errors.Is(err, ErrUpstream):
		return &apiError{http.StatusBadGateway, codeUnknown, ErrUpstream.Error() + " (the mirror's log has the details); try again"}
	}
	return &apiError{http.StatusInternalServerError, codeUnknown, "internal error (the mirror's log has the details)"}
}

// writeJSON writes v with status; a HEAD answer carries the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"errors":[{"code":"UNKNOWN","message":"internal error"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// accept is a parsed Accept header: the media types a client takes.
type accept struct {
	any   bool
	types map[string]bool
}

// parseAccept reads the Accept header values (clients send a list, or the
// header several times). No header, or a */* or application/* entry,
// accepts everything; an entry with q=0 is left out.
func parseAccept(values []string) accept {
	a := accept{types: map[string]bool{}}
	if len(values) == 0 {
		a.any = true
	}
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			mt, params, _ := strings.Cut(entry, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if refusedByQ(params) || mt == "" {
				continue
			}
			if mt == "*/*" || mt == "application/*" {
				a.any = true
			}
			a.types[mt] = true
		}
	}
	return a
}

// refusedByQ reports whether media type parameters carry q=0.
func refusedByQ(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}

func (a accept) accepts(mediaType string) bool { return a.any || a.types[mediaType] }
