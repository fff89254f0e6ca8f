package p2p

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/configs"
	"github.com/allmende/allmende/store/storetest"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// newNetwork starts a network on loopback with cfg's settings (listening
// on TCP unless cfg.Listen says otherwise) and a store of its own.
func newNetwork(t *testing.T, cfg Config) (*Network, error) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == nil {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	cfg.ConnsLow, cfg.ConnsHigh, cfg.MaxMemory, cfg.MaxConns = 16, 64, 1<<28, 256
	cfg.Logger = slog.New(slog.DiscardHandler)
	return New(cfg, sk, storetest.New(t))
}

// closeNetwork stops what New started.
func closeNetwork(t *testing.T, n *Network) {
	t.Helper()
	if err := n.StopDiscovery(); err != nil {
		t.Error(err)
	}
	if err := n.Host.Close(); err != nil {
		t.Error(err)
	}
}

// TestDHTModes: every documented dht.mode starts; anything else is bad
// input.
func TestDHTModes(t *testing.T) {
	for _, mode := range []string{DHTAuto, DHTServer, DHTClient, DHTOff, "bogus"} {
		t.Run(mode, func(t *testing.T) {
			n, err := newNetwork(t, Config{DHTMode: mode})
			if mode == "bogus" {
				if err == nil {
					closeNetwork(t, n)
					t.Fatal("bogus dht.mode accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (n.Routing == nil) != (mode == DHTOff) {
				t.Errorf("routing = %v for mode %s", n.Routing, mode)
			}
			closeNetwork(t, n)
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
	n, err := newNetwork(t, Config{DHTMode: DHTOff, RelayService: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNetwork(t, n)
	const hop = "/libp2p/circuit/relay/0.2.0/hop"
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(n.Host.Mux().Protocols(), hop) {
		if time.Now().After(deadline) {
			t.Fatalf("relay service on, but %s is not served: %v", hop, n.Host.Mux().Protocols())
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
	infos, err := ParseBootstrap(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(want) {
		t.Errorf("%d peers parsed from %d addresses", len(infos), len(want))
	}
}

// TestConnectMovesQUICToLANTCP: a connection made by a peer's QUIC address
// moves to TCP when the peer listens on TCP at the same address, and stays
// as dialled otherwise.
func TestConnectMovesQUICToLANTCP(t *testing.T) {
	const tcp, quic = "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"
	tests := []struct {
		name   string
		listen []string // the dialled peer's
		dial   string   // the address dialled: "quic-v1" or "tcp"
		want   string
	}{
		{"by QUIC address, peer on both: TCP", []string{tcp, quic}, "quic-v1", "tcp"},
		{"by QUIC address, peer on QUIC only: QUIC", []string{quic}, "quic-v1", "quic-v1"},
		{"by TCP address: TCP", []string{tcp, quic}, "tcp", "tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newNetwork(t, Config{DHTMode: DHTOff, Listen: []string{tcp, quic}})
			if err != nil {
				t.Fatal(err)
			}
			defer closeNetwork(t, a)
			b, err := newNetwork(t, Config{DHTMode: DHTOff, Listen: tt.listen})
			if err != nil {
				t.Fatal(err)
			}
			defer closeNetwork(t, b)
			var addr string
			for _, m := range b.Host.Addrs() {
				if strings.Contains(m.String(), "/"+tt.dial) {
					addr = m.String() + "/p2p/" + b.Host.ID().String()
				}
			}
			if addr == "" {
				t.Fatalf("b has no %s address: %v", tt.dial, b.Host.Addrs())
			}
			if err := a.Connect(t.Context(), addr); err != nil {
				t.Fatal(err)
			}
			conns := a.Host.Network().ConnsToPeer(b.Host.ID())
			if len(conns) != 1 {
				t.Fatalf("%d connections to b, want 1", len(conns))
			}
			if got := conns[0].RemoteMultiaddr().String(); !strings.Contains(got, "/"+tt.want) {
				t.Errorf("connected over %s, want %s", got, tt.want)
			}
		})
	}
}
