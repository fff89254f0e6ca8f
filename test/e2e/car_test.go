package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// carExport is what `allmende export --json` prints.
type carExport struct {
	Out       string   `json:"out"`
	Roots     []string `json:"roots"`
	Bytes     int64    `json:"bytes"`
	Publisher string   `json:"publisher"`
}

// carImport is one line of what `allmende import --json FILE.car` prints.
type carImport struct {
	Path   string   `json:"path"`
	Pinned []string `json:"pinned"`
	Names  []struct {
		Name    string `json:"name"`
		Trusted bool   `json:"trusted"`
		Kept    bool   `json:"kept"`
	} `json:"names"`
	Error string `json:"error"`
}

// exportedModel publishes a model with a file of several blocks on a
// running node a and exports its CAR; it returns the model's directory,
// the CAR and what export said.
func exportedModel(t *testing.T, a *harness.Node) (string, string, carExport) {
	t.Helper()
	src := namedModelDir(t)
	harness.WriteRandomFile(t, filepath.Join(src, "weights.bin"), 3<<20+12345, 18)
	a.MustRun("import", src, "--name", "acme/tiny")
	a.MustRun("publish", "acme/tiny")
	file := filepath.Join(t.TempDir(), "stick", "tiny.car")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	var exp carExport
	a.JSON(&exp, "export", "acme/tiny", "-o", file, "--json")
	if len(exp.Roots) != 3 || exp.Out != file {
		t.Fatalf("export: %+v, want 3 roots written to %s", exp, file)
	}
	return src, file, exp
}

