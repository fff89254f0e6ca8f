package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/test/harness"
)

// fakeHub is a Hugging Face-compatible upstream in the test process, on
// 127.0.0.1, with many repositories whose main branch a test can move,
// and whose answers it can hold, redirect or fail.
type fakeHub struct {
	*httptest.Server
	mu    sync.Mutex
	repos map[string]*hubRepo
	// hold makes info answers for a repository wait until it is closed.
	hold map[string]chan struct{}
	// redirect makes resolve answers for a repository redirect to the
	// URL given plus "/" + the file's path.
	redirect map[string]string
	// fail makes every answer for a repository a 500 with this body.
	fail map[string]string
	// gate, if set, may hold a resolve answer before its bytes.
	gate gateFunc
	// requests counts every request; info and resolves count them per
	// repository.
	requests       atomic.Int64
	info, resolves map[string]int
}

// hubRepo is one repository: the files of each commit, and main.
type hubRepo struct {
	main    string
	commits map[string][]fakeFile
}

func newFakeHub(t *testing.T) *fakeHub {
	h := &fakeHub{repos: map[string]*hubRepo{}, hold: map[string]chan struct{}{}, redirect: map[string]string{},
		fail: map[string]string{}, info: map[string]int{}, resolves: map[string]int{}}
	api, files := http.NewServeMux(), http.NewServeMux()
	api.HandleFunc("GET /api/models/{org}/{name}/revision/{rev}", h.serveInfo)
	files.HandleFunc("GET /{org}/{name}/resolve/{rev}/{path...}", h.serveResolve)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if rest, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok { // cdn/{org}/{name}/{commit}/{path...}
			if parts := strings.SplitN(rest, "/", 4); len(parts) == 4 {
				h.serveFile(w, r, parts[0]+"/"+parts[1], parts[2], parts[3])
				return
			}
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.mu.Lock()
		for name, ch := range h.hold {
			close(ch)
			delete(h.hold, name)
		}
		h.gate = nil
		h.mu.Unlock()
		h.CloseClientConnections()
		h.Close()
	})
	return h
}

// push makes files the new main of name and returns its commit.
func (h *fakeHub) push(name string, files ...fakeFile) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[name]
	if r == nil {
		r = &hubRepo{commits: map[string][]fakeFile{}}
		h.repos[name] = r
	}
	sum := sha1.Sum(fmt.Appendf(nil, "%s#%d", name, len(r.commits)))
	r.main = hex.EncodeToString(sum[:])
	r.commits[r.main] = files
	return r.main
}

// files returns name's files at rev (main or a commit), and the commit.
func (h *fakeHub) files(name, rev string) ([]fakeFile, string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.repos[name]
	if r == nil {
		return nil, "", false
	}
	if rev == "main" {
		rev = r.main
	}
	f, ok := r.commits[rev]
	return f, rev, ok
}

// answer counts a request for name in count and applies fail; it reports
// whether the caller should go on.
func (h *fakeHub) answer(w http.ResponseWriter, name string, count map[string]int) bool {
	h.mu.Lock()
	count[name]++
	body, failing := h.fail[name]
	h.mu.Unlock()
	if failing {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(body))
		return false
	}
	return true
}

func (h *fakeHub) count(m map[string]int, name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return m[name]
}

func (h *fakeHub) serveInfo(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("org") + "/" + r.PathValue("name")
	if !h.answer(w, name, h.info) {
		return
	}
	h.mu.Lock()
	hold := h.hold[name]
	h.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	files, commit, ok := h.files(name, r.PathValue("rev"))
	if !ok {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, "no such repository", http.StatusUnauthorized)
		return
	}
	type lfs struct {
		SHA256 string `json:"sha256"`
		Size   int    `json:"size"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		Size      int    `json:"size"`
		BlobID    string `json:"blobId"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	sib := []sibling{}
	for _, f := range files {
		s := sibling{RFilename: f.path, Size: len(f.data), BlobID: manifest.GitBlobSHA1(f.data)}
		if f.lfs {
			s.LFS = &lfs{SHA256: f.sha256(), Size: len(f.data)}
		}
		sib = append(sib, s)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"sha": commit, "id": name, "siblings": sib})
}

func (h *fakeHub) serveResolve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("org") + "/" + r.PathValue("name")
	if !h.answer(w, name, h.resolves) {
		return
	}
	h.mu.Lock()
	to, redirect := h.redirect[name]
	gate := h.gate
	h.mu.Unlock()
	if redirect {
		http.Redirect(w, r, to+"/"+r.PathValue("path"), http.StatusFound)
		return
	}
	if gate != nil {
		gate(r.Context(), name+"/"+r.PathValue("path"), -1)
	}
	h.serveFile(w, r, name, r.PathValue("rev"), r.PathValue("path"))
}

func (h *fakeHub) serveFile(w http.ResponseWriter, r *http.Request, name, rev, path string) {
	files, commit, _ := h.files(name, rev)
	for _, f := range files {
		if f.path == path {
			w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
			w.Header().Set("X-Repo-Commit", commit)
			w.Write(f.data)
			return
		}
	}
	w.Header().Set("X-Error-Code", "EntryNotFound")
	http.Error(w, "no such file", http.StatusNotFound)
}

// modelFiles is a small git file and LFS weights of size bytes, from seed.
func modelFiles(t *testing.T, size int64, seed uint64) []fakeFile {
	p := filepath.Join(t.TempDir(), "w")
	harness.WriteRandomFile(t, p, size, seed)
	weights, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return []fakeFile{
		{path: "config.json", data: fmt.Appendf(nil, `{"model_type":"llama","seed":%d}`, seed)},
		{path: "model.bin", data: weights, lfs: true},
	}
}
