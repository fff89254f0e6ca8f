package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/configs"
	"github.com/allmende/allmende/node/api"
	dht "github.com/libp2p/go-libp2p-kad-dht"
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
	keys, err := n.routing.keys.Get(context.Background(), "")
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
			if err := n.routing.reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := provideList(t, n); len(got) != 0 {
				t.Errorf("after rm the provide list still has %v", got)
			}
		})
	}
}

// TestDHTModes: every documented dht.mode starts; anything else is bad
// input.
func TestDHTModes(t *testing.T) {
	for _, mode := range []string{DHTAuto, DHTServer, DHTClient, DHTOff, "bogus"} {
		t.Run(mode, func(t *testing.T) {
			home := t.TempDir()
			if err := InitHome(home, nil, ""); err != nil {
				t.Fatal(err)
			}
			n, err := New(context.Background(), Config{Home: home, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, DHTMode: mode})
			if mode == "bogus" {
				if err == nil {
					n.Close()
					t.Fatal("bogus dht.mode accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (n.routing == nil) != (mode == DHTOff) {
				t.Errorf("routing = %v for mode %s", n.routing, mode)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNATOptions: which libp2p options each NAT and relay setting gives
// (building them only: port mapping would talk to the real network).
func TestNATOptions(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		options int
		wantErr bool
	}{
		{"all off disables the relay transport", Config{}, 1, false},
		{"relay service alone: reachability forced public", Config{RelayService: true}, 2, false},
		{"nat: port map, autonat v2, hole punching, autorelay from the DHT", Config{NAT: true}, 4, false},
		{"nat and relay service", Config{NAT: true, RelayService: true}, 5, false},
		{"static relays", Config{NAT: true, StaticRelays: []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWHr1obzx47sc2Xb96txABG8UMTL1Xn93rtXpcqC1qm4gb"}}, 4, false},
		{"a static relay without /p2p is bad input", Config{NAT: true, StaticRelays: []string{"/ip4/127.0.0.1/tcp/1"}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := natOptions(tt.cfg, &relayFinder{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(opts) != tt.options {
				t.Errorf("%d options, want %d", len(opts), tt.options)
			}
		})
	}
}

// TestRelayService: relay.service makes the host serve circuit relay v2
// (started on loopback only).
func TestRelayService(t *testing.T) {
	home := t.TempDir()
	if err := InitHome(home, nil, ""); err != nil {
		t.Fatal(err)
	}
	n, err := New(context.Background(), Config{Home: home, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, RelayService: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	const hop = "/libp2p/circuit/relay/0.2.0/hop"
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(n.host.Mux().Protocols(), hop) {
		if time.Now().After(deadline) {
			t.Fatalf("relay service on, but %s is not served: %v", hop, n.host.Mux().Protocols())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDefaultBootstrap: default.yaml lists exactly the public IPFS
// bootstrap peers, and they parse.
func TestDefaultBootstrap(t *testing.T) {
	var want []string
	for _, a := range dht.DefaultBootstrapPeers {
		want = append(want, a.String())
		if !strings.Contains(string(configs.Default()), a.String()) {
			t.Errorf("default.yaml lacks bootstrap peer %s", a)
		}
	}
	infos, err := parseBootstrap(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(want) {
		t.Errorf("%d peers parsed from %d addresses", len(infos), len(want))
	}
}
