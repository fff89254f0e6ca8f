package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/test/harness"
)

// PyEnvVar names the virtualenv holding the Python Hugging Face stack
// (test/pyclient/requirements.txt); .ci/run installs it with
// test/pyclient/install.sh and sets the variable.
const PyEnvVar = "ALLMENDE_PYENV"

// The tiny model and dataset test/pyclient/hfclient.py writes, as the
// mirror names them.
const (
	pyModel   = "school/tiny-gpt2"
	pyDataset = "school/poems"
)

// pyWeights is the model's one file the hub keeps in Git LFS (by its
// extension); the others are small git files.
const pyWeights = "model.safetensors"

// pyStack runs the real Python clients: test/pyclient/hfclient.py and the
// hf CLI, from the virtualenv named by PyEnvVar.
type pyStack struct {
	t              *testing.T
	python, hf     string
	script, hfHome string
}

// pythonStack finds the virtualenv, skipping the test without it (failing
// under CI, whose .ci/run installs it).
func pythonStack(t *testing.T) *pyStack {
	t.Helper()
	dir := os.Getenv(PyEnvVar)
	p := &pyStack{t: t, python: filepath.Join(dir, "bin", "python"), hf: filepath.Join(dir, "bin", "hf"), hfHome: t.TempDir()}
	_, errPy := os.Stat(p.python)
	_, errHF := os.Stat(p.hf)
	if dir == "" || errPy != nil || errHF != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Python Hugging Face stack is not installed: .ci/run must run test/pyclient/install.sh DIR and set %s=DIR", PyEnvVar)
		}
		t.Skipf("Python Hugging Face stack not installed; run test/pyclient/install.sh DIR and set %s=DIR", PyEnvVar)
	}
	script, err := filepath.Abs("../pyclient/hfclient.py")
	if err != nil {
		t.Fatal(err)
	}
	p.script = script
	return p
}

// env is the environment of one client run: the mirror (or any endpoint)
// as HF_ENDPOINT, cache as HF_HUB_CACHE, and offline mode on or off. HF_HOME
// is the test's, so no token or setting of the user's takes part.
func (p *pyStack) env(endpoint, cache string, offline bool) []string {
	off := "0"
	if offline {
		off = "1"
	}
	return append(os.Environ(), "HF_ENDPOINT="+endpoint, "HF_HUB_CACHE="+cache, "HF_HUB_OFFLINE="+off,
		"HF_HOME="+p.hfHome, "HF_TOKEN=", "HF_HUB_DISABLE_IMPLICIT_TOKEN=1", "HF_HUB_DISABLE_TELEMETRY=1",
		"HF_HUB_DISABLE_PROGRESS_BARS=1", "TRANSFORMERS_VERBOSITY=error", "NO_COLOR=1")
}

// run runs hfclient.py with args and decodes the JSON it prints into v.
func (p *pyStack) run(env []string, v any, args ...string) {
	p.t.Helper()
	out := p.exec(env, p.python, append([]string{p.script}, args...)...)
	if err := json.Unmarshal([]byte(lastLine(out)), v); err != nil {
		p.t.Fatalf("hfclient.py %s: output %q: %v", strings.Join(args, " "), out, err)
	}
}

// cli runs the hf command line tool.
func (p *pyStack) cli(env []string, args ...string) {
	p.t.Helper()
	p.exec(env, p.hf, args...)
}

