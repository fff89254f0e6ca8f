package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// liarSize is the file liars and honest seeders serve: several blocks.
const liarSize = 16<<20 + 7

// liarBinary builds test/liar once per test process.
func liarBinary(t *testing.T) string {
	t.Helper()
	return harness.Program(t, "./test/liar")
}

// liar is a running test/liar process.
type liar struct {
	cmd   *exec.Cmd
	out   *bufio.Scanner
	Addr  string
	Root  string
	mu    sync.Mutex
	ended bool
}

// startLiar runs a liar serving path with the given mode and extra flags
// (such as -bulk); it is stopped when the test ends.
func startLiar(t *testing.T, mode, path string, flags ...string) *liar {
	t.Helper()
	args := append([]string{"-mode", mode}, flags...)
	cmd := harness.PeerCommand(t, liarBinary(t), append(args, path)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &liar{cmd: cmd, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() { l.stop() })
	if !l.out.Scan() {
		t.Fatalf("liar printed nothing: %v", l.out.Err())
	}
	f := strings.Fields(l.out.Text())
	if len(f) != 3 || f[0] != "LIAR" {
		t.Fatalf("liar said %q", l.out.Text())
	}
	l.Addr, l.Root = f[1], f[2]
	return l
}

// stop ends the liar and returns how many wrong blocks and bytes it sent.
func (l *liar) stop() (blocks, bytes uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return 0, 0
	}
	l.ended = true
	l.cmd.Process.Signal(syscall.SIGTERM)
	if l.out.Scan() {
		fmt.Sscanf(l.out.Text(), "LIES %d %d", &blocks, &bytes)
	}
	l.cmd.Wait()
	return blocks, bytes
}

func TestLyingPeers(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, liarSize, 31)
	honest := harness.NewNode(t)
	honest.Start()
	root := honest.Add(src)

	t.Run("a liar alone: the fetch fails cleanly, nothing written", func(t *testing.T) {
		l := startLiar(t, "flip", src)
		if l.Root != root {
			t.Fatalf("liar serves %s, honest seeder %s", l.Root, root)
		}
		n := harness.NewNode(t)
		n.Start()
		n.MustRun("connect", l.Addr)
		out := filepath.Join(t.TempDir(), "out")
		r := n.Run("fetch", root, "-o", out, "--fetch.timeout", "3s")
		if r.Code != 1 {
			t.Errorf("fetch from a liar only: exit %d, want 1\n%s", r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
		if _, code := runVerify(t, n); code != 0 {
			t.Error("verify failed after a liar's fetch: a wrong block reached the store")
		}
		lies, bytes := l.stop()
		t.Logf("the liar sent %d wrong blocks (%d bytes); 0 bad bytes written", lies, bytes)
	})

	for _, mode := range []string{"flip", "truncate", "pad"} {
		t.Run("a liar ("+mode+") beside an honest seeder: the fetch completes right", func(t *testing.T) {
			l := startLiar(t, mode, src)
			n := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0") // for /metrics
			n.Start()
			n.MustRun("connect", l.Addr)
			out := filepath.Join(t.TempDir(), "out")
			// Start with the liar alone, so it is asked for leaves; the
			// honest seeder joins once the (truthful) root has arrived.
			done := make(chan harness.Result, 1)
			go func() { done <- n.RunContext(context.Background(), "fetch", root, "-o", out) }()
			waitReceived(t, n, 1)
			n.MustRun("connect", honest.TCPAddr())
			if r := <-done; r.Code != 0 {
				t.Fatalf("fetch with a liar and an honest seeder: exit %d\n%s", r.Code, r.Stderr)
			}
			st := n.MustStats()
			t.Logf("fetcher: %d bad blocks (%d bytes) dropped, %d peer(s) banned", st.BadBlocks, st.BadBytes, st.BannedPeers)
			if st.BannedPeers != 1 {
				t.Errorf("the liar was not cut off: %+v", st)
			}
			m := harness.Metrics(t, n.MirrorURL(t))
			t.Logf("metrics: bad blocks (bitswap) %v, peers banned %v", m[`allmende_guard_bad_blocks_total{protocol="bitswap"}`], m["allmende_guard_peers_banned_total"])
			if m[`allmende_guard_bad_blocks_total{protocol="bitswap"}`] < 1 || m["allmende_guard_peers_banned_total"] != 1 {
				t.Errorf("/metrics does not show the liar: %v", m)
			}
			if same, err := harness.FilesEqual(src, out); err != nil || !same {
				t.Errorf("fetched bytes differ from the source (%v)", err)
			}
			if _, code := runVerify(t, n); code != 0 {
				t.Error("verify failed: a wrong block reached the store")
			}
			lies, bytes := l.stop()
			t.Logf("the liar sent %d wrong blocks (%d bytes); 0 bad bytes written", lies, bytes)
		})
	}
}
