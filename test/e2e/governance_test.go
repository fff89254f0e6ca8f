package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/test/harness"
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

	list := writeList(t, seeder, "school.deny", "# the school's list\n/ipfs/"+deniedCID+"\nname:leaks/*\n")

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

	t.Run("metrics count the refusals by reason and surface", func(t *testing.T) {
		m := harness.Metrics(t, base)
		for _, series := range []string{
			`allmende_refusals_total{reason="denylist_cid",surface="gateway"}`,
			`allmende_refusals_total{reason="denylist_name",surface="hf"}`,
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
}