func (p *pyStack) exec(env []string, prog string, args ...string) string {
	p.t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(prog), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestPythonHuggingFaceStack drives huggingface_hub, its hf CLI,
// transformers, tokenizers and safetensors against a mirror: downloads of
// every kind, metadata, offline loads from the cache they fill and from
// one `allmende fetch --hf-cache` writes, a dataset, and a broken download
// resumed with a Range request. Every file is compared byte for byte with
// the one the reference libraries wrote.
func TestPythonHuggingFaceStack(t *testing.T) {
	py := pythonStack(t)
	src := filepath.Join(t.TempDir(), "tiny-gpt2")
	var model struct {
		Files []string `json:"files"`
		IDs   []int    `json:"ids"`
	}
	py.run(py.env("", t.TempDir(), true), &model, "make-model", src)
	data := filepath.Join(t.TempDir(), "poems")
	var dataset struct {
		Files []string `json:"files"`
	}
	py.run(py.env("", t.TempDir(), true), &dataset, "make-dataset", data)
	t.Logf("model files %v, dataset files %v", model.Files, dataset.Files)

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_LOG_LEVEL=debug")
	m.Start()
	var imported struct{ Commit string }
	m.JSON(&imported, "import", src, "--name", pyModel, "--license", "mit", "--json")
	m.MustRun("import", data, "--name", pyDataset, "--kind", "dataset")
	base := m.MirrorURL(t)
	commit := imported.Commit

	t.Run("hf download --local-dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		py.cli(py.env(base, t.TempDir(), false), "download", pyModel, "--local-dir", dir, "-q")
		assertLocalDir(t, src, dir, model.Files)
	})

	t.Run("hf download --include", func(t *testing.T) {
		for _, c := range []struct {
			why  string
			args []string
			want []string
		}{
			{"one pattern", []string{"--include", "*.json"}, []string{"config.json", "tokenizer.json", "tokenizer_config.json"}},
			{"several patterns, the flag repeated", []string{"--include", "*.safetensors", "--include", "docs/*"}, []string{"docs/notes.md", "model.safetensors"}},
			{"include and exclude", []string{"--include", "*.json", "--exclude", "tokenizer*"}, []string{"config.json"}},
		} {
			dir := filepath.Join(t.TempDir(), "out")
			py.cli(py.env(base, t.TempDir(), false), append([]string{"download", pyModel, "--local-dir", dir, "-q"}, c.args...)...)
			assertLocalDir(t, src, dir, c.want)
		}
	})

	snapshotCache := t.TempDir()
	t.Run("snapshot_download", func(t *testing.T) {
		var got struct{ Path string }
		py.run(py.env(base, snapshotCache, false), &got, "snapshot", pyModel)
		if want := filepath.Join(snapshotCache, "models--school--tiny-gpt2", "snapshots", commit); got.Path != want {
			t.Errorf("snapshot at %s, want %s", got.Path, want)
		}
		assertHFCache(t, src, snapshotCache, model.Files, commit)
	})

	t.Run("hf_hub_download by file, branch and commit", func(t *testing.T) {
		cache := t.TempDir()
		for _, c := range []struct{ path, rev string }{
			{"config.json", ""}, {"tokenizer.json", "main"}, {"model.safetensors", commit}, {"docs/notes.md", commit},
		} {
			args := []string{"file", pyModel, c.path}
			if c.rev != "" {
				args = append(args, "--revision", c.rev)
			}
			var got struct{ Path string }
			py.run(py.env(base, cache, false), &got, args...)
			if want := filepath.Join(cache, "models--school--tiny-gpt2", "snapshots", commit, c.path); got.Path != want {
				t.Errorf("%s@%q at %s, want %s", c.path, c.rev, got.Path, want)
			}
			if ok, err := harness.FilesEqual(filepath.Join(src, c.path), got.Path); !ok || err != nil {
				t.Errorf("%s@%q differs from the source (%v)", c.path, c.rev, err)
			}
		}
	})

	t.Run("model_info files_metadata", func(t *testing.T) {
		var info struct {
			ID, SHA  string
			Siblings []struct {
				RFilename string `json:"rfilename"`
				Size      int64  `json:"size"`
				BlobID    string `json:"blob_id"`
				LFS       *struct {
					SHA256      string `json:"sha256"`
					Size        int64  `json:"size"`
					PointerSize int    `json:"pointer_size"`
				} `json:"lfs"`
			}
		}
		py.run(py.env(base, t.TempDir(), false), &info, "info", pyModel)
		if info.ID != pyModel || info.SHA != commit || len(info.Siblings) != len(model.Files) {
			t.Fatalf("model_info = %+v, want %s at %s with %d files", info, pyModel, commit, len(model.Files))
		}
		for _, s := range info.Siblings {
			want := expectFile(t, src, s.RFilename)
			if s.Size != want.size || s.BlobID != want.gitOID || (s.LFS != nil) != want.lfs {
				t.Errorf("%s: size %d, blob id %s, lfs %v; want %d, %s, %v", s.RFilename, s.Size, s.BlobID, s.LFS != nil, want.size, want.gitOID, want.lfs)
			}
			if s.LFS != nil && (s.LFS.SHA256 != want.etag || s.LFS.Size != want.size || s.LFS.PointerSize != len(want.pointer)) {
				t.Errorf("%s: lfs %+v, want sha256 %s, size %d, pointer size %d", s.RFilename, *s.LFS, want.etag, want.size, len(want.pointer))
			}
		}
	})

	t.Run("get_hf_file_metadata", func(t *testing.T) {
		for _, c := range []struct{ path, rev string }{{"config.json", "main"}, {"model.safetensors", "main"}, {"tokenizer.json", commit}} {
			var md struct {
				ETag   string `json:"etag"`
				Size   int64  `json:"size"`
				Commit string `json:"commit_hash"`
				Xet    bool   `json:"xet"`
			}
			py.run(py.env(base, t.TempDir(), false), &md, "metadata", pyModel, c.path, "--revision", c.rev)
			want := expectFile(t, src, c.path)
			if md.ETag != want.etag || md.Size != want.size || md.Commit != commit || md.Xet {
				t.Errorf("%s@%s: %+v, want etag %s, size %d, commit %s, no Xet", c.path, c.rev, md, want.etag, want.size, commit)
			}
		}
	})

	t.Run("errors as the hub names them", func(t *testing.T) {
		cache := t.TempDir()
		for _, c := range []struct{ why, repo, path, rev, want string }{
			{"a missing file", pyModel, "nope.json", "", "RemoteEntryNotFoundError"},
			{"a revision the mirror does not hold", pyModel, "config.json", "nope", "RevisionNotFoundError"},
			{"a repository the mirror does not hold", "school/nope", "config.json", "", "RepositoryNotFoundError"},
			{"a dataset asked for as a model", pyDataset, "README.md", "", "RepositoryNotFoundError"},
		} {
			args := []string{"error", c.repo, c.path}
			if c.rev != "" {
				args = append(args, "--revision", c.rev)
			}
			var got struct{ Error, Message string }
			py.run(py.env(base, cache, false), &got, args...)
			if got.Error != c.want {
				t.Errorf("%s: hf_hub_download raised %s (%s), want %s", c.why, got.Error, got.Message, c.want)
			}
		}
		// A missing file is known missing at the commit the 404 names.
		if _, err := os.Stat(filepath.Join(cache, "models--school--tiny-gpt2", ".no_exist", commit, "nope.json")); err != nil {
			t.Errorf("no .no_exist marker for the missing file: %v", err)
		}
	})

	t.Run("offline: transformers and safetensors load from the cache", func(t *testing.T) {
		loadOffline(t, py, snapshotCache, src, model.IDs)
	})

	t.Run("online: transformers loads through the mirror", func(t *testing.T) {
		cache := t.TempDir()
		load(t, py, py.env(base, cache, false), src, model.IDs)
		// The optional files transformers probes for get 404 EntryNotFound
		// and huggingface_hub records them as missing at the commit.
		noExist, _ := os.ReadDir(filepath.Join(cache, "models--school--tiny-gpt2", ".no_exist", commit))
		var probed []string
		for _, e := range noExist {
			probed = append(probed, e.Name())
			if slices.Contains(model.Files, e.Name()) {
				t.Errorf(".no_exist marks %s, which the repository has", e.Name())
			}
		}
		t.Logf("transformers probed for the missing %v", probed)
		if len(probed) == 0 {
			t.Errorf("no .no_exist markers: the mirror's 404s were not taken as missing entries")
		}
	})

	t.Run("allmende fetch --hf-cache DIR on a second node", func(t *testing.T) {
		m.MustRun("publish", pyModel)
		b := harness.NewNode(t)
		b.Start()
		b.MustRun("trust", "add", strings.TrimSpace(m.MustRun("trust", "key")))
		b.MustRun("connect", m.TCPAddr())
		cache := t.TempDir()
		b.MustRun("fetch", pyModel, "--hf-cache", cache)
		assertHFCache(t, src, cache, model.Files, commit)
		scanCache(t, py, src, cache, model.Files, commit)
		cachedTree(t, py, src, cache, model.Files)
		loadOffline(t, py, cache, src, model.IDs)

		// --hf-cache alone before the name: $HF_HUB_CACHE; --include with
		// several patterns after it, as hf download takes them.
		cache = t.TempDir()
		b.Env = append(b.Env, "HF_HUB_CACHE="+cache)
		b.MustRun("fetch", "--hf-cache", "--include", "*.json", "docs/*", pyModel)
		some := []string{"config.json", "docs/notes.md", "tokenizer.json", "tokenizer_config.json"}
		assertHFCache(t, src, cache, some, commit)
		cachedTree(t, py, src, cache, model.Files) // the whole commit's tree, whatever the snapshot holds
		var links []string
		for p, kind := range harness.TreeDigest(t, filepath.Join(cache, "models--school--tiny-gpt2", "snapshots", commit)) {
			if kind != "dir" {
				links = append(links, filepath.ToSlash(p))
			}
		}
		slices.Sort(links)
		if !slices.Equal(links, some) {
			t.Errorf("snapshot holds %v, want only %v", links, some)
		}
	})

	t.Run("hf download --repo-type dataset, as the web page shows it", func(t *testing.T) {
		_, _, page := harness.MustGet(t, base+"/")
		shown := regexp.MustCompile(`HF_ENDPOINT=(\S+) hf download --repo-type dataset ` + pyDataset + `<`).FindSubmatch(page)
		if shown == nil {
			t.Fatalf("the web page shows no hf download line for %s:\n%s", pyDataset, page)
		}
		dir := filepath.Join(t.TempDir(), "out")
		py.cli(py.env(string(shown[1]), t.TempDir(), false), "download", "--repo-type", "dataset", pyDataset, "--local-dir", dir, "-q")
		assertLocalDir(t, data, dir, dataset.Files)
	})

	t.Run("a broken hf_hub_download resumes with a Range request", func(t *testing.T) {
		weights := filepath.Join(src, pyWeights)
		st, err := os.Stat(weights)
		if err != nil {
			t.Fatal(err)
		}
		// huggingface_hub writes a download in 10 MiB chunks and resumes
		// from the last one written: cut past the first.
		proxy := newCuttingProxy(t, strings.TrimPrefix(base, "http://"), st.Size()*3/4)
		var got struct{ Path string }
		py.run(py.env("http://"+proxy.addr(), t.TempDir(), false), &got, "file", pyModel, "model.safetensors")
		if ok, err := harness.FilesEqual(weights, got.Path); !ok || err != nil {
			t.Errorf("resumed download differs from the source (%v)", err)
		}
		if n := proxy.cuts.Load(); n != 1 {
			t.Fatalf("the proxy cut %d connections, want 1", n)
		}
		from, sent, ok := rangeRequest(m.Log(), "/"+pyModel+"/resolve/main/model.safetensors")
		t.Logf("cut after %d bytes; the mirror answered Range bytes=%d- with %d bytes", proxy.after, from, sent)
		if !ok || from <= 0 || from+sent != st.Size() {
			t.Errorf("no Range request completing the file in the mirror's log (from %d, %d bytes, size %d):\n%s", from, sent, st.Size(), m.Log())
		}
	})
}

