package hfapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
)

// Limits on what a request may carry.
const (
	// MaxPathsInfo bounds the paths one paths-info request may ask for.
	MaxPathsInfo = 10000
	// maxBody bounds a request body.
	maxBody = 4 << 20
	// defaultBranch is what HEAD and an empty revision mean.
	defaultBranch = "main"
)

// Handler serves the hub API for b. Mount it at the server root: it answers
// /api/{models,datasets}/... and /[datasets/]{org}/{name}/{resolve,raw}/...,
// and 404 for anything else. At debug level log has a line per request.
func Handler(b Backend, log *slog.Logger) http.Handler {
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	for _, p := range []string{"/api/{kind}/{org}/{name}", "/api/{kind}/{org}/{name}/revision/{rev}"} {
		mux.HandleFunc("GET "+p, s.info)
	}
	for _, p := range []string{"/api/{kind}/{org}/{name}/tree/{rev}", "/api/{kind}/{org}/{name}/tree/{rev}/{path...}"} {
		mux.HandleFunc("GET "+p, s.tree)
	}
	mux.HandleFunc("POST /api/{kind}/{org}/{name}/paths-info/{rev}", s.pathsInfo)
	mux.HandleFunc("/", s.file)
	return accessLog(log, mux)
}

// clientTokenKey carries the token a client sent in a context.
type clientTokenKey struct{}

// withClientToken returns ctx carrying the bearer token r sends, if any.
func withClientToken(ctx context.Context, r *http.Request) context.Context {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return ctx
	}
	return context.WithValue(ctx, clientTokenKey{}, strings.TrimSpace(token))
}

// ClientToken is the bearer token the client of a request to Handler sent
// ("" if none), for a Backend to check against its upstream. It must go
// nowhere else.
func ClientToken(ctx context.Context) string {
	t, _ := ctx.Value(clientTokenKey{}).(string)
	return t
}

type server struct {
	b   Backend
	log *slog.Logger
}

func kindOf(plural string) (Kind, bool) {
	switch plural {
	case "models":
		return Model, true
	case "datasets":
		return Dataset, true
	}
	return "", false
}

func normRev(rev string) string {
	if rev == "" || rev == "HEAD" {
		return defaultBranch
	}
	return rev
}

// repo loads the repository a request names, writing the hub's error if
// there is none. A name or revision that breaks the rules of manifest names
// is a 400 before any backend sees it.
func (s *server) repo(w http.ResponseWriter, r *http.Request, kind Kind, name, rev string) *Repo {
	rev, err := ValidRef(name, rev)
	if err != nil {
		s.fail(w, err, "")
		return nil
	}
	repo, err := s.b.Repo(withClientToken(r.Context(), r), kind, name, rev)
	if err != nil {
		s.fail(w, err, "")
		return nil
	}
	return repo
}

// apiRepo loads the repository named by an /api/{kind}/{org}/{name}/...
// route, writing the error (404 for an unknown kind) if there is none.
func (s *server) apiRepo(w http.ResponseWriter, r *http.Request) *Repo {
	kind, ok := kindOf(r.PathValue("kind"))
	if !ok {
		http.NotFound(w, r)
		return nil
	}
	return s.repo(w, r, kind, r.PathValue("org")+"/"+r.PathValue("name"), r.PathValue("rev"))
}

