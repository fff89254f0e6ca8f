package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// hfClientDir holds the real Hugging Face client (.ci/run installs it with
// npm ci).
func hfClientDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../hfclient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@huggingface", "hub")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@huggingface/hub is not installed in %s: .ci/run must run npm ci there", dir)
		}
		t.Skipf("@huggingface/hub not installed; run: npm ci --prefix %s", dir)
	}
	return dir
}

// tinyRepo writes a small model repository: a config (a plain git file on
// the hub) and weights large enough to be an LFS file.
func tinyRepo(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tiny")
	harness.WriteFile(t, filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama","hidden_size":64}`))
	harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), 12<<20+3, 11)
	harness.WriteFile(t, filepath.Join(dir, "tokenizer", "vocab.txt"), []byte("a\nb\nc\n"))
	return dir
}

func TestHuggingFaceClientThroughMirror(t *testing.T) {
	client := hfClientDir(t)
	src := tinyRepo(t)
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	m.Start()
	m.MustRun("import", src, "--name", "school/tiny", "--license", "mit")
	base := m.MirrorURL(t)

	cache := filepath.Join(t.TempDir(), "hf-cache")
	out := filepath.Join(t.TempDir(), "model.bin")
	cmd := exec.Command("node", filepath.Join(client, "download.mjs"), base, "school/tiny", "main", cache, "model.bin", out)
	cmd.Dir = client
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("@huggingface/hub: %v\n%s", err, res)
	}
	var got struct {
		Snapshot string `json:"snapshot"`
		Size     int64  `json:"size"`
	}
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client output %q: %v", res, err)
	}
	t.Logf("snapshot at %s", got.Snapshot)

	// The snapshot holds the same bytes as the source, through the cache's
	// symlinks to blobs named by ETag.
	for _, rel := range []string{"config.json", "model.bin", "tokenizer/vocab.txt"} {
		if ok, err := harness.FilesEqual(filepath.Join(src, rel), filepath.Join(got.Snapshot, rel)); !ok || err != nil {
			t.Errorf("%s: snapshot differs from the source: %v", rel, err)
		}
	}
	weights, _ := os.ReadFile(filepath.Join(src, "model.bin"))
	sum := sha256.Sum256(weights)
	blob := filepath.Join(cache, "models--school--tiny", "blobs", hex.EncodeToString(sum[:]))
	if _, err := os.Stat(blob); err != nil {
		t.Errorf("LFS blob not named by its sha256: %v", err)
	}
	// The two ranged halves, resumed at the middle, give the whole file.
	if ok, err := harness.FilesEqual(filepath.Join(src, "model.bin"), out); !ok || err != nil {
		t.Errorf("ranged, resumed download differs from the source (%v)", err)
	}
}

func TestFillFromUpstreamMirror(t *testing.T) {
	src := tinyRepo(t)
	up := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	up.Start()
	up.MustRun("import", src, "--name", "school/tiny")
	upURL := up.MirrorURL(t)

	// The school mirror knows no peer: it can only fill from its upstream.
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+upURL, "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)
	want, _ := os.ReadFile(filepath.Join(src, "model.bin"))

	const clients = 5
	var wg sync.WaitGroup
	bodies := make([][]byte, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 60 * time.Second}
			resp, err := c.Get(base + "/school/tiny/resolve/main/model.bin")
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			bodies[i], errs[i] = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || !bytes.Equal(bodies[i], want) {
			t.Errorf("client %d: %d bytes, err %v", i, len(bodies[i]), errs[i])
		}
	}
	downloads := harness.Metric(t, base, "allmende_mirror_upstream_downloads_total")
	t.Logf("%d concurrent clients, %v upstream transfer(s)", clients, downloads)
	if downloads != 1 {
		t.Errorf("upstream transfers = %v, want 1", downloads)
	}
	// The other files fill too; then the revision is kept as a model.
	for _, f := range []string{"config.json", "tokenizer/vocab.txt"} {
		if code, _, _ := harness.MustGet(t, base+"/school/tiny/resolve/main/"+f); code != http.StatusOK {
			t.Errorf("%s: status %d", f, code)
		}
	}
	if !pageLists(t, base, "school/tiny", true) {
		t.Fatal("filled revision never became a model on the mirror's page")
	}
}

// TestFillFromSwarmBySHA256: when a connected peer holds a file with the
// sha256 the upstream declares, the mirror takes it from the peer (checked
// against that sha256) and the upstream sends nothing.
func TestFillFromSwarmBySHA256(t *testing.T) {
	src := tinyRepo(t)
	up := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	up.Start()
	up.MustRun("import", src, "--name", "school/tiny")
	peer := harness.NewNode(t)
	peer.Start()
	peer.MustRun("import", src, "--name", "someone/else")

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.MirrorURL(t), "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	m.MustRun("connect", peer.TCPAddr())
	base := m.MirrorURL(t)
	code, _, body := harness.MustGet(t, base+"/school/tiny/resolve/main/model.bin")
	want, _ := os.ReadFile(filepath.Join(src, "model.bin"))
	if code != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("status %d, %d bytes", code, len(body))
	}
	fromSwarm := harness.Metric(t, base, "allmende_mirror_swarm_fills_total")
	fromUpstream := harness.Metric(t, base, "allmende_mirror_upstream_downloads_total")
	t.Logf("model.bin: %v fill(s) from peers, %v from the upstream", fromSwarm, fromUpstream)
	if fromSwarm != 1 || fromUpstream != 0 {
		t.Errorf("fills from peers = %v, from upstream = %v; want 1 and 0", fromSwarm, fromUpstream)
	}
}
