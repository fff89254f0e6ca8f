package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// Rate limits are checked from below only: a limited transfer can never be
// faster than its limit allows, however idle or busy the machine is.
const (
	limitedSize = 6 << 20
	limitRate   = 2 << 20 // bytes per second, "2MiB" in config units
	// minLimitedSeconds is what limitedSize takes at limitRate, less the
	// limiter's 1 MiB burst, with a margin for rounding.
	minLimitedSeconds = 0.9 * float64(limitedSize-(1<<20)) / limitRate
)

func TestBandwidthLimits(t *testing.T) {
	f := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, f, limitedSize, 41)
	tests := []struct {
		name       string
		seederEnv  []string
		fetcherEnv []string
		overHTTP   bool
	}{
		{"bandwidth.down paces a fetch", nil, []string{"ALLMENDE_BANDWIDTH_DOWN=2MiB"}, false},
		{"bandwidth.up paces blocks served to peers", []string{"ALLMENDE_BANDWIDTH_UP=2MiB"}, nil, false},
		{"bandwidth.up paces the mirror's HTTP answers", []string{"ALLMENDE_BANDWIDTH_UP=2MiB", "ALLMENDE_MIRROR_ADDR=127.0.0.1:0"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := harness.NewNode(t, tt.seederEnv...)
			s.Start()
			root := s.Add(f)
			start := time.Now()
			if tt.overHTTP {
				resp, err := (&http.Client{Timeout: time.Minute}).Get(s.MirrorURL(t) + "/ipfs/" + root + "?format=car")
				if err != nil {
					t.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n < limitedSize {
					t.Fatalf("CAR of %d bytes", n)
				}
			} else {
				c := harness.NewNode(t, tt.fetcherEnv...)
				c.Start()
				c.MustRun("connect", s.TCPAddr())
				c.MustRun("fetch", root, "-o", filepath.Join(t.TempDir(), "out"))
			}
			took := time.Since(start).Seconds()
			t.Logf("%d MiB at a 2 MiB/s limit took %.1f s", limitedSize>>20, took)
			if took < minLimitedSeconds {
				t.Errorf("took %.1f s, faster than the limit allows (at least %.1f s)", took, minLimitedSeconds)
			}
		})
	}
}
