package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// sha256LiarSize is the file looked up by sha256: a few blocks.
const sha256LiarSize = 3<<20 + 11

// TestLyingSHA256Provider: two liars answer "which file has sha256 S?"
// with the CID of other bytes (they serve those bytes truthfully, so every
// block verifies; only the whole-file sha256 gives them away), beside an
// honest node that imported the real file. fetch sha256:S tries the liars'
// CID (two peers name it, so it comes first), finds the sha256 wrong, bans
// both and fetches from the honest node. When the liars claim the real
// size for decoy bytes of another size, the lie shows on the first block
// and nothing more of the decoy is fetched.
func TestLyingSHA256Provider(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "model")
	real := filepath.Join(dir, "weights.bin")
	harness.WriteRandomFile(t, real, sha256LiarSize, 41)
	sum := fileSHA256(t, real)
	honest := harness.NewNode(t)
	honest.Start()
	honest.MustRun("import", dir, "--name", "acme/sha-liar")

	tests := []struct {
		name      string
		decoySize int64
		// inVain is the decoy bytes the fetcher may fetch before it
		// knows: all of them when only the sha256 tells, none when the
		// root block's size does.
		inVain float64
	}{
		{"decoy of the same size: caught by the whole-file sha256", sha256LiarSize, sha256LiarSize},
		{"decoy of another size, claimed as the real size: caught on its root block", sha256LiarSize - 5, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decoy := filepath.Join(t.TempDir(), "decoy")
			harness.WriteRandomFile(t, decoy, tt.decoySize, uint64(50+i))
			liars := []*liar{
				startLiar(t, "honest", decoy, "-claim-sha256", sum, "-claim-size", fmt.Sprint(sha256LiarSize)),
				startLiar(t, "honest", decoy, "-claim-sha256", sum, "-claim-size", fmt.Sprint(sha256LiarSize)),
			}
			n := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0") // for /metrics
			n.Start()
			for _, l := range liars {
				n.MustRun("connect", l.Addr)
			}
			n.MustRun("connect", honest.TCPAddr())

			out := filepath.Join(t.TempDir(), "out.bin")
			r := n.Run("fetch", "sha256:"+sum, "-o", out)
			if r.Code != 0 {
				t.Fatalf("fetch sha256 with two liars and an honest node: exit %d\n%s", r.Code, r.Stderr)
			}
			if same, err := harness.FilesEqual(real, out); err != nil || !same {
				t.Fatalf("fetched bytes differ from the real file (%v)", err)
			}
			st := n.MustStats()
			m := harness.Metrics(t, n.MirrorURL(t))
			t.Logf("fetcher: %d peer(s) banned; false answers %v, bytes fetched in vain %v", st.BannedPeers,
				m[`allmende_guard_bad_blocks_total{protocol="resolve"}`], m[`allmende_guard_bad_bytes_total{protocol="resolve"}`])
			if st.BannedPeers != 2 || m[`allmende_guard_bad_blocks_total{protocol="resolve"}`] != 2 {
				t.Errorf("the liars were not both counted and banned: %+v, metrics %v", st, m)
			}
			if got := m[`allmende_guard_bad_bytes_total{protocol="resolve"}`]; got != tt.inVain {
				t.Errorf("decoy bytes fetched in vain: %v, want %v", got, tt.inVain)
			}
			var peers []struct {
				ID string `json:"id"`
			}
			n.JSON(&peers, "peers", "--json")
			for _, p := range peers {
				for _, l := range liars {
					if strings.HasSuffix(l.Addr, "/p2p/"+p.ID) {
						t.Errorf("banned liar %s is still connected", p.ID)
					}
				}
			}
			if rep, code := runVerify(t, n); code != 0 {
				t.Errorf("verify failed after the fetch: %+v", rep)
			}
		})
	}
}

