package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// wholeMetric counts downloads the mirror sent straight from a verified
// file on disk.
const wholeMetric = "allmende_mirror_whole_file_responses_total"

// TestMirrorServesHeldFileWhole: a file imported in place goes out through
// /resolve straight from the file (sendfile), whole and in ranges, byte for
// byte; touched, it is re-verified and sent whole again; changed, its new
// bytes are never sent.
func TestMirrorServesHeldFileWhole(t *testing.T) {
	src := filepath.Join(t.TempDir(), "held")
	p := filepath.Join(src, "weights.bin")
	harness.WriteRandomFile(t, p, 5<<20+123, 21)
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	m.Start()
	m.MustRun("import", src, "--name", "school/held")
	base := m.MirrorURL(t)
	url := base + "/school/held/resolve/main/weights.bin"

	cases := []struct {
		name, rng  string
		code       int
		start, end int // want[start:end]
	}{
		{"whole file", "", http.StatusOK, 0, len(want)},
		{"range across leaves", "bytes=1048000-3000000", http.StatusPartialContent, 1048000, 3000001},
		{"suffix range", "bytes=-100", http.StatusPartialContent, len(want) - 100, len(want)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body, err := harness.Get(url, c.rng, 30*time.Second)
			if err != nil || code != c.code || !bytes.Equal(body, want[c.start:c.end]) {
				t.Fatalf("status %d, %d bytes, err %v: want %d and bytes %d-%d of the file", code, len(body), err, c.code, c.start, c.end)
			}
			if got := harness.Metric(t, base, wholeMetric); got != float64(i+1) {
				t.Errorf("%s = %v, want %d: not sent from the file", wholeMetric, got, i+1)
			}
		})
	}

	t.Run("a touched file is re-verified and sent whole again", func(t *testing.T) {
		before := harness.Metric(t, base, wholeMetric)
		now := time.Now()
		if err := os.Chtimes(p, now, now); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for harness.Metric(t, base, wholeMetric) == before {
			if time.Now().After(deadline) {
				t.Fatalf("touched file never sent whole again:\n%s", m.Log())
			}
			code, body, err := harness.Get(url, "", 30*time.Second)
			if err != nil || code != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("status %d, %d bytes, err %v: want the file's bytes", code, len(body), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("a file changed in place is not sent", func(t *testing.T) {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		changed := bytes.Clone(want)
		for i := 0; i < len(changed); i += 1 << 20 {
			changed[i] ^= 0xff
		}
		harness.WriteFile(t, p, changed)
		// Same size, same mtime: only the ctime tells.
		if err := os.Chtimes(p, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		before := harness.Metric(t, base, wholeMetric)
		for _, rng := range []string{"", "bytes=0-99"} {
			code, body, err := harness.Get(url, rng, 3*time.Second)
			if err == nil && code < 300 {
				t.Errorf("range %q: status %d with %d bytes; a changed file must not be served", rng, code, len(body))
			}
			if bytes.Contains(body, changed[:100]) {
				t.Errorf("range %q: the changed bytes were sent", rng)
			}
		}
		if got := harness.Metric(t, base, wholeMetric); got != before {
			t.Errorf("%s went from %v to %v for a changed file", wholeMetric, before, got)
		}
	})
}
