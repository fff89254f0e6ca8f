package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memBackend is an in-memory Backend: repositories of tags, manifests and
// blobs. A few repository names answer with an error instead.
type memBackend struct {
	repos map[string]*memRepo
}

type memRepo struct {
	tags      map[string]digest.Digest
	manifests map[digest.Digest]*Manifest
	blobs     map[digest.Digest][]byte
}

// failing maps repository names to the error every call about them gets.
var failing = map[string]error{
	"busy/model":    ErrTooManyRequests,
	"denied/model":  ErrDenied,
	"refused/model": fmt.Errorf("%w: refused/model: blocked by /home/x/denylists/school.deny", ErrRefused),
	"broken/model":  fmt.Errorf("%w: dial tcp 203.0.113.9:443: secret detail", ErrUpstream),
}

func (m *memBackend) repo(name string) (*memRepo, error) {
	if err, ok := failing[name]; ok {
		return nil, err
	}
	r, ok := m.repos[name]
	if !ok {
		return nil, ErrNameUnknown
	}
	return r, nil
}

func (m *memBackend) Manifest(_ context.Context, name string, ref Reference) (*Manifest, error) {
	r, err := m.repo(name)
	if err != nil {
		return nil, err
	}
	d := ref.Digest
	if ref.Tag != "" {
		if d = r.tags[ref.Tag]; d == "" {
			return nil, ErrManifestUnknown
		}
	}
	mf, ok := r.manifests[d]
	if !ok {
		return nil, ErrManifestUnknown
	}
	return mf, nil
}

func (m *memBackend) Blob(_ context.Context, name string, d digest.Digest) (io.ReadSeekCloser, error) {
	r, err := m.repo(name)
	if err != nil {
		return nil, err
	}
	b, ok := r.blobs[d]
	if !ok {
		return nil, ErrBlobUnknown
	}
	return nopCloser{bytes.NewReader(b)}, nil
}

