package p2p

import (
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestAllowedNetGate checks the finite limits for resources.allow
// networks: a flood of handshakes from one LAN address is cut at
// AllowedHandshakesPerAddr, the whole LAN at AllowedHandshakes, a
// classroom of 30 machines (own addresses, or one NAT address) connects,
// and addresses outside the allowed networks never count.
func TestAllowedNetGate(t *testing.T) {
	addr := func(ip string) ma.Multiaddr { return ma.StringCast("/ip4/" + ip + "/tcp/4001") }
	type open struct {
		ip        string
		n         int
		handshake bool // finish the handshake (SetPeer)
		wantOK    int
	}
	cases := []struct {
		why   string
		opens []open
	}{
		{"a half-open flood from one LAN address stops at the per-address handshake limit",
			[]open{{"10.0.0.9", 500, false, AllowedHandshakesPerAddr}}},
		{"a half-open flood from many LAN addresses stops at the LAN-wide handshake limit",
			[]open{{"10.0.0.1", 16, false, 16}, {"10.0.0.2", 16, false, 16}, {"10.0.0.3", 16, false, 0}}},
		{"after a LAN flood, a peer outside the allowed networks still gets through the gate",
			[]open{{"10.0.0.9", 500, false, AllowedHandshakesPerAddr}, {"192.0.2.7", 1, true, 1}}},
		{"30 classroom machines behind one NAT address, two connections each, connect",
			[]open{{"10.1.1.1", 60, true, 60}}},
		{"finished handshakes still count against the per-address connection limit",
			[]open{{"10.1.1.1", AllowedConnsPerAddr + 10, true, AllowedConnsPerAddr}}},
	}
	for _, tc := range cases {
		t.Run(tc.why, func(t *testing.T) {
			cfg := Config{MaxMemory: DefaultMaxMemory, MaxConns: DefaultMaxConns, AllowNets: []string{"/ip4/10.0.0.0/ipcidr/8"}}
			rm, err := newResourceManager(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rm.Close()
			var scopes []network.ConnManagementScope
			defer func() {
				for _, s := range scopes {
					s.Done()
				}
			}()
			id := 0
			for _, o := range tc.opens {
				ok := 0
				for range o.n {
					s, err := rm.OpenConnection(network.DirInbound, true, addr(o.ip))
					if err != nil {
						continue
					}
					scopes = append(scopes, s)
					if o.handshake {
						id++
						if err := s.SetPeer(peer.ID(fmt.Sprintf("peer-%d", id))); err != nil {
							t.Fatalf("SetPeer: %v", err)
						}
					}
					ok++
				}
				if ok != o.wantOK {
					t.Errorf("%s: %d of %d connections opened, want %d", o.ip, ok, o.n, o.wantOK)
				}
			}
		})
	}
}

// TestAllowedNetGateReleases checks that closed connections and finished
// handshakes give their slots back.
func TestAllowedNetGateReleases(t *testing.T) {
	cfg := Config{MaxMemory: DefaultMaxMemory, MaxConns: DefaultMaxConns, AllowNets: []string{"/ip4/10.0.0.0/ipcidr/8"}}
	rm, err := newResourceManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	a := ma.StringCast("/ip4/10.0.0.9/tcp/1")
	for round := range 3 {
		var scopes []network.ConnManagementScope
		for range AllowedHandshakesPerAddr {
			s, err := rm.OpenConnection(network.DirInbound, true, a)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			scopes = append(scopes, s)
		}
		if _, err := rm.OpenConnection(network.DirInbound, true, a); !errors.Is(err, errAllowedNetLimit) {
			t.Fatalf("round %d: over the limit: err = %v", round, err)
		}
		for _, s := range scopes {
			s.Done()
			s.Done() // twice is harmless
		}
	}
	g := rm.(*allowedNetGate)
	if len(g.conns) != 0 || len(g.handshakes) != 0 || g.handshakeN != 0 {
		t.Errorf("slots left after every connection closed: %v %v %d", g.conns, g.handshakes, g.handshakeN)
	}
}
