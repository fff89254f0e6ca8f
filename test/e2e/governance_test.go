package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/test/harness"
	"github.com/opencontainers/go-digest"
)

// Waits for a denylist dropped into a running daemon's folder to apply
// (it is watched, and applies ReloadDelay after the last write).
const (
	listWait = 20 * time.Second
	listPoll = 100 * time.Millisecond
)

// writeList puts a denylist file into a node's HOME/denylists, atomically
// (written beside it, then renamed), as a list manager would.
func writeList(t *testing.T, n *harness.Node, name, body string) string {
	t.Helper()
	dir := home.Dir(n.Home).Denylists()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	harness.WriteFile(t, tmp, []byte(body))
	dest := filepath.Join(dir, name)
	if err := os.Rename(tmp, dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

// TestDenylists: a node refuses to fetch a CID on its own list, naming the
// list; a seeder that gets a list while it runs stops serving it to peers
// and answers 410 on its gateway; its mirror answers 451 for a denied model
// name; what no list names still flows; /metrics counts the refusals.
func TestDenylists(t *testing.T) {
	seeder := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	seeder.Start()
	denied := filepath.Join(t.TempDir(), "denied.bin")
	allowed := filepath.Join(t.TempDir(), "allowed.bin")
	harness.WriteRandomFile(t, denied, 1<<20+7, 21)
	harness.WriteRandomFile(t, allowed, 1<<20+9, 22)
	deniedCID, allowedCID := seeder.Add(denied), seeder.Add(allowed)
	seeder.MustRun("import", tinyRepo(t), "--name", "leaks/tiny", "--license", "mit")
	base := seeder.MirrorURL(t)
	if code, _, _ := harness.MustGet(t, base+"/ipfs/"+deniedCID+"?format=raw"); code != http.StatusOK {
		t.Fatalf("gateway before any list: status %d", code)
	}

	t.Run("a node refuses to fetch a CID on its own list", func(t *testing.T) {
		b := harness.NewNode(t)
		list := writeList(t, b, "local.deny", "/ipfs/"+deniedCID+"\n")
		b.Start()
		b.MustRun("connect", seeder.TCPAddr())
		out := filepath.Join(t.TempDir(), "out.bin")
		res := b.Run("fetch", deniedCID, "-o", out)
		if res.Code != 1 || !strings.Contains(res.Stderr, list) {
			t.Errorf("fetch of a listed CID: exit %d, stderr %q; want exit 1 naming %s", res.Code, res.Stderr, list)
		}
		harness.AssertAbsent(t, out)
		b.MustRun("fetch", allowedCID, "-o", filepath.Join(t.TempDir(), "allowed.bin"))
	})

	deniedBlob := digest.SHA256.FromString("a layer nobody may pull")
	list := writeList(t, seeder, "school.deny", "# the school's list\n/ipfs/"+deniedCID+"\nname:leaks/*\nsha256:"+deniedBlob.Encoded()+"\n")

	t.Run("a running seeder that gets a list answers 410 on its gateway", func(t *testing.T) {
		harness.WaitUntil(t, "the seeder's new list applies", listWait, listPoll, func() bool {
			code, _, _ := harness.MustGet(t, base+"/ipfs/"+deniedCID+"?format=raw")
			return code == http.StatusGone
		})
		if code, _, _ := harness.MustGet(t, base+"/ipfs/"+allowedCID+"?format=raw"); code != http.StatusOK {
			t.Errorf("gateway, allowed CID: status %d", code)
		}
	})

	t.Run("and stops serving it to peers, while an allowed CID still flows", func(t *testing.T) {
		c := harness.NewNode(t)
		c.Start()
		c.MustRun("connect", seeder.TCPAddr())
		c.MustRun("fetch", allowedCID, "-o", filepath.Join(t.TempDir(), "allowed.bin"))
		out := filepath.Join(t.TempDir(), "denied.bin")
		res := c.Run("fetch", deniedCID, "-o", out, "--fetch-timeout", "3s")
		if res.Code == 0 {
			t.Errorf("the seeder served a CID on its list")
		}
		harness.AssertAbsent(t, out)
	})

	t.Run("its mirror answers 451 for a denied model name", func(t *testing.T) {
		for _, path := range []string{"/api/models/leaks/tiny", "/leaks/tiny/resolve/main/config.json"} {
			code, hdr, body := harness.MustGet(t, base+path)
			if code != http.StatusUnavailableForLegalReasons || !strings.Contains(hdr.Get("X-Error-Message"), list) {
				t.Errorf("%s: status %d, X-Error-Message %q (%s); want 451 naming %s", path, code, hdr.Get("X-Error-Message"), body, list)
			}
		}
	})

	t.Run("its OCI API answers 451 DENIED for a denied name or blob", func(t *testing.T) {
		for _, tt := range []struct {
			path string
			code int
			body string
		}{
			{"/v2/leaks/tiny/manifests/latest", http.StatusUnavailableForLegalReasons, `"DENIED"`},
			{"/v2/leaks/tiny/tags/list", http.StatusUnavailableForLegalReasons, `"DENIED"`},
			{"/v2/library/other/blobs/" + deniedBlob.String(), http.StatusUnavailableForLegalReasons, `"DENIED"`},
			{"/v2/library/other/manifests/" + deniedBlob.String(), http.StatusUnavailableForLegalReasons, `"DENIED"`},
			{"/v2/library/other/blobs/" + digest.SHA256.FromString("anything else").String(), http.StatusNotFound, `"BLOB_UNKNOWN"`},
		} {
			code, _, body := harness.MustGet(t, base+tt.path)
			if code != tt.code || !strings.Contains(string(body), tt.body) {
				t.Errorf("%s: status %d, body %s; want %d with %s", tt.path, code, body, tt.code, tt.body)
			}
			if code == http.StatusUnavailableForLegalReasons && !strings.Contains(string(body), list) {
				t.Errorf("%s: body %s does not name %s", tt.path, body, list)
			}
		}
	})

	t.Run("metrics count the refusals by reason and surface", func(t *testing.T) {
		m := harness.Metrics(t, base)
		for _, series := range []string{
			`allmende_refusals_total{reason="denylist_cid",surface="gateway"}`,
			`allmende_refusals_total{reason="denylist_name",surface="hf"}`,
			`allmende_refusals_total{reason="denylist_name",surface="oci"}`,
		} {
			if m[series] < 1 {
				t.Errorf("%s = %v, want at least 1", series, m[series])
			}
		}
		served := m[`allmende_refusals_total{reason="denylist_cid",surface="bitswap"}`] +
			m[`allmende_refusals_total{reason="denylist_cid",surface="bulk"}`]
		t.Logf("refusals to peers: %v", served)
		if served < 1 {
			t.Errorf("no refusal to a peer counted")
		}
	})

	t.Run("gc --denied unpins what the list names, and verify is then clean", func(t *testing.T) {
		var gc api.GCResult
		seeder.JSON(&gc, "gc", "--denied", "--json")
		if !anyContains(gc.Unpinned, deniedCID) || anyContains(gc.Unpinned, allowedCID) || gc.Removed == 0 {
			t.Errorf("gc --denied: %+v; want %s unpinned and its blocks removed, %s kept", gc, deniedCID, allowedCID)
		}
		var vr api.VerifyResult
		seeder.JSON(&vr, "verify", "--json")
		if len(vr.Denied) != 0 || !vr.OK() {
			t.Errorf("verify after gc --denied: denied %q, ok %v", vr.Denied, vr.OK())
		}
		if pins := seeder.MustRun("ls"); !strings.Contains(pins, allowedCID) || strings.Contains(pins, deniedCID) {
			t.Errorf("pins after gc --denied:\n%s\nwant %s and not %s", pins, allowedCID, deniedCID)
		}
	})
}

// anyContains reports whether one of lines contains s.
func anyContains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// ncRepo writes a small model whose card (README.md) declares a
// non-commercial licence, and no other licence information.
func ncRepo(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "nc")
	harness.WriteFile(t, filepath.Join(dir, "README.md"), []byte("---\nlicense: cc-by-nc-4.0\ntags: [test]\n---\n# A model for research only\n"))
	harness.WriteFile(t, filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`))
	harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), 2<<20+1, 31)
	return dir
}

// TestLicensePolicy: a mirror whose policy denies a licence refuses to fill
// a model under it (451 with the hub's X-Error-Message saying why), still
// fills an allowed one, and does not re-seed such a model it already holds
// (neither to peers nor on its hub API). The licence comes from the model
// card when import has no --license.
func TestLicensePolicy(t *testing.T) {
	up := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	up.Start()
	up.MustRun("import", ncRepo(t), "--name", "research/nc")
	up.MustRun("import", tinyRepo(t), "--name", "research/ok", "--license", "apache-2.0")
	if code, hdr, body := harness.MustGet(t, up.MirrorURL(t)+"/api/models/research/nc"); code != http.StatusOK ||
		!strings.Contains(string(body), "CC-BY-NC-4.0") {
		t.Fatalf("upstream without a policy: status %d %v, info %s; want the card's licence", code, hdr, body)
	}

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.MirrorURL(t),
		"ALLMENDE_POLICY_LICENSES_DENY=cc-by-nc-*", "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)

	t.Run("a fill under a denied licence is refused with a clear error", func(t *testing.T) {
		for _, path := range []string{"/api/models/research/nc", "/research/nc/resolve/main/model.bin"} {
			code, hdr, _ := harness.MustGet(t, base+path)
			msg := hdr.Get("X-Error-Message")
			if code != http.StatusUnavailableForLegalReasons || !strings.Contains(msg, "CC-BY-NC-4.0") || !strings.Contains(msg, "policy.licenses.deny") {
				t.Errorf("%s: status %d, X-Error-Message %q; want 451 naming the licence and the setting", path, code, msg)
			}
		}
		if len(m.FillParts()) != 0 || harness.Metric(t, base, "allmende_mirror_upstream_downloads_total") != 0 {
			t.Errorf("a refused model was downloaded from the upstream")
		}
	})

	t.Run("an allowed licence still fills", func(t *testing.T) {
		if code, _, _ := harness.MustGet(t, base+"/research/ok/resolve/main/config.json"); code != http.StatusOK {
			t.Errorf("allowed model: status %d", code)
		}
	})

	t.Run("a model it holds under a denied licence is not re-seeded", func(t *testing.T) {
		var held struct{ Root string }
		m.JSON(&held, "import", ncRepo(t), "--name", "local/nc", "--json")
		ok := filepath.Join(t.TempDir(), "ok.bin")
		harness.WriteRandomFile(t, ok, 1<<20, 32)
		okCID := m.Add(ok)

		p := harness.NewNode(t)
		p.Start()
		p.MustRun("connect", m.TCPAddr())
		p.MustRun("fetch", okCID, "-o", filepath.Join(t.TempDir(), "ok.bin"))
		out := filepath.Join(t.TempDir(), "nc")
		if res := p.Run("fetch", held.Root, "-o", out, "--fetch-timeout", "3s"); res.Code == 0 {
			t.Errorf("a peer fetched a model whose licence the seeder's policy denies")
		}
		harness.AssertAbsent(t, out)
		if code, _, _ := harness.MustGet(t, base+"/api/models/local/nc"); code != http.StatusUnavailableForLegalReasons {
			t.Errorf("hub API for a held model under a denied licence: status %d, want 451", code)
		}
		if harness.Metric(t, base, `allmende_refusals_total{reason="license",surface="fill"}`) < 1 {
			t.Errorf("no licence refusal of a fill counted")
		}

		t.Run("gc --denied drops it and keeps the rest", func(t *testing.T) {
			var before, after api.VerifyResult
			m.JSON(&before, "verify", "--json")
			var gc api.GCResult
			m.JSON(&gc, "gc", "--denied", "--json")
			if len(before.Denied) == 0 || len(gc.Unpinned) != len(before.Denied) || !anyContains(gc.Unpinned, "CC-BY-NC-4.0") {
				t.Errorf("gc --denied unpinned %q; verify listed %q as denied; want the same, naming the licence", gc.Unpinned, before.Denied)
			}
			m.JSON(&after, "verify", "--json")
			if len(after.Denied) != 0 || !after.OK() {
				t.Errorf("verify after gc --denied: denied %q, ok %v", after.Denied, after.OK())
			}
			if pins := m.MustRun("ls"); !strings.Contains(pins, okCID) || strings.Contains(pins, "local/nc") {
				t.Errorf("gc --denied unpinned content no policy refuses, or kept the model it refuses:\n%s", pins)
			}
			// Not held any more, and unknown upstream: the hub's "repository not found".
			if code, _, _ := harness.MustGet(t, base+"/api/models/local/nc"); code != http.StatusUnauthorized && code != http.StatusNotFound {
				t.Errorf("hub API for the model gc --denied dropped: status %d, want 401 or 404 (not found)", code)
			}
		})
	})
}
