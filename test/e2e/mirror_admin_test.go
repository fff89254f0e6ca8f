package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestMirrorPinsAndQuota: a model in mirror.pins is prefetched and kept; a
// model filled on demand is evicted when another fill needs its room under
// mirror.quota, and the pinned one stays.
func TestMirrorPinsAndQuota(t *testing.T) {
	up := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	up.Start()
	for i, name := range []string{"school/kept", "school/cached", "school/other"} {
		dir := filepath.Join(t.TempDir(), "m")
		harness.WriteRandomFile(t, filepath.Join(dir, "model.bin"), 6<<20, uint64(20+i))
		up.MustRun("import", dir, "--name", name)
	}
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.MirrorURL(t),
		"ALLMENDE_MIRROR_PINS=school/kept", "ALLMENDE_MIRROR_QUOTA=13MiB", "ALLMENDE_MIRROR_INTERVAL=300ms", "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)

	waitPage(t, base, "school/kept", true) // prefetched without any request
	code, _, body := harness.MustGet(t, base+"/school/cached/resolve/main/model.bin")
	if code != http.StatusOK || len(body) != 6<<20 {
		t.Fatalf("fill on demand: status %d, %d bytes", code, len(body))
	}
	// The revision becomes a model once its fill is recorded, which may
	// come a moment after the client has its bytes.
	waitPage(t, base, "school/cached", true)
	// A third 6 MiB model against a 13 MiB quota: the cached one must go
	// to make room, the pinned one stay.
	code, _, body = harness.MustGet(t, base+"/school/other/resolve/main/model.bin")
	if code != http.StatusOK || len(body) != 6<<20 {
		t.Fatalf("second fill on demand: status %d, %d bytes: %.200s", code, len(body), body)
	}
	if !harness.Poll(pageWait, pagePoll, func() bool {
		return strings.Contains(m.Log(), `evicted least recently used model" name=school/cached`)
	}) {
		t.Fatalf("school/cached was never evicted:\n%s", m.Log())
	}
	waitPage(t, base, "school/cached", false)
	waitPage(t, base, "school/kept", true)
	if code, _, _ := harness.MustGet(t, base+"/school/kept/resolve/main/model.bin"); code != http.StatusOK {
		t.Errorf("pinned model not served after eviction: %d", code)
	}
}
