package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestTrustedKeyBoundToNames: a publisher trusted for acme/* also signs
// evil/tiny; a node that trusts it for acme/* (or, without --names, for the
// org of the first record it accepted from it) refuses evil/tiny like an
// unsigned name and fetches acme/tiny. A stranger's later record for
// acme/tiny does not win, even with --trust-any.
func TestTrustedKeyBoundToNames(t *testing.T) {
	src := namedModelDir(t)
	a := harness.NewNode(t)
	a.Start()
	for _, name := range []string{"acme/tiny", "evil/tiny"} {
		a.MustRun("import", src, "--name", name)
		a.MustRun("publish", name)
	}
	key := strings.TrimSpace(a.MustRun("trust", "key"))

	// A stranger publishes other content as acme/tiny, later (a higher
	// sequence number).
	other := filepath.Join(t.TempDir(), "other")
	harness.WriteFile(t, filepath.Join(other, "config.json"), []byte(`{"not":"acme's"}`))
	stranger := harness.NewNode(t)
	stranger.Start()
	stranger.MustRun("import", other, "--name", "acme/tiny")
	stranger.MustRun("publish", "acme/tiny")
	strangerKey := strings.TrimSpace(stranger.MustRun("trust", "key"))

	fetcher := func(t *testing.T, trustArgs ...string) *harness.Node {
		n := harness.NewNode(t)
		n.Start()
		n.MustRun("connect", a.TCPAddr())
		n.MustRun("connect", stranger.TCPAddr())
		n.MustRun(append([]string{"trust", "add", key}, trustArgs...)...)
		return n
	}
	refused := func(t *testing.T, n *harness.Node, name string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "m")
		r := n.Run("fetch", name, "-o", out)
		t.Logf("fetch %s: exit %d: %s", name, r.Code, strings.TrimSpace(r.Stderr))
		if r.Code != 1 || !strings.Contains(r.Stderr, "not trusted for this name") || !strings.Contains(r.Stderr, key+" is trusted only for acme/*") {
			t.Errorf("fetch %s: exit %d, stderr %q; want 1 saying the key is trusted only for acme/*", name, r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
	}
	fetched := func(t *testing.T, n *harness.Node, args ...string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "m")
		stdout := n.MustRun(append([]string{"fetch", "acme/tiny", "-o", out}, args...)...)
		if !strings.Contains(stdout, "signed by "+key+", trusted") {
			t.Errorf("fetch acme/tiny %v: %q, want it signed by the trusted key", args, stdout)
		}
		harness.AssertSameTree(t, src, out)
	}

	t.Run("trust add --names 'acme/*'", func(t *testing.T) {
		n := fetcher(t, "--names", "acme/*")
		refused(t, n, "evil/tiny")
		fetched(t, n)
		fetched(t, n, "--trust-any") // the stranger's later record loses
		if ls := n.MustRun("trust", "ls"); !strings.Contains(ls, key) || !strings.Contains(ls, "acme/*") {
			t.Errorf("trust ls = %q, want the key with acme/*", ls)
		}
	})

	t.Run("trust add without --names binds the first accepted org", func(t *testing.T) {
		n := fetcher(t)
		if ls := n.MustRun("trust", "ls"); strings.Contains(ls, "acme/*") {
			t.Errorf("trust ls before any record = %q: bound too early", ls)
		}
		fetched(t, n)
		if ls := n.MustRun("trust", "ls"); !strings.Contains(ls, "acme/*") {
			t.Errorf("trust ls after the first record = %q, want acme/*", ls)
		}
		refused(t, n, "evil/tiny")
	})

	t.Run("--trust-any still takes a name no trusted key may sign", func(t *testing.T) {
		n := fetcher(t, "--names", "acme/*")
		out := filepath.Join(t.TempDir(), "m")
		stdout := n.MustRun("fetch", "evil/tiny", "-o", out, "--trust-any")
		if !strings.Contains(stdout, "NOT in your trust list") {
			t.Errorf("fetch evil/tiny --trust-any: %q, want it marked as not trusted", stdout)
		}
		if strings.Contains(stdout, strangerKey) {
			t.Errorf("the stranger signed no evil/tiny: %q", stdout)
		}
	})
}