// expected is what the hub says about one file of a source directory.
type expected struct {
	size    int64
	lfs     bool
	etag    string // sha256 for LFS files, git blob sha1 otherwise
	gitOID  string // git blob sha1 of what git holds: the file or its LFS pointer
	pointer string
}

func expectFile(t *testing.T, src, rel string) expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(src, rel))
	if err != nil {
		t.Fatal(err)
	}
	e := expected{size: int64(len(b)), lfs: rel == pyWeights, etag: manifest.GitBlobSHA1(b), gitOID: manifest.GitBlobSHA1(b)}
	if e.lfs {
		e.etag = fileSHA256(t, filepath.Join(src, rel))
		e.pointer = fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", e.etag, e.size)
		e.gitOID = manifest.GitBlobSHA1([]byte(e.pointer))
	}
	return e
}

// assertLocalDir checks that dir (an hf download --local-dir) holds exactly
// the files want, each with the bytes it has in src; the client's own
// bookkeeping under .cache/ aside.
func assertLocalDir(t *testing.T, src, dir string, want []string) {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".cache" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
	for _, rel := range got {
		if ok, err := harness.FilesEqual(filepath.Join(src, rel), filepath.Join(dir, rel)); !ok || err != nil {
			t.Errorf("%s differs from the source (%v)", rel, err)
		}
	}
}

