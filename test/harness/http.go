package harness

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node/home"
)

// Timeouts of the HTTP helpers.
const (
	// HTTPTimeout bounds a MustGet.
	HTTPTimeout = 30 * time.Second
	// DownloadTimeout bounds a Get of a whole model file.
	DownloadTimeout = 2 * time.Minute
)

// Get sends a GET for url, with a Range header if rng is not empty, and
// waits at most timeout for the whole answer. The error is the one that
// ended the exchange: a body cut short comes back with what arrived and
// the error, for the test to look at.
func Get(url, rng string, timeout time.Duration) (status int, body []byte, err error) {
	status, _, body, err = get(url, rng, timeout)
	return status, body, err
}

// MustGet GETs url within HTTPTimeout and fails t unless a whole answer
// arrives.
func MustGet(t testing.TB, url string) (status int, header http.Header, body []byte) {
	t.Helper()
	status, header, body, err := get(url, "", HTTPTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return status, header, body
}

func get(url, rng string, timeout time.Duration) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// MirrorURL is the base URL of n's mirror (HOME/mirror).
func (n *Node) MirrorURL(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(home.Dir(n.Home).MirrorFile())
	if err != nil {
		t.Fatalf("no HOME/mirror: %v\n%s", err, n.Log())
	}
	return strings.TrimSpace(string(b))
}

// Metrics reads the Prometheus /metrics at base (a mirror's URL) into a
// map from series (name and labels as printed) to value.
func Metrics(t testing.TB, base string) map[string]float64 {
	t.Helper()
	code, _, body := MustGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	out := make(map[string]float64)
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Metric reads one series (a name, with labels if it has any) from the
// /metrics at base; 0 if there is none.
func Metric(t testing.TB, base, series string) float64 {
	t.Helper()
	return Metrics(t, base)[series]
}