// TestCAROffline: a model exported on A as a CAR is imported on C, which
// has no peers; C then fetches it by CID and, once A's publisher key is
// trusted, by name, with no network, and the trees are the same. Before
// the trust, the record is kept but the name is refused. A's mirror page
// links the same CAR for download.
func TestCAROffline(t *testing.T) {
	a := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	a.Start()
	src, file, exp := exportedModel(t, a)
	key := strings.TrimSpace(a.MustRun("trust", "key"))
	if exp.Publisher != key {
		t.Fatalf("the CAR carries a record by %q, want A's key %s", exp.Publisher, key)
	}
	mirrorCAR(t, a.MirrorURL(t), file)
	a.Stop()

	c := harness.NewNode(t)
	c.Start()
	var imps []carImport
	c.JSON(&imps, "import", file, "--json")
	if len(imps) != 1 || len(imps[0].Pinned) != 3 || len(imps[0].Names) != 1 || imps[0].Names[0].Trusted || !imps[0].Names[0].Kept {
		t.Fatalf("import on C: %+v, want 3 roots pinned and acme/tiny's record kept, untrusted", imps)
	}
	if peers := c.MustRun("peers", "--json"); strings.TrimSpace(peers) != "[]" {
		t.Fatalf("C has peers %s; the test needs it alone", peers)
	}

	r := c.Run("fetch", "acme/tiny", "-o", filepath.Join(t.TempDir(), "refused"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "untrusted publisher "+key) {
		t.Fatalf("fetch by name before trust: exit %d, %q; want 1 naming the untrusted publisher", r.Code, r.Stderr)
	}

	byCID := filepath.Join(t.TempDir(), "by-cid")
	c.MustRun("fetch", exp.Roots[0], "-o", byCID, "--fetch-timeout", "10s")
	harness.AssertSameTree(t, src, byCID)

	c.MustRun("trust", "add", key)
	byName := filepath.Join(t.TempDir(), "by-name")
	out := c.MustRun("fetch", "acme/tiny", "-o", byName, "--fetch-timeout", "10s")
	if !strings.Contains(out, "signed by "+key+", trusted") || !strings.Contains(out, "0 B from peers") {
		t.Errorf("fetch by name: %q, want it trusted, with nothing from peers", out)
	}
	harness.AssertSameTree(t, src, byName)

	// C can pass it on: its export carries the same record and blocks.
	again := filepath.Join(t.TempDir(), "again.car")
	var exp2 carExport
	c.JSON(&exp2, "export", "acme/tiny", "-o", again, "--json")
	if same, err := harness.FilesEqual(file, again); err != nil || !same {
		t.Errorf("C's CAR of acme/tiny differs from A's (%v)", err)
	}
}

// TestCARDamaged: a CAR with one byte flipped in a block, and one cut
// short, fail with exit 1 naming the block, pin nothing and leave the
// store sound; the intact CAR then imports. It runs with no daemon (an
// embedded node), as on a machine that only reads a stick.
func TestCARDamaged(t *testing.T) {
	a := harness.NewNode(t)
	a.Start()
	src, file, exp := exportedModel(t, a)
	a.Stop()
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x01
	damaged := map[string][]byte{
		"flipped.car":   flipped,
		"truncated.car": good[:len(good)/2],
	}

	d := harness.NewNode(t) // no daemon: every command runs an embedded node
	other := filepath.Join(t.TempDir(), "other.bin")
	harness.WriteRandomFile(t, other, 1<<20+7, 19)
	otherCID := lastLine(d.MustRun("add", other))
	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			harness.WriteFile(t, p, data)
			r := d.Run("import", p)
			t.Logf("import %s: exit %d: %s", name, r.Code, strings.TrimSpace(r.Stderr))
			if r.Code != 1 || !strings.Contains(r.Stderr, "CAR block bafk") || !strings.Contains(r.Stderr, "nothing pinned") {
				t.Fatalf("import %s: exit %d, stderr %q; want 1 naming the bad block", name, r.Code, r.Stderr)
			}
			if r.Stdout != "" {
				t.Errorf("import %s printed roots: %q", name, r.Stdout)
			}
			var pins []struct{ CID string }
			d.JSON(&pins, "ls", "--json")
			if len(pins) != 1 || pins[0].CID != otherCID {
				t.Errorf("pins after %s: %+v, want only %s", name, pins, otherCID)
			}
		})
	}
	d.MustRun("verify")
	d.MustRun("fetch", otherCID, "-o", filepath.Join(t.TempDir(), "other"), "--fetch-timeout", "10s")

	// Both files at once, with the good one: it imports, they fail.
	var lines []carImport
	r := d.Run("import", filepath.Join(dir, "flipped.car"), file, filepath.Join(dir, "truncated.car"), "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &lines); err != nil {
		t.Fatalf("import --json: %v in %q", err, r.Stdout)
	}
	if r.Code != 1 || len(lines) != 3 || lines[0].Error == "" || lines[1].Error != "" || len(lines[1].Pinned) != 3 || lines[2].Error == "" {
		t.Fatalf("import of three CARs: exit %d, %+v; want 1, the good one pinned", r.Code, lines)
	}
	out := filepath.Join(t.TempDir(), "out")
	d.MustRun("fetch", exp.Roots[0], "-o", out, "--fetch-timeout", "10s")
	harness.AssertSameTree(t, src, out)

	// Export refuses an output that exists and leaves it as it was.
	r = d.Run("export", exp.Roots[0], "-o", file)
	if r.Code != 2 {
		t.Errorf("export over an existing file: exit %d, want 2: %s", r.Code, r.Stderr)
	}
	if now, err := os.ReadFile(file); err != nil || !bytes.Equal(now, good) {
		t.Errorf("the existing file changed (%v)", err)
	}
}

// mirrorCAR checks that the mirror at base links acme/tiny's CAR on its
// web page and serves there the bytes of want (what `allmende export`
// wrote), and 404 for a model it does not hold.
func mirrorCAR(t *testing.T, base, want string) {
	t.Helper()
	link := "/allmende/car/acme/tiny?revision=main"
	code, _, page := harness.MustGet(t, base+"/")
	if code != http.StatusOK || !bytes.Contains(page, []byte(`href="`+link+`"`)) {
		t.Fatalf("web page (status %d) lacks the CAR link %s", code, link)
	}
	code, hdr, body := harness.MustGet(t, base+link)
	wantBody, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/vnd.ipld.car") ||
		!strings.Contains(hdr.Get("Content-Disposition"), `filename="tiny.car"`) || !bytes.Equal(body, wantBody) {
		t.Errorf("GET %s: status %d, %q, %q, %d bytes; want the exported CAR's %d", link, code,
			hdr.Get("Content-Type"), hdr.Get("Content-Disposition"), len(body), len(wantBody))
	}
	if code, _, _ := harness.MustGet(t, base+"/allmende/car/acme/absent"); code != http.StatusNotFound {
		t.Errorf("CAR of a model not held: status %d, want 404", code)
	}
}