// fail writes an error the way the hub does: status, X-Error-Code and a
// JSON body; headers only for HEAD. Failures of the mirror or its upstream
// are logged and reach the client as their kind only: the details (an
// upstream's address, its answer) stay in the log.
func (s *server) fail(w http.ResponseWriter, err error, commit string) {
	status, code, msg := http.StatusInternalServerError, "", "internal error (the mirror's log has the details)"
	switch {
	case errors.Is(err, ErrBadRequest):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrRepoNotFound):
		status, code, msg = http.StatusUnauthorized, "RepoNotFound", err.Error()
	case errors.Is(err, ErrGated):
		status, code, msg = http.StatusForbidden, "GatedRepo", err.Error()
	case errors.Is(err, ErrRevisionNotFound):
		status, code, msg = http.StatusNotFound, "RevisionNotFound", err.Error()
	case errors.Is(err, ErrEntryNotFound):
		status, code, msg = http.StatusNotFound, "EntryNotFound", err.Error()
	case errors.Is(err, ErrRefused):
		status, code, msg = http.StatusUnavailableForLegalReasons, "Refused", err.Error()
	case errors.Is(err, ErrBusy):
		status, msg = http.StatusTooManyRequests, err.Error()
		w.Header().Set("Retry-After", strconv.Itoa(int(BusyRetryAfter/time.Second)))
	case errors.Is(err, ErrUpstreamTimeout):
		status, msg = http.StatusGatewayTimeout, ErrUpstreamTimeout.Error()+": the upstream sent nothing for too long; try again"
	case errors.Is(err, fsutil.ErrNoSpace):
		status, msg = http.StatusInsufficientStorage, err.Error()
	case errors.Is(err, ErrMismatch):
		status, msg = http.StatusBadGateway, ErrUpstream.Error()+": it sent other bytes than it declared; try again"
	case errors.Is(err, ErrUpstream):
		status, msg = http.StatusBadGateway, ErrUpstream.Error()+" (the mirror's log has the details); try again"
	}
	if status >= 500 {
		s.log.Warn("hub API request failed", "status", status, "err", err)
	}
	h := w.Header()
	if code != "" {
		h.Set("X-Error-Code", code)
	}
	h.Set("X-Error-Message", msg)
	if commit != "" {
		h.Set("X-Repo-Commit", commit)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type lfsInfo struct {
	SHA256      string `json:"sha256,omitempty"`
	OID         string `json:"oid,omitempty"`
	Size        uint64 `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type sibling struct {
	RFilename string   `json:"rfilename"`
	Size      uint64   `json:"size"`
	BlobID    string   `json:"blobId"`
	LFS       *lfsInfo `json:"lfs,omitempty"`
}

// gatedValue is the hub's "gated" field: false, or how access is granted
// ("auto" stands for either kind of grant).
func gatedValue(gated bool) any {
	if gated {
		return "auto"
	}
	return false
}

func (s *server) info(w http.ResponseWriter, r *http.Request) {
	repo := s.apiRepo(w, r)
	if repo == nil {
		return
	}
	siblings := make([]sibling, 0, len(repo.Files))
	for _, f := range repo.Files {
		sb := sibling{RFilename: f.Path, Size: f.Size, BlobID: f.GitOID()}
		if f.LFS() {
			sb.LFS = &lfsInfo{SHA256: f.SHA256, Size: f.Size, PointerSize: len(f.Pointer())}
		}
		siblings = append(siblings, sb)
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	writeJSON(w, http.StatusOK, map[string]any{
		"_id":          repo.Commit[:24],
		"id":           repo.Name,
		"modelId":      repo.Name,
		"author":       strings.SplitN(repo.Name, "/", 2)[0],
		"sha":          repo.Commit,
		"lastModified": repo.LastModified.UTC().Format(time.RFC3339),
		"private":      false,
		"gated":        gatedValue(repo.Gated),
		"disabled":     false,
		"downloads":    0,
		"likes":        0,
		"tags":         licenseTags(repo.License),
		"siblings":     siblings,
		"cardData":     map[string]any{"license": repo.License},
	})
}

func licenseTags(license string) []string {
	if license == "" {
		return []string{}
	}
	return []string{"license:" + license}
}

// treeEntry is one entry of a tree or paths-info answer.
type treeEntry struct {
	Type string   `json:"type"`
	OID  string   `json:"oid"`
	Size uint64   `json:"size"`
	Path string   `json:"path"`
	LFS  *lfsInfo `json:"lfs,omitempty"`
}

func fileEntry(f File) treeEntry {
	e := treeEntry{Type: "file", OID: f.GitOID(), Size: f.Size, Path: f.Path}
	if f.LFS() {
		e.LFS = &lfsInfo{OID: f.SHA256, Size: f.Size, PointerSize: len(f.Pointer())}
	}
	return e
}

func dirEntry(commit, p string) treeEntry {
	// allmende keeps no git trees; a stable stand-in id per commit and path.
	return treeEntry{Type: "directory", OID: manifest.GitBlobSHA1([]byte("tree " + commit + " " + p)), Path: p}
}

// entries lists what lies under dir ("" for the root): direct children, or
// everything below when recursive.
func entries(repo *Repo, dir string, recursive bool) []treeEntry {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	dirs := map[string]bool{}
	var out []treeEntry
	for _, f := range repo.Files {
		rest, ok := strings.CutPrefix(f.Path, prefix)
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		for i := 1; i < len(parts); i++ {
			if !recursive && i > 1 {
				break
			}
			d := prefix + strings.Join(parts[:i], "/")
			if !dirs[d] {
				dirs[d] = true
				out = append(out, dirEntry(repo.Commit, d))
			}
		}
		if recursive || len(parts) == 1 {
			out = append(out, fileEntry(f))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func isDir(repo *Repo, p string) bool {
	for _, f := range repo.Files {
		if strings.HasPrefix(f.Path, p+"/") {
			return true
		}
	}
	return false
}

func findFile(repo *Repo, p string) (File, bool) {
	for _, f := range repo.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

func truthy(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes":
		return true
	}
	return false
}

func (s *server) tree(w http.ResponseWriter, r *http.Request) {
	repo := s.apiRepo(w, r)
	if repo == nil {
		return
	}
	dir := strings.Trim(r.PathValue("path"), "/")
	if dir != "" && !isDir(repo, dir) {
		s.fail(w, ErrEntryNotFound, repo.Commit)
		return
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	writeJSON(w, http.StatusOK, entries(repo, dir, truthy(r.URL.Query().Get("recursive"))))
}

func (s *server) pathsInfo(w http.ResponseWriter, r *http.Request) {
	repo := s.apiRepo(w, r)
	if repo == nil {
		return
	}
	paths, err := requestedPaths(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := []treeEntry{}
	for _, p := range paths {
		p = strings.Trim(p, "/")
		if f, ok := findFile(repo, p); ok {
			out = append(out, fileEntry(f))
		} else if isDir(repo, p) {
			out = append(out, dirEntry(repo.Commit, p))
		}
	}
	w.Header().Set("X-Repo-Commit", repo.Commit)
	writeJSON(w, http.StatusOK, out)
}

// requestedPaths reads paths-info's paths from a JSON or form body.
func requestedPaths(r *http.Request) ([]string, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	var paths []string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Paths []string `json:"paths"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, errors.New("paths-info: bad JSON body")
		}
		paths = body.Paths
	} else {
		if err := r.ParseForm(); err != nil {
			return nil, errors.New("paths-info: bad form body")
		}
		paths = r.PostForm["paths"]
	}
	if len(paths) > MaxPathsInfo {
		return nil, errors.New("paths-info: too many paths")
	}
	return paths, nil
}

