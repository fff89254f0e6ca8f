package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
	"github.com/allmende/allmende/test/ocitools"
)

// ociConcurrentClients is how many clients ask for one blob at once.
const ociConcurrentClients = 6

// ociUpstreamDelay holds each blob request to the test registry, so that
// clients asking at once overlap (no timing is asserted).
const ociUpstreamDelay = 300 * time.Millisecond

// runTool runs an OCI client and returns its stdout, failing the test
// with its output if it fails.
func runTool(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// pushOllamaModel pushes test/oci/push-ollama.sh's tiny Ollama-shaped
// model to reg as ref; it returns the manifest digest and the work folder
// (files/ holds the files pushed, manifest.json the manifest).
func pushOllamaModel(t *testing.T, oras, reg, ref string) (string, string) {
	t.Helper()
	work := t.TempDir()
	script := filepath.Join(repoRoot(t), "test", "oci", "push-ollama.sh")
	out := runTool(t, ocitools.ClientEnv(t, "ORAS="+oras), "bash", script, reg, ref, work)
	return lastLine(out), work
}

// repoRoot is the module's root, two folders above this package.
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkPulls pulls ref with oras and crane through a mirror and compares
// files, manifest and digest with what was pushed.
func checkPulls(t *testing.T, oras, crane, ref, digest, work string) {
	t.Helper()
	env := ocitools.ClientEnv(t)
	out := t.TempDir()
	runTool(t, env, oras, "pull", "--plain-http", "--no-tty", ref, "-o", out)
	for _, f := range []string{"model.gguf", "template", "params", "license"} {
		if ok, err := harness.FilesEqual(filepath.Join(work, "files", f), filepath.Join(out, f)); !ok || err != nil {
			t.Errorf("oras pull %s: %s differs from what was pushed (%v)", ref, f, err)
		}
	}
	if got := strings.TrimSpace(runTool(t, env, crane, "digest", "--insecure", ref)); got != digest {
		t.Errorf("crane digest %s = %s, want %s", ref, got, digest)
	}
	want, _ := os.ReadFile(filepath.Join(work, "manifest.json"))
	if got := runTool(t, env, crane, "manifest", "--insecure", ref); got != string(want) {
		t.Errorf("crane manifest %s differs from the manifest pushed:\n%s", ref, got)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	runTool(t, env, crane, "pull", "--insecure", "--format", "oci", ref, layout)
	for _, f := range []string{"config.json", "model.gguf", "template", "params", "license"} {
		data, err := os.ReadFile(filepath.Join(work, "files", f))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := harness.FilesEqual(filepath.Join(work, "files", f), filepath.Join(layout, "blobs", "sha256", sha256Hex(data))); !ok || err != nil {
			t.Errorf("crane pull %s: blob of %s differs (%v)", ref, f, err)
		}
	}
}

// TestOCIMirrorFromRegistryAndSwarm: oras pushes an Ollama-shaped model to
// a real registry (crane registry serve); oras and crane pull it through
// mirror 1, which fills from that registry, and through mirror 2, which
// has no upstream and gets the tag from mirror 1's signed record and every
// blob from mirror 1 over libp2p by sha256, after the registry stopped.
// Both give the bytes and the manifest digest pushed. Ollama pulls it from
// mirror 2 and lists it.
func TestOCIMirrorFromRegistryAndSwarm(t *testing.T) {
	oras, crane := ocitools.Tool(t, "oras"), ocitools.Tool(t, "crane")
	reg, stopRegistry := ocitools.CraneRegistry(t, crane)
	digest, work := pushOllamaModel(t, oras, reg, "library/tiny:latest")
	t.Logf("pushed library/tiny:latest to %s: %s", reg, digest)

	// The registry behind a proxy that counts blob requests and holds
	// each a moment, so that clients asking at once overlap.
	target, err := url.Parse("http://" + reg)
	if err != nil {
		t.Fatal(err)
	}
	var blobGets atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	// gate, once armed with a blob's path, makes the proxy send that
	// blob's first half, then wait until the test closes release.
	var gate struct {
		sync.Mutex
		path    string
		release chan struct{}
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
			time.Sleep(ociUpstreamDelay)
		}
		gate.Lock()
		held, release := gate.path == r.URL.Path, gate.release
		gate.Unlock()
		if !held {
			rp.ServeHTTP(w, r)
			return
		}
		code, body, err := harness.Get("http://"+reg+r.URL.Path, "", time.Minute)
		if err != nil || code != http.StatusOK {
			http.Error(w, "gate: "+r.URL.Path, http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(time.Minute):
		}
		w.Write(body[len(body)/2:])
	}))
	t.Cleanup(proxy.Close)

	m1 := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_REGISTRY_UPSTREAM="+proxy.URL)
	m1.Start()
	base1 := m1.MirrorURL(t)
	host1 := strings.TrimPrefix(base1, "http://")

	t.Run("clients asking for one blob at once share one download", func(t *testing.T) {
		if code, _, _ := harness.MustGet(t, base1+"/v2/library/tiny/manifests/latest"); code != http.StatusOK {
			t.Fatalf("manifest: status %d", code)
		}
		weights, err := os.ReadFile(filepath.Join(work, "files", "model.gguf"))
		if err != nil {
			t.Fatal(err)
		}
		blobURL := base1 + "/v2/library/tiny/blobs/sha256:" + sha256Hex(weights)
		var wg sync.WaitGroup
		for range ociConcurrentClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := harness.Get(blobURL, "", time.Minute)
				if err != nil || code != http.StatusOK || !bytes.Equal(body, weights) {
					t.Errorf("blob: status %d, %d bytes, %v", code, len(body), err)
				}
			}()
		}
		wg.Wait()
		if n := blobGets.Load(); n != 1 {
			t.Errorf("%d clients at once made mirror 1 ask the registry %d times for the blob, want 1", ociConcurrentClients, n)
		}
	})

	t.Run("a blob is served while it arrives", func(t *testing.T) {
		license, err := os.ReadFile(filepath.Join(work, "files", "license"))
		if err != nil {
			t.Fatal(err)
		}
		path := "/v2/library/tiny/blobs/sha256:" + sha256Hex(license)
		release := make(chan struct{})
		gate.Lock()
		gate.path, gate.release = path, release
		gate.Unlock()
		// The registry holds back the second half until this client has
		// its answer's headers: a mirror that waited for the whole blob
		// would never answer.
		resp, err := http.Get(base1 + path)
		close(release)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, license) {
			t.Errorf("blob: status %d, %q, %v", resp.StatusCode, body, err)
		}
	})

	t.Run("mirror 1 fills from the registry", func(t *testing.T) {
		checkPulls(t, oras, crane, host1+"/library/tiny:latest", digest, work)
		if n := harness.Metric(t, base1, "allmende_mirror_registry_upstream_blobs_total"); n != 5 || blobGets.Load() != 5 {
			t.Errorf("mirror 1 downloaded %v blobs from the registry (%d requests), want 5 (each once)", n, blobGets.Load())
		}
	})
	harness.WaitUntil(t, "mirror 1 records the tag as a model", 30*time.Second, 100*time.Millisecond, func() bool {
		return strings.Contains(m1.MustRun("ls"), "library/tiny@latest")
	})
	t.Run("the web page shows the ollama pull line", func(t *testing.T) {
		_, _, page := harness.MustGet(t, base1+"/")
		if want := "ollama pull --insecure " + host1 + "/library/tiny:latest"; !strings.Contains(string(page), want) {
			t.Errorf("the web page lacks %q:\n%s", want, page)
		}
	})
	m1.MustRun("publish", "library/tiny@latest")
	key := strings.TrimSpace(m1.MustRun("trust", "key"))
	stopRegistry()

	m2 := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	m2.Start()
	m2.MustRun("trust", "add", key)
	m2.MustRun("connect", m1.TCPAddr())
	base2 := m2.MirrorURL(t)
	host2 := strings.TrimPrefix(base2, "http://")

	t.Run("mirror 2 gets the tag and the blobs from mirror 1", func(t *testing.T) {
		checkPulls(t, oras, crane, host2+"/library/tiny:latest", digest, work)
		if n := harness.Metric(t, base2, "allmende_mirror_registry_swarm_blobs_total"); n != 5 {
			t.Errorf("mirror 2 filled %v blobs from peers, want 5", n)
		}
	})

	t.Run("a tag nobody has is MANIFEST_UNKNOWN", func(t *testing.T) {
		code, _, body := harness.MustGet(t, base2+"/v2/library/none/manifests/latest")
		if code != http.StatusNotFound || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
			t.Errorf("status %d %s, want 404 MANIFEST_UNKNOWN", code, body)
		}
	})

	t.Run("ollama pulls from mirror 2 and lists the model", func(t *testing.T) {
		bin := ocitools.Tool(t, "ollama")
		env := ocitools.OllamaServe(t, bin, filepath.Join(t.TempDir(), "models"))
		runTool(t, env, bin, "pull", "--insecure", host2+"/library/tiny:latest")
		list := runTool(t, env, bin, "list")
		t.Logf("ollama list:\n%s", list)
		if !strings.Contains(list, host2+"/library/tiny:latest") || !strings.Contains(list, strings.TrimPrefix(digest, "sha256:")[:12]) {
			t.Errorf("ollama list does not show the model with ID %s:\n%s", strings.TrimPrefix(digest, "sha256:")[:12], list)
		}
	})
}
