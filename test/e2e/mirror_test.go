package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
	"github.com/ipfs/go-cid"
)

func TestMirrorGatewayPageMetrics(t *testing.T) {
	a := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	a.Start()
	f := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, f, 2<<20+5, 3)
	root := a.Add(f)
	base := a.MirrorURL(t)

	t.Run("trustless gateway serves a verifiable raw block", func(t *testing.T) {
		code, hdr, body := harness.MustGet(t, base+"/ipfs/"+root+"?format=raw")
		if code != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), "application/vnd.ipld.raw") {
			t.Fatalf("status %d, content type %q", code, hdr.Get("Content-Type"))
		}
		c, err := cid.Decode(root)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Prefix().Sum(body)
		if err != nil || !got.Equals(c) {
			t.Errorf("raw block does not hash to its CID")
		}
	})

	t.Run("trustless gateway serves the whole DAG as a CAR", func(t *testing.T) {
		code, hdr, body := harness.MustGet(t, base+"/ipfs/"+root+"?format=car")
		if code != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), "application/vnd.ipld.car") {
			t.Fatalf("status %d, content type %q", code, hdr.Get("Content-Type"))
		}
		want, _ := os.ReadFile(f)
		// Every leaf's bytes are inside the CAR.
		if len(body) < len(want) || !bytes.Contains(body, want[:1<<20]) {
			t.Errorf("CAR of %d bytes lacks the file's first leaf", len(body))
		}
	})

	t.Run("web page lists the content", func(t *testing.T) {
		code, _, body := harness.MustGet(t, base+"/")
		if code != http.StatusOK || !bytes.Contains(body, []byte("weights.bin")) || !bytes.Contains(body, []byte("allmende fetch "+root)) {
			t.Errorf("status %d, page lacks the item:\n%s", code, body)
		}
	})

	t.Run("metrics count what was served", func(t *testing.T) {
		code, _, body := harness.MustGet(t, base+"/metrics")
		if code != http.StatusOK || !bytes.Contains(body, []byte("allmende_store_bytes")) {
			t.Errorf("status %d, metrics lack allmende_store_bytes", code)
		}
	})
}

func TestMirrorAllowList(t *testing.T) {
	a := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_ALLOW=10.0.0.0/8")
	a.Start()
	code, _, body := harness.MustGet(t, a.MirrorURL(t)+"/")
	if code != http.StatusForbidden || !bytes.Contains(body, []byte("mirror.allow")) {
		t.Errorf("a client outside mirror.allow got %d: %s", code, body)
	}
}

// Waits for the mirror's web page.
const (
	// pageWait bounds a wait for the page to show a change.
	pageWait = 30 * time.Second
	// pagePoll is how often the page is read meanwhile.
	pagePoll = 100 * time.Millisecond
)

// pageLists waits up to pageWait for the mirror's page at base to list
// name (with present false: not to list it) and reports whether it did.
func pageLists(t *testing.T, base, name string, present bool) bool {
	t.Helper()
	return harness.Poll(pageWait, pagePoll, func() bool {
		_, _, page := harness.MustGet(t, base+"/")
		return bytes.Contains(page, []byte(">"+name+"<")) == present
	})
}

// waitPage is pageLists that fails t.
func waitPage(t *testing.T, base, name string, present bool) {
	t.Helper()
	if !pageLists(t, base, name, present) {
		t.Fatalf("page never showed %q present=%v", name, present)
	}
}
