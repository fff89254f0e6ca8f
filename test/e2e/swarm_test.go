package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// swarmKey writes a new swarm.key made by `allmende swarm-key` and
// returns the env entry that points a node at it.
func swarmKey(t *testing.T, n *harness.Node) string {
	t.Helper()
	key := n.MustRun("swarm-key")
	if !strings.HasPrefix(key, "/key/swarm/psk/1.0.0/\n/base16/\n") {
		t.Fatalf("swarm-key printed %q, want the IPFS swarm.key format", key)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	harness.WriteFile(t, path, []byte(key))
	return "ALLMENDE_SWARM_KEY=" + path
}

// TestPrivateSwarm: only nodes with the swarm key connect to a private
// swarm; one with the key fetches from it.
func TestPrivateSwarm(t *testing.T) {
	keygen := harness.NewNode(t)
	key, otherKey := swarmKey(t, keygen), swarmKey(t, keygen)
	a := harness.NewNode(t, key)
	a.Start()
	for _, addr := range a.Addrs() {
		if strings.Contains(addr, "/quic") {
			t.Errorf("private node listens on %s: QUIC cannot use a pre-shared key", addr)
		}
	}
	if !strings.Contains(a.Log(), "private network") {
		t.Errorf("daemon log does not say it runs a private network:\n%s", a.Log())
	}
	f := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, f, 4<<20, 5)
	root := a.Add(f)

	tests := []struct {
		name    string
		env     []string
		connect bool
	}{
		{"no key is refused", nil, false},
		{"another key is refused", []string{otherKey}, false},
		{"the same key connects and fetches", []string{key}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := harness.NewNode(t, tt.env...)
			b.Start()
			r := b.Run("connect", a.TCPAddr())
			if connected := r.Code == 0; connected != tt.connect {
				t.Fatalf("connect: exit %d (stderr %q), want connected=%v", r.Code, r.Stderr, tt.connect)
			}
			if !tt.connect {
				return
			}
			out := filepath.Join(t.TempDir(), "weights.bin")
			b.MustRun("fetch", root, "-o", out)
			harness.AssertSameTree(t, f, out)
		})
	}
}
