package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestReadOnlyCommandsOffline: with no daemon running, the read-only
// commands answer from HOME without a network: caught at their first
// write to stdout, while the node they opened is still open, they hold no
// TCP or UDP socket at all (none listening, none dialled), and they write
// no HOME/api. The content was added by an embedded node beforehand.
func TestReadOnlyCommandsOffline(t *testing.T) {
	n := harness.NewNode(t)
	file := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, file, 300<<10, 7)
	root := n.Add(file)
	key := strings.TrimSpace(n.MustRun("trust", "key"))
	n.MustRun("trust", "add", key, "--names", "acme/*")

	tests := []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"ls"}, root},
		{[]string{"ls", "--json"}, root},
		{[]string{"id", "--json"}, `"id"`},
		{[]string{"verify"}, "ok: every pinned block"},
		{[]string{"inspect", root}, root},
		{[]string{"trust", "ls"}, key},
		{[]string{"config", "show"}, "listen"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var sockets []harness.Socket
			r := n.RunPaused(func(pid int) {
				var err error
				if sockets, err = harness.InetSockets(pid); err != nil {
					t.Errorf("sockets of %d: %v", pid, err)
				}
			}, tt.args...)
			if r.Code != 0 || !strings.Contains(r.Stdout, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and %q", r.Code, r.Stdout, r.Stderr, tt.want)
			}
			for _, s := range sockets {
				kind := "a dialled"
				if s.Listening() {
					kind = "a listening"
				}
				t.Errorf("%s socket: %s", kind, s)
			}
			harness.AssertAbsent(t, filepath.Join(n.Home, "api"))
		})
	}

	t.Run("the network commands still say they need it", func(t *testing.T) {
		r := n.Run("inspect", "acme/absent")
		if r.Code != 1 || !strings.Contains(r.Stderr, "no daemon is running") {
			t.Errorf("inspect of a name this node lacks: exit %d, stderr %q; want exit 1 naming the missing daemon", r.Code, r.Stderr)
		}
	})

	t.Run("a daemon answers the same afterwards", func(t *testing.T) {
		n.Start()
		var pins []struct {
			CID string `json:"cid"`
		}
		if err := json.Unmarshal([]byte(n.MustRun("ls", "--json")), &pins); err != nil || len(pins) != 1 || pins[0].CID != root {
			t.Errorf("ls through the daemon: %v %v", pins, err)
		}
	})
}
