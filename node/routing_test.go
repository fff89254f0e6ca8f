package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/node/api"
	homedir "github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/policy/denylist"
)

// newDHTNode starts a node on home with the DHT on and no peers: loopback
// only, nothing to dial.
func newDHTNode(t *testing.T, home string) *Node {
	t.Helper()
	if err := InitHome(home, nil, ""); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Config{
		Home:    home,
		Listen:  []string{"/ip4/127.0.0.1/tcp/0"},
		DHTMode: DHTAuto,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeProvideTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// provideList is the persistent provide list, as a set.
func provideList(t *testing.T, n *Node) map[string]bool {
	t.Helper()
	keys, err := n.routing.ProvideList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		out[k.B58String()] = true
	}
	return out
}

// TestProvideList: add announces the root and each file root inside a
// directory, never inner blocks; the list survives a restart; rm
// withdraws.
func TestProvideList(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// keys is the number of announced keys: the root plus one per file.
		keys int
	}{
		{"a single file is one key", map[string]string{"f": "weights"}, 1},
		{"a directory is its root and every file, nested too", map[string]string{
			"config.json": "{}", "model.bin": "weights", "tokenizer/vocab.txt": "a b c",
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			src := filepath.Join(t.TempDir(), "model")
			writeProvideTree(t, src, tt.files)
			if len(tt.files) == 1 {
				src = filepath.Join(src, "f")
			}
			n := newDHTNode(t, home)
			res, err := n.Add(context.Background(), src, nil)
			if err != nil {
				t.Fatal(err)
			}
			root, _ := api.ParseCID(res.CID)
			if got := provideList(t, n); len(got) != tt.keys || !got[root.Hash().B58String()] {
				t.Errorf("provide list %v, want %d keys including the root", got, tt.keys)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}

			n = newDHTNode(t, home)
			defer n.Close()
			if got := provideList(t, n); len(got) != tt.keys {
				t.Errorf("after restart the provide list has %d keys, want %d", len(got), tt.keys)
			}
			if err := n.Remove(context.Background(), res.CID); err != nil {
				t.Fatal(err)
			}
			if err := n.routing.Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := provideList(t, n); len(got) != 0 {
				t.Errorf("after rm the provide list still has %v", got)
			}
		})
	}
}

// TestDeniedRootIsWithdrawn: a root a denylist names, added to
// HOME/denylists while the node runs, is withdrawn from the provide list
// at the next reconcile, and a fetch of it is refused naming the list.
func TestDeniedRootIsWithdrawn(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	src := filepath.Join(t.TempDir(), "f")
	writeProvideTree(t, filepath.Dir(src), map[string]string{"f": "weights nobody may share"})
	n := newDHTNode(t, home)
	defer n.Close()
	res, err := n.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := provideList(t, n); len(got) != 1 {
		t.Fatalf("provide list %v, want the root", got)
	}
	list := filepath.Join(homedir.Dir(home).Denylists(), "local.deny")
	if err := os.WriteFile(list, []byte("/ipfs/"+res.CID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.gate.Blocker().Reload()
	n.gate.Recheck(ctx)
	if err := n.routing.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := provideList(t, n); len(got) != 0 {
		t.Errorf("a denied root is still announced: %v", got)
	}
	vr, err := n.Verify(ctx, api.VerifyRequest{})
	if err != nil || len(vr.Denied) != 1 || !strings.Contains(vr.Denied[0], list) {
		t.Errorf("verify: denied %q, %v; want the root, naming %s", vr.Denied, err, list)
	}
	_, err = n.Fetch(ctx, api.FetchRequest{Ref: res.CID, Out: filepath.Join(t.TempDir(), "out")}, nil)
	if !errors.Is(err, denylist.ErrBlocked) || !strings.Contains(err.Error(), list) {
		t.Errorf("fetch of a denied root: %v, want it blocked by %s", err, list)
	}
}