// fileRequest is a parsed /[datasets/]{org}/{name}/{resolve,raw}/{rev}/{path}.
type fileRequest struct {
	kind          Kind
	name, op, rev string
	path          string
}

// parseFileRequest splits an escaped URL path into its parts; revisions
// may contain %2F. The file path must pass manifest.ValidatePath.
func parseFileRequest(escaped string) (fileRequest, bool) {
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	req := fileRequest{kind: Model}
	if len(segs) > 0 && segs[0] == "datasets" {
		req.kind, segs = Dataset, segs[1:]
	}
	if len(segs) < 5 || (segs[2] != "resolve" && segs[2] != "raw") {
		return req, false
	}
	un := make([]string, len(segs))
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" || u == "." || u == ".." || strings.ContainsAny(u, "\x00") {
			return req, false
		}
		un[i] = u
	}
	req.name, req.op, req.rev = un[0]+"/"+un[1], un[2], un[3]
	req.path = strings.Join(un[4:], "/")
	return req, manifest.ValidatePath(req.path) == nil
}

func (s *server) file(w http.ResponseWriter, r *http.Request) {
	req, ok := parseFileRequest(r.URL.EscapedPath())
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	repo := s.repo(w, r, req.kind, req.name, req.rev)
	if repo == nil {
		return
	}
	f, ok := findFile(repo, req.path)
	if !ok {
		s.fail(w, ErrEntryNotFound, repo.Commit)
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", repo.Commit)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	if req.op == "raw" && f.LFS() {
		h.Set("ETag", `"`+f.GitOID()+`"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(f.Pointer()))
		return
	}
	h.Set("ETag", `"`+f.ETag()+`"`)
	h.Set("X-Linked-Size", strconv.FormatUint(f.Size, 10))
	if f.LFS() {
		h.Set("X-Linked-Etag", `"`+f.SHA256+`"`)
	}
	rc, err := s.b.Open(withClientToken(r.Context(), r), repo, f)
	if err != nil {
		s.fail(w, err, repo.Commit)
		return
	}
	defer rc.Close()
	http.ServeContent(w, r, "", time.Time{}, rc)
}