// assertHFCache checks the model's repository in cache as huggingface_hub
// lays it out: refs/main holding the commit, snapshots/<commit>/<path> a
// relative link to blobs/<etag>, the etag the sha256 for LFS files and the
// git blob sha1 for others, and every file's bytes those of the source.
func assertHFCache(t *testing.T, src, cache string, files []string, commit string) {
	t.Helper()
	repo := filepath.Join(cache, "models--school--tiny-gpt2")
	if ref, err := os.ReadFile(filepath.Join(repo, "refs", "main")); err != nil || string(ref) != commit {
		t.Errorf("refs/main = %q (%v), want %s", ref, err, commit)
	}
	for _, rel := range files {
		link := filepath.Join(repo, "snapshots", commit, filepath.FromSlash(rel))
		target, err := os.Readlink(link)
		want := strings.Repeat("../", 2+strings.Count(rel, "/")) + "blobs/" + expectFile(t, src, rel).etag
		if err != nil || target != want {
			t.Errorf("snapshots/<commit>/%s -> %q (%v), want %s", rel, target, err, want)
		}
		if ok, err := harness.FilesEqual(filepath.Join(src, rel), link); !ok || err != nil {
			t.Errorf("%s: cached bytes differ from the source (%v)", rel, err)
		}
	}
}