// TestLyingSHA256ProviderAlone: with only a liar to ask, the fetch fails
// with status 1, writes nothing, and bans the liar, whose answer is not
// asked for again.
func TestLyingSHA256ProviderAlone(t *testing.T) {
	decoy := filepath.Join(t.TempDir(), "decoy")
	harness.WriteRandomFile(t, decoy, 1<<20+3, 60)
	sum := strings.Repeat("ab", 32)
	l := startLiar(t, "honest", decoy, "-claim-sha256", sum)
	n := harness.NewNode(t)
	n.Start()
	n.MustRun("connect", l.Addr)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	r := n.Run("fetch", "sha256:"+sum, "-o", out)
	if r.Code != 1 || !strings.Contains(r.Stderr, "sha256 mismatch") {
		t.Errorf("fetch from a lying provider alone: exit %d, want 1 saying sha256 mismatch\n%s", r.Code, r.Stderr)
	}
	harness.AssertAbsent(t, out)
	if st := n.MustStats(); st.BannedPeers != 1 {
		t.Errorf("the liar was not banned: %+v", st)
	}
	r = n.Run("fetch", "sha256:"+sum, "-o", out)
	if r.Code != 1 || !strings.Contains(r.Stderr, "no connected peer") {
		t.Errorf("second fetch: exit %d, want 1 finding no source (the liar is banned)\n%s", r.Code, r.Stderr)
	}
	if blocks, _ := l.stop(); blocks != 1 {
		t.Errorf("the liar answered %d lookups, want 1 (a banned peer is not asked again)", blocks)
	}
}

// TestMirrorSkipsLyingSHA256Provider: a mirror filling from its upstream
// first asks its peers for the file by sha256; a liar answers with the CID
// of other bytes. The liar is banned and the file comes from the upstream
// in the same request, without an error: when the decoy's size gives it
// away at once, and when only the whole-file sha256 does (bytes from peers
// reach no client before they are verified, so the fill starts again from
// the upstream with nothing of the decoy sent).
func TestMirrorSkipsLyingSHA256Provider(t *testing.T) {
	src := tinyRepo(t)
	want, err := os.ReadFile(filepath.Join(src, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := fileSHA256(t, filepath.Join(src, "model.bin"))
	up := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0")
	up.Start()
	up.MustRun("import", src, "--name", "school/tiny")

	for i, tt := range []struct {
		name      string
		decoySize int64
		attempts  int // requests until the right bytes arrive
	}{
		{"decoy of another size: the same request goes upstream", int64(len(want)) + 1, 1},
		{"decoy of the same size: the same request goes upstream", int64(len(want)), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			decoy := filepath.Join(t.TempDir(), "decoy")
			harness.WriteRandomFile(t, decoy, tt.decoySize, uint64(70+i))
			l := startLiar(t, "honest", decoy, "-claim-sha256", sum)
			m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.MirrorURL(t), "ALLMENDE_FETCH_TIMEOUT=5s")
			m.Start()
			m.MustRun("connect", l.Addr)
			base := m.MirrorURL(t)
			var got []byte
			attempts := 0
			for attempts < 3 && !bytes.Equal(got, want) {
				attempts++
				code, body, err := harness.Get(base+"/school/tiny/resolve/main/model.bin", "", harness.HTTPTimeout)
				t.Logf("request %d: status %d, %d bytes, %v", attempts, code, len(body), err)
				if err == nil && code == http.StatusOK {
					got = body
				}
			}
			if !bytes.Equal(got, want) || attempts != tt.attempts {
				t.Fatalf("right bytes after %d request(s) (%v), want after %d", attempts, bytes.Equal(got, want), tt.attempts)
			}
			fromUpstream := harness.Metric(t, base, "allmende_mirror_upstream_downloads_total")
			if st := m.MustStats(); st.BannedPeers != 1 || fromUpstream != 1 {
				t.Errorf("banned peers %d, upstream downloads %v; want the liar banned and 1 download", st.BannedPeers, fromUpstream)
			}
		})
	}
}
