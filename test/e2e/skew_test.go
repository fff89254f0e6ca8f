package e2e

import (
	"bufio"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// clockSkew is how far the skewed peer's clock is off in the tests: far
// beyond the hour go-libp2p backdates its TLS certificates.
const clockSkew = 5 * time.Hour

// skewpeerBinary builds test/skewpeer once per test process.
func skewpeerBinary(t *testing.T) string {
	t.Helper()
	return harness.Program(t, "./test/skewpeer")
}

// startSkewServer runs a skewed peer serving path; it is stopped when the
// test ends. It returns the peer's address and the root CID it serves.
func startSkewServer(t *testing.T, skew time.Duration, security, path string) (addr, root string) {
	t.Helper()
	cmd := harness.PeerCommand(t, skewpeerBinary(t), "-skew", skew.String(), "-security", security, "-serve", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("skewpeer printed nothing: %v", sc.Err())
	}
	f := strings.Fields(sc.Text())
	if len(f) != 3 || f[0] != "SKEWPEER" {
		t.Fatalf("skewpeer said %q", sc.Text())
	}
	return f[1], f[2]
}

// TestClockSkew shows which connections survive clocks that differ by
// hours. Every TLS certificate libp2p makes is valid from an hour before
// its maker's "now" for a hundred years, and the other side checks that
// window against its own clock, so TLS (and QUIC, which always uses it)
// fails as soon as one clock is more than an hour ahead of the other.
// Noise carries no times. allmende offers Noise first on TCP, so two
// allmende nodes never depend on their clocks; a peer that prefers TLS
// still reaches us when we dial it, since the dialer's preference wins.
func TestClockSkew(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, 4<<20+3, 41)
	n := harness.NewNode(t)
	n.Start()
	root := n.Add(src)

	tests := []struct {
		name     string
		skew     time.Duration
		security string
		// weFetch: we dial the skewed peer and fetch from it; theyFetch:
		// it dials us and fetches from us.
		weFetch, theyFetch bool
	}{
		{"TLS only, peer ahead: we refuse its certificate (not yet valid)", clockSkew, "tls", false, false},
		{"TLS only, peer behind: it refuses ours (not yet valid at its time)", -clockSkew, "tls", false, false},
		{"TLS only, peer 30 min ahead: within the hour certificates are backdated", 30 * time.Minute, "tls", true, true},
		{"Noise and TLS, peer ahead: Noise is chosen, no clock involved", clockSkew, "noise,tls", true, true},
		{"Noise and TLS, peer behind", -clockSkew, "noise,tls", true, true},
		{"TLS preferred, Noise offered, peer ahead: our dial picks Noise; its dial picks TLS and fails", clockSkew, "tls,noise", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, theirRoot := startSkewServer(t, tc.skew, tc.security, src)
			if theirRoot != root {
				t.Fatalf("skewed peer serves %s, we %s", theirRoot, root)
			}
			// We dial the skewed peer and fetch from it. A TLS 1.3 client
			// learns that the server refused its certificate only after
			// the handshake, so `connect` may succeed where the fetch fails.
			f := harness.NewNode(t)
			f.Start()
			out := filepath.Join(t.TempDir(), "from-skewed")
			start := time.Now()
			r := f.Run("connect", addr)
			if r.Code == 0 {
				r = f.Run("fetch", root, "-o", out, "--fetch.timeout", "3s")
			}
			if (r.Code == 0) != tc.weFetch {
				t.Errorf("we fetch from a peer %s off offering %s: exit %d, want success %v\n%s", tc.skew, tc.security, r.Code, tc.weFetch, r.Stderr)
			}
			if r.Code == 0 {
				t.Logf("we fetched %d bytes from a peer %s off (%s) in %s", 4<<20+3, tc.skew, tc.security, time.Since(start).Round(time.Millisecond))
			} else {
				t.Logf("we could not fetch from it: %s", lastLine(r.Stderr))
			}

			// The skewed peer dials us and fetches from us.
			out = filepath.Join(t.TempDir(), "to-skewed")
			cmd := harness.PeerCommand(t, skewpeerBinary(t), "-skew", tc.skew.String(), "-security", tc.security,
				"-connect", n.TCPAddr(), "-fetch", root, "-out", out)
			b, err := cmd.CombinedOutput()
			if (err == nil) != tc.theyFetch {
				t.Errorf("a peer %s off offering %s dials us and fetches: err %v, want success %v\n%s", tc.skew, tc.security, err, tc.theyFetch, b)
			}
			t.Logf("the skewed peer dialling us: %s", strings.Join(strings.Fields(string(b)), " "))
			if err == nil {
				if same, err := harness.FilesEqual(src, out); err != nil || !same {
					t.Errorf("the skewed peer got other bytes (%v)", err)
				}
			}
		})
	}
}
