package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/test/harness"
)

// Waits in the chain test.
const (
	// signWait bounds the wait for mirror 1 to sign the revision it
	// filled (once its last file is kept).
	signWait = 60 * time.Second
	signPoll = 200 * time.Millisecond
)

// chainModel is the repository the district's hub link fills.
const chainModel = "district/tiny"

// TestMirrorChain: mirror 1 fills a model from a hub (LFS files redirected
// to a CDN path) and signs what it filled: a provenance attestation and a
// version 2 name record for main. Mirror 2 has no upstream, is connected to
// mirror 1 and trusts its key; it serves the model at main to
// @huggingface/hub and hf download with the same bytes and commit. A node
// that trusts mirror 1 accepts its attestation (verify --provenance); one
// that does not, or whose copy of the attestation was altered, refuses it.
func TestMirrorChain(t *testing.T) {
	hub := newFakeHub(t)
	files := modelFiles(t, 3<<20+11, 51)
	commit := hub.push(chainModel, files...)
	hub.redirect[chainModel] = hub.URL + "/cdn/" + chainModel + "/" + commit

	m1 := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+hub.URL)
	m1.Start()
	for _, f := range files {
		code, _, body := harness.MustGet(t, m1.MirrorURL(t)+"/"+chainModel+"/resolve/main/"+f.path)
		if code != 200 || !bytes.Equal(body, f.data) {
			t.Fatalf("mirror 1, %s: status %d, %d bytes", f.path, code, len(body))
		}
	}
	record := filepath.Join(home.Dir(m1.Home).Records(), strings.ReplaceAll(chainModel, "/", "--")+"@main.json")
	harness.WaitUntil(t, "mirror 1 signs the revision it filled", signWait, signPoll, func() bool {
		_, err := os.Stat(record)
		return err == nil
	})
	key := strings.TrimSpace(m1.MustRun("trust", "key"))

	m2 := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	m2.Start()
	m2.MustRun("trust", "add", key, "--names", "*/*")
	m2.MustRun("connect", m1.TCPAddr())
	base := m2.MirrorURL(t)

	t.Run("mirror 2 answers main with mirror 1's commit", func(t *testing.T) {
		code, _, body := harness.MustGet(t, base+"/api/models/"+chainModel)
		var info struct {
			SHA string `json:"sha"`
		}
		if code != 200 || json.Unmarshal(body, &info) != nil || info.SHA != commit {
			t.Fatalf("mirror 2 info: status %d, %s; want commit %s", code, body, commit)
		}
	})

	t.Run("@huggingface/hub downloads it from mirror 2", func(t *testing.T) {
		client := hfClientDir(t)
		cache := filepath.Join(t.TempDir(), "hf-cache")
		out := filepath.Join(t.TempDir(), "model.bin")
		cmd := exec.Command("node", filepath.Join(client, "download.mjs"), base, chainModel, "main", cache, "model.bin", out)
		cmd.Dir = client
		res, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("@huggingface/hub: %v\n%s", err, res)
		}
		var got struct{ Snapshot string }
		lines := strings.Split(strings.TrimSpace(string(res)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
			t.Fatalf("client output %q: %v", res, err)
		}
		if !strings.Contains(got.Snapshot, commit) {
			t.Errorf("snapshot %s is not at commit %s", got.Snapshot, commit)
		}
		assertFiles(t, files, got.Snapshot)
		if b, _ := os.ReadFile(out); !bytes.Equal(b, files[1].data) {
			t.Errorf("ranged download differs from the hub's model.bin")
		}
	})

	t.Run("hf download gets it from mirror 2", func(t *testing.T) {
		py := pythonStack(t)
		dir := filepath.Join(t.TempDir(), "out")
		py.cli(py.env(base, t.TempDir(), false), "download", chainModel, "--local-dir", dir, "-q")
		assertFiles(t, files, dir)
	})

	t.Run("mirror 1's web page names its own attestation, not trusted there", func(t *testing.T) {
		_, _, page := harness.MustGet(t, m1.MirrorURL(t)+"/")
		if !bytes.Contains(page, []byte("Attested by: <code>"+key+`</code> <span class="muted">(not trusted here)`)) {
			t.Errorf("mirror 1's page does not name %s as an untrusted attester:\n%s", key, page)
		}
	})

	t.Run("a node that trusts mirror 1 accepts its attestation", func(t *testing.T) {
		b := chainNode(t, m1, key)
		if res := b.MustRun("verify", "--provenance", chainModel); !strings.Contains(res, "attested by "+key+", trusted") || !strings.Contains(res, commit) {
			t.Errorf("verify --provenance: %q", res)
		}
		if res := b.MustRun("inspect", chainModel); !strings.Contains(res, "attested by "+key+" (trusted)") {
			t.Errorf("inspect shows no attestation: %q", res)
		}

		t.Run("and refuses it once altered", func(t *testing.T) {
			files, _ := filepath.Glob(filepath.Join(home.Dir(b.Home).Attestations(), "*", key+".json"))
			if len(files) != 1 {
				t.Fatalf("attestations kept: %v", files)
			}
			raw, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			harness.WriteFile(t, files[0], bytes.Replace(raw, []byte(commit), []byte(strings.Repeat("0", len(commit))), 1))
			res := b.Run("verify", "--provenance", chainModel)
			if res.Code != 1 || !strings.Contains(res.Stderr, "no trusted attestation") {
				t.Errorf("verify --provenance of an altered attestation: exit %d, %q", res.Code, res.Stderr)
			}
		})
	})

	t.Run("a node that does not trust mirror 1 refuses its attestation", func(t *testing.T) {
		c := chainNode(t, m1, "")
		res := c.Run("verify", "--provenance", chainModel)
		if res.Code != 1 || !strings.Contains(res.Stderr, key+": signer not in the trust list") {
			t.Errorf("verify --provenance without trust: exit %d, %q", res.Code, res.Stderr)
		}
	})
}

// chainNode starts a node connected to m1 that fetches the chain's model
// by name, trusting key (or, without one, trusting any publisher).
func chainNode(t *testing.T, m1 *harness.Node, key string) *harness.Node {
	t.Helper()
	n := harness.NewNode(t)
	n.Start()
	n.MustRun("connect", m1.TCPAddr())
	args := []string{"fetch", chainModel, "-o", filepath.Join(t.TempDir(), "m")}
	if key != "" {
		n.MustRun("trust", "add", key, "--names", "district/*")
	} else {
		args = append(args, "--trust-any")
	}
	n.MustRun(args...)
	return n
}

// assertFiles checks that dir holds files, byte for byte.
func assertFiles(t *testing.T, files []fakeFile, dir string) {
	t.Helper()
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f.path))
		if err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("%s: differs from the hub's (%v)", f.path, err)
		}
	}
}
