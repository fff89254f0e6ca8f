package hfapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
)

// memBackend is an in-memory Backend: one repository per kind and name, one
// revision "main".
type memBackend struct {
	repos   map[string]*Repo
	content map[string][]byte // by File.Ref
}

func (m *memBackend) Repo(_ context.Context, kind Kind, name, rev string) (*Repo, error) {
	r, ok := m.repos[string(kind)+":"+name]
	if !ok {
		return nil, ErrRepoNotFound
	}
	if rev != r.Revision && rev != r.Commit {
		return nil, ErrRevisionNotFound
	}
	return r, nil
}

func (m *memBackend) Open(_ context.Context, _ *Repo, f File) (io.ReadSeekCloser, error) {
	return nopCloser{bytes.NewReader(m.content[f.Ref])}, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

const commit = "0123456789abcdef0123456789abcdef01234567"

// newTestBackend holds org/tiny (a model) and org/data (a dataset), each
// with config.json (a git file, content "c") and weights/model.safetensors
// (LFS, content "w").
func newTestBackend() *memBackend {
	weights := bytes.Repeat([]byte{7, 1, 9}, 1000)
	config := []byte(`{"model_type":"llama"}`)
	sum := sha256.Sum256(weights)
	content := map[string][]byte{"w": weights, "c": config}
	repo := &Repo{Kind: Model, Name: "org/tiny", Revision: "main", Commit: commit, LastModified: time.Unix(1700000000, 0), License: "apache-2.0",
		Files: []File{
			{Path: "config.json", Size: uint64(len(config)), BlobSHA1: manifest.GitBlobSHA1(config), Ref: "c"},
			{Path: "weights/model.safetensors", Size: uint64(len(weights)), SHA256: hex.EncodeToString(sum[:]), Ref: "w"},
		}}
	ds := *repo
	ds.Kind, ds.Name = Dataset, "org/data"
	return &memBackend{repos: map[string]*Repo{"model:org/tiny": repo, "dataset:org/data": &ds}, content: content}
}

func newTestServer(t *testing.T) (*httptest.Server, map[string][]byte) {
	b := newTestBackend()
	srv := httptest.NewServer(Handler(b, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, b.content
}

func do(t *testing.T, method, url string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
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
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestResolve(t *testing.T) {
	srv, content := newTestServer(t)
	w := content["w"]
	sum := sha256.Sum256(w)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	tests := []struct {
		name    string
		method  string
		path    string
		rng     string
		status  int
		body    []byte
		headers map[string]string
	}{
		{"full download of an LFS file carries sha256 ETag and commit", "GET", "/org/tiny/resolve/main/weights/model.safetensors", "", 200, w,
			map[string]string{"ETag": etag, "X-Repo-Commit": commit, "X-Linked-Etag": etag, "X-Linked-Size": "3000", "Accept-Ranges": "bytes", "Content-Length": "3000"}},
		{"JS client probes with bytes=0-0 and needs 206 and Content-Range", "GET", "/org/tiny/resolve/main/weights/model.safetensors", "bytes=0-0", 206, w[:1],
			map[string]string{"Content-Range": "bytes 0-0/3000", "ETag": etag}},
		{"Python resumes with an open range", "GET", "/org/tiny/resolve/main/weights/model.safetensors", "bytes=1000-", 206, w[1000:],
			map[string]string{"Content-Range": "bytes 1000-2999/3000"}},
		{"a range past the end is 416 with the size", "GET", "/org/tiny/resolve/main/weights/model.safetensors", "bytes=5000-", 416, nil,
			map[string]string{"Content-Range": "bytes */3000"}},
		{"HEAD gives the headers Python needs", "HEAD", "/org/tiny/resolve/main/weights/model.safetensors", "", 200, nil,
			map[string]string{"X-Repo-Commit": commit, "ETag": etag, "Content-Length": "3000"}},
		{"a small git file's ETag is its blob sha1", "GET", "/org/tiny/resolve/" + commit + "/config.json", "", 200, content["c"],
			map[string]string{"ETag": `"` + manifest.GitBlobSHA1(content["c"]) + `"`}},
		{"HEAD as revision means main", "GET", "/org/tiny/resolve/HEAD/config.json", "", 200, content["c"], nil},
		{"datasets live under /datasets/", "GET", "/datasets/org/data/resolve/main/config.json", "", 200, content["c"], nil},
		{"raw of an LFS file is its pointer", "GET", "/org/tiny/raw/main/weights/model.safetensors", "", 200,
			[]byte("version https://git-lfs.github.com/spec/v1\noid sha256:" + hex.EncodeToString(sum[:]) + "\nsize 3000\n"), nil},
		{"missing repo is 401 RepoNotFound", "GET", "/org/nope/resolve/main/config.json", "", 401, nil,
			map[string]string{"X-Error-Code": "RepoNotFound"}},
		{"missing revision is 404 RevisionNotFound", "GET", "/org/tiny/resolve/v9/config.json", "", 404, nil,
			map[string]string{"X-Error-Code": "RevisionNotFound"}},
		{"missing file is 404 EntryNotFound with the commit", "HEAD", "/org/tiny/resolve/main/nope.bin", "", 404, nil,
			map[string]string{"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}},
		{"dot-dot never climbs out of a repository", "GET", "/org/tiny/resolve/main/../../../../etc/passwd", "", 404, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.rng != "" {
				hdr["Range"] = tt.rng
			}
			resp, body := do(t, tt.method, srv.URL+tt.path, hdr, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body of %d bytes differs from the %d expected", len(body), len(tt.body))
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestInfoTreeAndPathsInfo(t *testing.T) {
	srv, _ := newTestServer(t)
	var info struct {
		ID       string `json:"id"`
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
			Size      uint64 `json:"size"`
			LFS       *struct {
				SHA256 string `json:"sha256"`
			} `json:"lfs"`
		} `json:"siblings"`
	}
	for _, p := range []string{"/api/models/org/tiny", "/api/models/org/tiny/revision/main", "/api/models/org/tiny/revision/HEAD"} {
		resp, body := do(t, "GET", srv.URL+p, nil, nil)
		if resp.StatusCode != 200 || json.Unmarshal(body, &info) != nil {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
		if info.SHA != commit || info.ID != "org/tiny" || len(info.Siblings) != 2 || info.Siblings[1].LFS == nil || info.Siblings[0].LFS != nil {
			t.Errorf("%s: info = %+v", p, info)
		}
	}

	tests := []struct {
		name  string
		path  string
		paths []string
	}{
		{"top level lists files and directories, not their contents", "/api/models/org/tiny/tree/main", []string{"config.json", "weights"}},
		{"recursive lists everything", "/api/models/org/tiny/tree/main?recursive=True", []string{"config.json", "weights", "weights/model.safetensors"}},
		{"a sub-directory lists its children", "/api/models/org/tiny/tree/main/weights", []string{"weights/model.safetensors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+tt.path, nil, nil)
			var entries []treeEntry
			if resp.StatusCode != 200 || json.Unmarshal(body, &entries) != nil {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Path)
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("paths %v, want %v", got, tt.paths)
			}
		})
	}

	for _, body := range []struct {
		ctype, body string
	}{
		{"application/json", `{"paths":["config.json","weights/model.safetensors","nope"],"expand":true}`},
		{"application/x-www-form-urlencoded", "paths=config.json&paths=weights%2Fmodel.safetensors&paths=nope"},
	} {
		resp, b := do(t, "POST", srv.URL+"/api/models/org/tiny/paths-info/main", map[string]string{"Content-Type": body.ctype}, strings.NewReader(body.body))
		var entries []treeEntry
		if resp.StatusCode != 200 || json.Unmarshal(b, &entries) != nil || len(entries) != 2 {
			t.Fatalf("paths-info (%s): %d %s", body.ctype, resp.StatusCode, b)
		}
		if entries[1].LFS == nil || entries[1].LFS.Size != 3000 || entries[0].LFS != nil {
			t.Errorf("paths-info entries = %+v", entries)
		}
	}
}

// TestFailStatus checks the status each kind of failure gets, so clients
// can tell a full mirror disk (507) or a broken upstream (502) from a bug.
func TestFailStatus(t *testing.T) {
	s := &server{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"repository not found", ErrRepoNotFound, http.StatusUnauthorized},
		{"entry not found", fmt.Errorf("x: %w", ErrEntryNotFound), http.StatusNotFound},
		{"upstream stalled", ErrUpstreamTimeout, http.StatusGatewayTimeout},
		{"upstream sent other bytes", fmt.Errorf("fill: %w", ErrMismatch), http.StatusBadGateway},
		{"mirror disk full", fmt.Errorf("fill: %w", store.ErrNoSpace), http.StatusInsufficientStorage},
		{"a name breaking the rules", fmt.Errorf("x: %w", ErrBadRequest), http.StatusBadRequest},
		{"a client with too many fills", fmt.Errorf("x: %w", ErrBusy), http.StatusTooManyRequests},
		{"a repository the policy refuses", fmt.Errorf("%w: acme/bad: blocked by denylist l.deny (line 1: name:acme/bad)", ErrRefused), http.StatusUnavailableForLegalReasons},
		{"anything else", errors.New("bug"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.fail(w, tt.err, "")
			if w.Code != tt.want {
				t.Errorf("status %d, want %d", w.Code, tt.want)
			}
			if w.Header().Get("X-Error-Message") == "" {
				t.Error("no X-Error-Message")
			}
			if ra := w.Header().Get("Retry-After"); (ra != "") != (tt.want == http.StatusTooManyRequests) {
				t.Errorf("Retry-After %q with status %d", ra, w.Code)
			}
		})
	}
}
