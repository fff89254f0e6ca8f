package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/store/format/formattest"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/test/harness"
)

// bigModelSize is the data section of the "large remote model" whose
// header inspect must read without fetching the weights.
const bigModelSize = 1 << 30

// maxInspectBytes is what inspect of the large model may transfer.
const maxInspectBytes = 1 << 20

// namedModelDir writes a small model with a safetensors file, a GGUF file,
// a config and a nested tokenizer file.
func namedModelDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tiny-llama")
	harness.WriteFile(t, filepath.Join(dir, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"]}`))
	harness.WriteFile(t, filepath.Join(dir, "model.safetensors"), formattest.Safetensors([]formattest.Tensor{
		{Name: "embed", DType: "BF16", Shape: []uint64{64, 32}}, {Name: "norm", DType: "F32", Shape: []uint64{32}},
	}, map[string]string{"format": "pt"}))
	harness.WriteFile(t, filepath.Join(dir, "tiny-Q4_K_M.gguf"), formattest.GGUF("llama", 15, []formattest.Tensor{{Name: "t", Shape: []uint64{16, 4}}}))
	harness.WriteFile(t, filepath.Join(dir, "tokenizer", "tokens.txt"), []byte("<s>\n</s>\n"))
	return dir
}

func fileSHA256(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func TestModelsBetweenDaemons(t *testing.T) {
	src := namedModelDir(t)
	a := harness.NewNode(t)
	a.Start()
	manifestCID := lastLine(a.MustRun("import", src, "--name", "acme/tiny-llama", "--license", "mit"))
	if !strings.HasPrefix(manifestCID, "bafk") {
		t.Fatalf("import printed %q as its last line, want the manifest CID", manifestCID)
	}
	pub := a.MustRun("publish", "acme/tiny-llama")
	key := strings.TrimSpace(a.MustRun("trust", "key"))
	if !strings.Contains(pub, "signed by "+key) {
		t.Fatalf("publish output %q does not name the publisher key %s", pub, key)
	}

	b := harness.NewNode(t)
	b.Start()
	b.MustRun("connect", a.TCPAddr())

	t.Run("an untrusted publisher is refused", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "m")
		r := b.Run("fetch", "acme/tiny-llama", "-o", out)
		if r.Code != 1 || !strings.Contains(r.Stderr, "untrusted publisher") || !strings.Contains(r.Stderr, key) {
			t.Errorf("exit %d, stderr %q: want 1 naming the untrusted key", r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
	})

	b.MustRun("trust", "add", key, "--label", "acme")

	t.Run("fetch by name from a trusted publisher", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "m")
		stdout := b.MustRun("fetch", "acme/tiny-llama", "-o", out)
		if !strings.Contains(stdout, "signed by "+key+", trusted") {
			t.Errorf("fetch output %q does not say who signed", stdout)
		}
		harness.AssertSameTree(t, src, out)
		// The fetched files hold the blocks, at their final paths: the
		// tree was assembled in a partial directory and renamed.
		if rep, code := runVerify(t, b); code != 0 {
			t.Errorf("verify after fetching a model tree: exit %d, %+v", code, rep)
		}
	})

	t.Run("include selects one quantisation", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "m")
		b.MustRun("fetch", "acme/tiny-llama@main", "--include", "*.gguf", "-o", out)
		entries, _ := os.ReadDir(out)
		if len(entries) != 1 || entries[0].Name() != "tiny-Q4_K_M.gguf" {
			t.Errorf("fetched %v, want only the GGUF file", entries)
		}
	})

	t.Run("hf cache layout", func(t *testing.T) {
		cache := t.TempDir()
		b.MustRun("fetch", "acme/tiny-llama", "--hf-cache="+cache, "--exclude", "*.gguf")
		repo := filepath.Join(cache, "models--acme--tiny-llama")
		checkHFCache(t, src, repo)
		t.Run("the real @huggingface/hub client scans it", func(t *testing.T) {
			scanWithHFClient(t, cache, src)
		})

		// The exported cache imports again, keeping name, revision, commit.
		var res struct {
			Name, Revision, Commit, Source string
			Files                          int
		}
		b.JSON(&res, "import", repo, "--json")
		commit, _ := os.ReadFile(filepath.Join(repo, "refs", "main"))
		if res.Name != "acme/tiny-llama" || res.Revision != "main" || res.Commit != string(commit) || res.Files != 3 {
			t.Errorf("re-import of the cache = %+v, want acme/tiny-llama@main, commit %s, 3 files", res, commit)
		}
	})

	t.Run("fetch one file by sha256 on a fresh node", func(t *testing.T) {
		c := harness.NewNode(t)
		c.Start()
		c.MustRun("connect", a.TCPAddr())
		sum := fileSHA256(t, filepath.Join(src, "model.safetensors"))
		out := filepath.Join(t.TempDir(), "model.safetensors")
		c.MustRun("fetch", "sha256:"+sum, "-o", out)
		if got := fileSHA256(t, out); got != sum {
			t.Errorf("fetched file has sha256 %s, want %s", got, sum)
		}
		r := c.Run("fetch", "sha256:"+strings.Repeat("0", 64), "-o", out+".x")
		if r.Code != 1 {
			t.Errorf("unknown sha256: exit %d, want 1", r.Code)
		}
	})

	t.Run("inspect a named model", func(t *testing.T) {
		out := b.MustRun("inspect", "acme/tiny-llama")
		for _, want := range []string{"2 tensors, 2080 parameters", "BF16×1, F32×1", "architecture: llama, quantization: Q4_K_M"} {
			if !strings.Contains(out, want) {
				t.Errorf("inspect output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("a file changed after a no-copy import is not served", func(t *testing.T) {
		p := filepath.Join(src, "tokenizer", "tokens.txt")
		sum := fileSHA256(t, p)
		harness.WriteFile(t, p, []byte("<s>\n</x>\n")) // same size, other bytes
		e := harness.NewNode(t)
		e.Start()
		e.MustRun("connect", a.TCPAddr())
		out := filepath.Join(t.TempDir(), "tokens.txt")
		r := e.Run("fetch", "sha256:"+sum, "-o", out, "--fetch.timeout", "2s")
		if r.Code != 1 {
			t.Errorf("exit %d, stderr %q: want 1 (the block can no longer be read)", r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
	})

	t.Run("a tampered record is refused", func(t *testing.T) {
		rec := filepath.Join(a.Home, "models", "records", "acme--tiny-llama@main.json")
		raw, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(rec, []byte(strings.Replace(string(raw), `"seq":`, `"seq":1`, 1)), 0o644)
		d := harness.NewNode(t)
		d.Start()
		d.MustRun("trust", "add", key)
		d.MustRun("connect", a.TCPAddr())
		out := filepath.Join(t.TempDir(), "m")
		r := d.Run("fetch", "acme/tiny-llama", "-o", out)
		if r.Code != 1 || !strings.Contains(r.Stderr, "refused") || !strings.Contains(r.Stderr, "signature does not verify") {
			t.Errorf("exit %d, stderr %q: want 1 and a clear refusal", r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
	})
}

// checkHFCache walks a cache repository and checks blob names, symlink
// targets and refs/main against the source folder.
func checkHFCache(t *testing.T, src, repo string) {
	t.Helper()
	ref, err := os.ReadFile(filepath.Join(repo, "refs", "main"))
	if err != nil || len(ref) != 40 || strings.HasSuffix(string(ref), "\n") {
		t.Fatalf("refs/main = %q (%v), want a 40-hex commit without newline", ref, err)
	}
	snap := filepath.Join(repo, "snapshots", string(ref))
	want := map[string]string{
		"config.json":          "../../blobs/" + gitBlobSHA1(t, filepath.Join(src, "config.json")),
		"model.safetensors":    "../../blobs/" + fileSHA256(t, filepath.Join(src, "model.safetensors")),
		"tokenizer/tokens.txt": "../../../blobs/" + gitBlobSHA1(t, filepath.Join(src, "tokenizer", "tokens.txt")),
	}
	got := map[string]string{}
	filepath.WalkDir(snap, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink != 0 {
			rel, _ := filepath.Rel(snap, p)
			got[filepath.ToSlash(rel)], _ = os.Readlink(p)
			if ok, err := harness.FilesEqual(p, filepath.Join(src, rel)); !ok || err != nil {
				t.Errorf("%s does not resolve to the source content (%v)", rel, err)
			}
		}
		return nil
	})
	for p, target := range want {
		if got[p] != target {
			t.Errorf("snapshots/<commit>/%s -> %q, want %q", p, got[p], target)
		}
	}
	if len(got) != len(want) {
		t.Errorf("snapshot holds %v, want %v", got, want)
	}
	blobs, _ := os.ReadDir(filepath.Join(repo, "blobs"))
	if len(blobs) != len(want) {
		t.Errorf("blobs/ holds %d entries, want %d", len(blobs), len(want))
	}
}

// scanWithHFClient runs @huggingface/hub's scanCacheDir on cache and checks
// the repository, commit, ref and top-level files it reports (the client
// does not descend into sub-directories of a snapshot).
func scanWithHFClient(t *testing.T, cache, src string) {
	dir := hfClientDir(t)
	cmd := exec.Command("node", filepath.Join(dir, "scancache.mjs"), cache)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scancache.mjs: %v\n%s", err, out)
	}
	var scan struct {
		Repos []struct {
			ID        string `json:"id"`
			Revisions []struct {
				Commit string   `json:"commit"`
				Refs   []string `json:"refs"`
				Files  []struct {
					Name string `json:"name"`
					Blob string `json:"blob"`
				} `json:"files"`
			} `json:"revisions"`
		} `json:"repos"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(out, &scan); err != nil {
		t.Fatalf("scancache.mjs output %q: %v", out, err)
	}
	if len(scan.Warnings) > 0 || len(scan.Repos) != 1 || scan.Repos[0].ID != "acme/tiny-llama" || len(scan.Repos[0].Revisions) != 1 {
		t.Fatalf("scanCacheDir = %s", out)
	}
	rev := scan.Repos[0].Revisions[0]
	ref, _ := os.ReadFile(filepath.Join(cache, "models--acme--tiny-llama", "refs", "main"))
	blobs := map[string]string{}
	for _, f := range rev.Files {
		blobs[f.Name] = f.Blob
	}
	if rev.Commit != string(ref) || len(rev.Refs) != 1 || rev.Refs[0] != "main" ||
		blobs["config.json"] != gitBlobSHA1(t, filepath.Join(src, "config.json")) ||
		blobs["model.safetensors"] != fileSHA256(t, filepath.Join(src, "model.safetensors")) {
		t.Errorf("scanCacheDir = %s", out)
	}
}

func gitBlobSHA1(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.GitBlobSHA1(b)
}

func TestInspectLargeRemoteModel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "big")
	hdr, n := formattest.SafetensorsHeader([]formattest.Tensor{{Name: "w", DType: "F32", Shape: []uint64{bigModelSize / 4}}},
		map[string]string{"format": "pt"})
	harness.WriteFile(t, filepath.Join(dir, "model.safetensors"), hdr)
	if err := os.Truncate(filepath.Join(dir, "model.safetensors"), int64(len(hdr))+int64(n)); err != nil {
		t.Fatal(err)
	}
	a := harness.NewNode(t)
	a.Start()
	a.MustRun("import", dir, "--name", "acme/big")
	a.MustRun("publish", "acme/big")
	key := strings.TrimSpace(a.MustRun("trust", "key"))

	b := harness.NewNode(t)
	b.Start()
	b.MustRun("trust", "add", key)
	b.MustRun("connect", a.TCPAddr())
	if used, _ := a.StoreBytes(); used > 8<<20 {
		t.Errorf("no-copy import of a 1 GiB file used %d bytes of block store", used)
	}
	out := b.MustRun("inspect", "acme/big")
	if !strings.Contains(out, "1 tensors, 268435456 parameters") {
		t.Errorf("inspect output:\n%s", out)
	}
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	received := receivedBytes(out)
	t.Logf("inspect of a %d MiB model on a remote peer: %d bytes received (%d of them blocks: the manifest)",
		bigModelSize>>20, received, st.BytesReceived)
	if received >= maxInspectBytes || st.BytesReceived > received {
		t.Errorf("inspect transferred %d bytes, want < %d", received, maxInspectBytes)
	}
}

// receivedBytes reads "received from peers: N bytes" (blocks and header
// ranges) from inspect's output.
func receivedBytes(out string) uint64 {
	var n uint64
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "received from peers: "); ok {
			for _, c := range strings.TrimSuffix(rest, " bytes") {
				n = n*10 + uint64(c-'0')
			}
		}
	}
	return n
}