func (m *memBackend) Tags(_ context.Context, name string) ([]string, error) {
	r, err := m.repo(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for t := range r.tags {
		out = append(out, t)
	}
	return out, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// add stores a manifest under its digest (and tag, if given) and returns
// its digest.
func (r *memRepo) add(tag, mediaType string, data []byte) digest.Digest {
	d := digest.SHA256.FromBytes(data)
	r.manifests[d] = &Manifest{MediaType: mediaType, Data: data}
	if tag != "" {
		r.tags[tag] = d
	}
	return d
}

func (r *memRepo) blob(data []byte) ocispec.Descriptor {
	d := digest.SHA256.FromBytes(data)
	r.blobs[d] = data
	return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
}

func newRepo() *memRepo {
	return &memRepo{tags: map[string]digest.Digest{}, manifests: map[digest.Digest]*Manifest{}, blobs: map[digest.Digest][]byte{}}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is the content the handler tests serve.
type fixture struct {
	b                                 *memBackend
	gguf                              []byte
	ggufDigest, ollamaDigest          digest.Digest
	ociDigest, armDigest, indexDigest digest.Digest
	listDigest, lieDigest             digest.Digest
}

// ollamaManifest builds an Ollama-shaped Docker manifest in r.
func ollamaManifest(t testing.TB, r *memRepo, gguf []byte) []byte {
	desc := func(mt string, data []byte) ocispec.Descriptor {
		d := r.blob(data)
		d.MediaType = mt
		return d
	}
	return mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifest,
		"config":        desc(MediaTypeDockerConfig, []byte(`{"model_format":"gguf","model_family":"llama"}`)),
		"layers": []ocispec.Descriptor{
			desc("application/vnd.ollama.image.model", gguf),
			desc("application/vnd.ollama.image.template", []byte("{{ .Prompt }}")),
			desc("application/vnd.ollama.image.params", []byte(`{"stop":["</s>"]}`)),
		},
	})
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{b: &memBackend{repos: map[string]*memRepo{}}}
	lib := newRepo()
	f.b.repos["library/tiny"] = lib
	f.gguf = append([]byte("GGUF\x03\x00\x00\x00"), bytes.Repeat([]byte{1, 2, 3, 4, 5}, 200)...)
	f.ggufDigest = digest.SHA256.FromBytes(f.gguf)
	f.ollamaDigest = lib.add("latest", MediaTypeDockerManifest, ollamaManifest(t, lib, f.gguf))
	for _, tag := range []string{"1b", "7b", "q4", "a"} {
		lib.tags[tag] = f.ollamaDigest
	}

	img := newRepo()
	f.b.repos["org/multi"] = img
	cfg := img.blob([]byte(`{}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	oci := mustJSON(t, ocispec.Manifest{Versioned: versioned(), MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}})
	f.ociDigest = img.add("oci", ocispec.MediaTypeImageManifest, oci)
	arm := mustJSON(t, ocispec.Manifest{Versioned: versioned(), MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{img.blob([]byte("arm"))}})
	f.armDigest = img.add("", ocispec.MediaTypeImageManifest, arm)
	index := mustJSON(t, ocispec.Index{Versioned: versioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: f.armDigest, Size: int64(len(arm)), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: f.ociDigest, Size: int64(len(oci)), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
	}})
	f.indexDigest = img.add("index", ocispec.MediaTypeImageIndex, index)
	list := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": MediaTypeDockerManifestList, "manifests": []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: f.armDigest, Size: int64(len(arm)), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
	}})
	f.listDigest = img.add("list", MediaTypeDockerManifestList, list)
	// A backend that lies: bytes stored under a digest they do not hash to.
	f.lieDigest = digest.SHA256.FromString("something else")
	img.manifests[f.lieDigest] = &Manifest{MediaType: ocispec.MediaTypeImageManifest, Data: oci}
	return f
}

func versioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

func newHandlerServer(t *testing.T) (*httptest.Server, *fixture) {
	f := newFixture(t)
	srv := httptest.NewServer(Handler(f.b, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, f
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// errCode returns the first code of a spec error body.
func errCode(body []byte) string { return errorCode(body) }

func TestHandler(t *testing.T) {
	srv, f := newHandlerServer(t)
	ollama := f.b.repos["library/tiny"].manifests[f.ollamaDigest].Data
	oci := f.b.repos["org/multi"].manifests[f.ociDigest].Data
	docker := map[string]string{"Accept": MediaTypeDockerManifest}
	ociOnly := map[string]string{"Accept": ocispec.MediaTypeImageManifest}
	blobPath := "/v2/library/tiny/blobs/" + f.ggufDigest.String()
	n := len(f.gguf)
	tests := []struct {
		why     string
		method  string
		path    string
		hdr     map[string]string
		status  int
		code    string            // the error code of the body, if an error
		headers map[string]string // headers the answer must carry
		body    []byte            // the exact body, if set
	}{
		{why: "the base endpoint answers, for clients probing the API version", method: "GET", path: "/v2/", status: 200,
			headers: map[string]string{APIVersionHeader: "registry/2.0"}, body: []byte("{}")},
		{why: "the base endpoint without its slash", method: "GET", path: "/v2", status: 200},
		{why: "Ollama's manifest request: Docker type accepted, exact bytes with their digest", method: "GET", path: "/v2/library/tiny/manifests/latest", hdr: docker, status: 200,
			headers: map[string]string{"Content-Type": MediaTypeDockerManifest, DigestHeader: f.ollamaDigest.String(), "Content-Length": strconv.Itoa(len(ollama))}, body: ollama},
		{why: "HEAD tells type, digest and length without a body", method: "HEAD", path: "/v2/library/tiny/manifests/latest", hdr: docker, status: 200,
			headers: map[string]string{DigestHeader: f.ollamaDigest.String(), "Content-Length": strconv.Itoa(len(ollama))}, body: []byte{}},
		{why: "a manifest by digest", method: "GET", path: "/v2/library/tiny/manifests/" + f.ollamaDigest.String(), hdr: docker, status: 200, body: ollama},
		{why: "no Accept header takes the manifest as stored", method: "GET", path: "/v2/library/tiny/manifests/latest", status: 200, body: ollama},
		{why: "*/* takes it too", method: "GET", path: "/v2/library/tiny/manifests/latest", hdr: map[string]string{"Accept": "text/plain, */*;q=0.1"}, status: 200, body: ollama},
		{why: "a client that takes only OCI manifests does not get a Docker one (bytes cannot change under a digest)", method: "GET", path: "/v2/library/tiny/manifests/latest", hdr: ociOnly, status: 404, code: codeManifestUnknown},
		{why: "q=0 refuses a type", method: "GET", path: "/v2/library/tiny/manifests/latest", hdr: map[string]string{"Accept": MediaTypeDockerManifest + ";q=0, " + ocispec.MediaTypeImageManifest}, status: 404, code: codeManifestUnknown},
		{why: "an index to a client that accepts indexes", method: "GET", path: "/v2/org/multi/manifests/index", hdr: map[string]string{"Accept": ocispec.MediaTypeImageIndex + "," + ocispec.MediaTypeImageManifest}, status: 200,
			headers: map[string]string{"Content-Type": ocispec.MediaTypeImageIndex, DigestHeader: f.indexDigest.String()}},
		{why: "an index by tag to a client that does not: the linux/amd64 manifest in it", method: "GET", path: "/v2/org/multi/manifests/index", hdr: ociOnly, status: 200,
			headers: map[string]string{"Content-Type": ocispec.MediaTypeImageManifest, DigestHeader: f.ociDigest.String()}, body: oci},
		{why: "an index by digest is never swapped for another manifest", method: "GET", path: "/v2/org/multi/manifests/" + f.indexDigest.String(), hdr: ociOnly, status: 404, code: codeManifestUnknown},
		{why: "a list of one manifest for another platform gives that one", method: "GET", path: "/v2/org/multi/manifests/list", hdr: ociOnly, status: 200,
			headers: map[string]string{DigestHeader: f.armDigest.String()}},
		{why: "a list to a client that accepts only Docker manifests has nothing for it", method: "GET", path: "/v2/org/multi/manifests/list", hdr: docker, status: 404, code: codeManifestUnknown},
		{why: "a backend whose bytes do not hash to the digest asked for is not believed", method: "GET", path: "/v2/org/multi/manifests/" + f.lieDigest.String(), status: 500, code: codeUnknown},
		{why: "unknown tag", method: "GET", path: "/v2/library/tiny/manifests/70b", status: 404, code: codeManifestUnknown},
		{why: "unknown repository", method: "GET", path: "/v2/library/none/manifests/latest", status: 404, code: codeNameUnknown},
		{why: "a name with an upper-case letter breaks the spec's pattern", method: "GET", path: "/v2/library/Tiny/manifests/latest", status: 400, code: codeNameInvalid},
		{why: "an over-long name", method: "GET", path: "/v2/" + strings.Repeat("a/", 128) + "b/manifests/latest", status: 400, code: codeNameInvalid},
		{why: "an escaped slash never becomes part of a name", method: "GET", path: "/v2/library%2Ftiny/manifests/latest", status: 400, code: codeNameInvalid},
		{why: "dot-dot is no name component", method: "GET", path: "/v2/library/../tiny/manifests/latest", status: 400, code: codeNameInvalid},
		{why: "a tag may not start with '-'", method: "GET", path: "/v2/library/tiny/manifests/-x", status: 400, code: codeTagInvalid},
		{why: "an over-long tag", method: "GET", path: "/v2/library/tiny/manifests/" + strings.Repeat("t", 129), status: 400, code: codeTagInvalid},
		{why: "sha512 digests are not taken", method: "GET", path: "/v2/library/tiny/manifests/sha512:" + strings.Repeat("ab", 64), status: 400, code: codeDigestInvalid},
		{why: "upper-case hex is not a canonical digest", method: "GET", path: "/v2/library/tiny/blobs/sha256:" + strings.Repeat("AB", 32), status: 400, code: codeDigestInvalid},
		{why: "a short digest", method: "GET", path: "/v2/library/tiny/blobs/sha256:abc", status: 400, code: codeDigestInvalid},
		{why: "a blob: bytes, digest, ranges offered, and the Location Ollama needs", method: "GET", path: blobPath, status: 200,
			headers: map[string]string{DigestHeader: f.ggufDigest.String(), "Accept-Ranges": "bytes", "Location": blobPath, "Content-Length": strconv.Itoa(n), "Content-Type": "application/octet-stream"}, body: f.gguf},
		{why: "HEAD of a blob gives its length (Ollama plans its parts from it)", method: "HEAD", path: blobPath, status: 200,
			headers: map[string]string{"Content-Length": strconv.Itoa(n)}, body: []byte{}},
		{why: "a range", method: "GET", path: blobPath, hdr: map[string]string{"Range": "bytes=2-5"}, status: 206,
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes 2-5/%d", n), "Content-Length": "4"}, body: f.gguf[2:6]},
		{why: "an open-ended range, as resuming clients send", method: "GET", path: blobPath, hdr: map[string]string{"Range": fmt.Sprintf("bytes=%d-", n-3)}, status: 206, body: f.gguf[n-3:]},
		{why: "a suffix range", method: "GET", path: blobPath, hdr: map[string]string{"Range": "bytes=-4"}, status: 206, body: f.gguf[n-4:]},
		{why: "a range past the end", method: "GET", path: blobPath, hdr: map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)}, status: 416,
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", n)}},
		{why: "unknown blob", method: "GET", path: "/v2/library/tiny/blobs/" + digest.SHA256.FromString("x").String(), status: 404, code: codeBlobUnknown},
		{why: "a repository component may be called blobs", method: "GET", path: "/v2/library/blobs/manifests/latest", status: 404, code: codeNameUnknown},
		{why: "push: no uploads", method: "POST", path: "/v2/library/tiny/blobs/uploads/", status: 405, code: codeUnsupported, headers: map[string]string{"Allow": "GET, HEAD"}},
		{why: "push: no manifests", method: "PUT", path: "/v2/library/tiny/manifests/latest", status: 405, code: codeUnsupported},
		{why: "no deletes", method: "DELETE", path: blobPath, status: 405, code: codeUnsupported},
		{why: "no catalog", method: "GET", path: "/v2/_catalog", status: 404, code: codeUnsupported},
		{why: "a client over its share waits", method: "GET", path: "/v2/busy/model/manifests/latest", status: 429, code: codeTooMany, headers: map[string]string{"Retry-After": "2"}},
		{why: "a refused model", method: "GET", path: "/v2/denied/model/blobs/" + f.ggufDigest.String(), status: 403, code: codeDenied},
		{why: "a model the policy refuses", method: "GET", path: "/v2/refused/model/manifests/latest", status: 451, code: codeDenied},
		{why: "an upstream failure is a 502 without its details", method: "GET", path: "/v2/broken/model/manifests/latest", status: 502, code: codeUnknown},
		{why: "errors on HEAD carry headers only", method: "HEAD", path: "/v2/library/tiny/manifests/70b", status: 404, body: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get(APIVersionHeader); got != "registry/2.0" {
				t.Errorf("%s: %q", APIVersionHeader, got)
			}
			if tt.code != "" {
				if got := errCode(body); got != tt.code {
					t.Errorf("error code %q, want %q; body %s", got, tt.code, body)
				}
				if bytes.Contains(body, []byte("secret detail")) || bytes.Contains(body, []byte("203.0.113.9")) {
					t.Errorf("the body leaks the backend's error: %s", body)
				}
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body %q, want %q", clip(string(body)), clip(string(tt.body)))
			}
		})
	}
}

func TestHandlerTags(t *testing.T) {
	srv, _ := newHandlerServer(t)
	tests := []struct {
		why    string
		query  string
		status int
		tags   []string
		link   string
	}{
		{"all tags, sorted", "", 200, []string{"1b", "7b", "a", "latest", "q4"}, ""},
		{"a first page links to the next", "?n=2", 200, []string{"1b", "7b"}, `</v2/library/tiny/tags/list?last=7b&n=2>; rel="next"`},
		{"the next page starts after last", "?n=2&last=7b", 200, []string{"a", "latest"}, `</v2/library/tiny/tags/list?last=latest&n=2>; rel="next"`},
		{"the last page has no link", "?n=2&last=latest", 200, []string{"q4"}, ""},
		{"last alone", "?last=a", 200, []string{"latest", "q4"}, ""},
		{"n=0 is an empty list", "?n=0", 200, []string{}, ""},
		{"n past the end", "?n=100", 200, []string{"1b", "7b", "a", "latest", "q4"}, ""},
		{"a negative n", "?n=-1", 400, nil, ""},
		{"n not a number", "?n=two", 400, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/v2/library/tiny/tags/list"+tt.query, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				if errCode(body) != codePageInvalid {
					t.Errorf("body %s", body)
				}
				return
			}
			var got struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Name != "library/tiny" || fmt.Sprint(got.Tags) != fmt.Sprint(tt.tags) || got.Tags == nil {
				t.Errorf("got %s, want tags %v", body, tt.tags)
			}
			if l := resp.Header.Get("Link"); l != tt.link {
				t.Errorf("Link %q, want %q", l, tt.link)
			}
		})
	}
	resp, body := do(t, "GET", srv.URL+"/v2/library/none/tags/list", nil)
	if resp.StatusCode != 404 || errCode(body) != codeNameUnknown {
		t.Errorf("unknown repository: %d %s", resp.StatusCode, body)
	}
}