// loadOffline loads the model with transformers and safetensors from
// cache with HF_HUB_OFFLINE=1 and HF_ENDPOINT pointing at a listener that
// counts connections: the loads must succeed (see load) and open no
// connection.
func loadOffline(t *testing.T, py *pyStack, cache, src string, wantIDs []int) {
	t.Helper()
	spy := newCountingListener(t)
	load(t, py, py.env("http://"+spy.addr(), cache, true), src, wantIDs)
	if n := spy.conns.Load(); n != 0 {
		t.Errorf("offline loads opened %d connections to HF_ENDPOINT", n)
	}
}

// load loads the model with transformers and safetensors in env: the
// config must be the GPT-2 one, the tokenizer must tokenize as the original
// does, and the weights must be the originals.
func load(t *testing.T, py *pyStack, env []string, src string, wantIDs []int) {
	t.Helper()
	var got struct {
		ModelType string `json:"model_type"`
		NEmbd     int    `json:"n_embd"`
		IDs       []int  `json:"ids"`
		WantIDs   []int  `json:"want_ids"`
		Tensors   int    `json:"tensors"`
		Equal     bool   `json:"weights_equal"`
	}
	py.run(env, &got, "load", pyModel, src)
	if got.ModelType != "gpt2" || got.NEmbd == 0 {
		t.Errorf("AutoConfig: model_type %q, n_embd %d", got.ModelType, got.NEmbd)
	}
	if len(got.IDs) == 0 || !slices.Equal(got.IDs, got.WantIDs) || !slices.Equal(got.IDs, wantIDs) {
		t.Errorf("AutoTokenizer ids %v, the original tokenizer's %v (when written %v)", got.IDs, got.WantIDs, wantIDs)
	}
	if !got.Equal || got.Tensors == 0 {
		t.Errorf("safetensors: %d tensors, equal to the originals: %v", got.Tensors, got.Equal)
	}
}

// scanCache checks what huggingface_hub.scan_cache_dir() reports for cache:
// the model once, its commit with the ref main, every file with its size,
// and no warning about anything it could not read.
func scanCache(t *testing.T, py *pyStack, src, cache string, files []string, commit string) {
	t.Helper()
	var scan struct {
		Repos []struct {
			RepoID    string `json:"repo_id"`
			RepoType  string `json:"repo_type"`
			NbFiles   int    `json:"nb_files"`
			Size      int64  `json:"size_on_disk"`
			Revisions []struct {
				Commit string           `json:"commit"`
				Refs   []string         `json:"refs"`
				Files  map[string]int64 `json:"files"`
			} `json:"revisions"`
		} `json:"repos"`
		Warnings []string `json:"warnings"`
	}
	py.run(py.env("", cache, true), &scan, "scan")
	if len(scan.Warnings) > 0 || len(scan.Repos) != 1 || len(scan.Repos[0].Revisions) != 1 {
		t.Fatalf("scan_cache_dir = %+v", scan)
	}
	r, rev := scan.Repos[0], scan.Repos[0].Revisions[0]
	var total int64
	want := map[string]int64{}
	for _, rel := range files {
		want[rel] = expectFile(t, src, rel).size
		total += want[rel]
	}
	if r.RepoID != pyModel || r.RepoType != "model" || r.NbFiles != len(files) || r.Size != total {
		t.Errorf("scan_cache_dir repo %s (%s), %d files, %d bytes; want %s, model, %d, %d", r.RepoID, r.RepoType, r.NbFiles, r.Size, pyModel, len(files), total)
	}
	if rev.Commit != commit || !slices.Equal(rev.Refs, []string{"main"}) || fmt.Sprint(rev.Files) != fmt.Sprint(want) {
		t.Errorf("scan_cache_dir revision %s refs %v files %v; want %s, [main], %v", rev.Commit, rev.Refs, rev.Files, commit, want)
	}
}

// cachedTree checks huggingface_hub.get_cached_repo_tree() for the model in
// cache, offline: it reads trees/<commit>.json, which must list every file
// of the commit with its size and git blob id.
func cachedTree(t *testing.T, py *pyStack, src, cache string, files []string) {
	t.Helper()
	var got struct {
		Files map[string]struct {
			Size int64  `json:"size"`
			OID  string `json:"oid"`
		} `json:"files"`
	}
	py.run(py.env("", cache, true), &got, "tree", pyModel)
	if len(got.Files) != len(files) {
		t.Errorf("get_cached_repo_tree: %d files, want %d: %+v", len(got.Files), len(files), got.Files)
	}
	for _, rel := range files {
		want := expectFile(t, src, rel)
		if e := got.Files[rel]; e.Size != want.size || e.OID != want.gitOID {
			t.Errorf("get_cached_repo_tree %s: %+v, want size %d, blob id %s", rel, e, want.size, want.gitOID)
		}
	}
}

// rangeRequestRE matches the mirror's access log line of a resumed GET.
var rangeRequestRE = regexp.MustCompile(`msg="hub API request" method=GET path=(\S+) range="bytes=(\d+)-" status=206 bytes=(\d+)`)

// rangeRequest finds in a mirror's log a GET of path answered 206 to an
// open-ended Range, and returns where it started and the bytes sent.
func rangeRequest(log, path string) (from, sent int64, ok bool) {
	for _, m := range rangeRequestRE.FindAllStringSubmatch(log, -1) {
		if m[1] == path {
			from, _ = strconv.ParseInt(m[2], 10, 64)
			sent, _ = strconv.ParseInt(m[3], 10, 64)
			return from, sent, true
		}
	}
	return 0, 0, false
}

// cuttingProxy forwards TCP connections on 127.0.0.1 to target, and closes
// the first one to carry more than after bytes towards the client once it
// has forwarded exactly after bytes: a download broken midway, as a flaky
// network breaks it.
type cuttingProxy struct {
	ln     net.Listener
	target string
	after  int64
	cuts   atomic.Int32
	wg     sync.WaitGroup
}

func newCuttingProxy(t *testing.T, target string, after int64) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target, after: after}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cuttingProxy) addr() string { return p.ln.Addr().String() }

func (p *cuttingProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(client)
		}()
	}
}

func (p *cuttingProxy) forward(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		io.Copy(server, client)
		server.(*net.TCPConn).CloseWrite()
	}()
	n, err := io.CopyN(client, server, p.after)
	if err != nil || n < p.after {
		return // the connection ended before it carried that much
	}
	var one [1]byte
	if _, err := io.ReadFull(server, one[:]); err == nil && p.cuts.CompareAndSwap(0, 1) {
		return // more was coming: cut here
	} else if err == nil {
		client.Write(one[:])
	}
	io.Copy(client, server)
}

// countingListener accepts connections on 127.0.0.1, counts and closes
// them: an HF_ENDPOINT that shows whether a client tried the network.
type countingListener struct {
	ln    net.Listener
	conns atomic.Int32
}

func newCountingListener(t *testing.T) *countingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return c
}

func (c *countingListener) addr() string { return c.ln.Addr().String() }
