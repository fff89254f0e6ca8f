package p2p

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/allmende/allmende/store/storetest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestTCPFirstOnLANOrder: plain TCP on a private or loopback network is
// dialled at once and everything else lanOtherDelay or more later; a peer
// with no such address gets go-libp2p's ranking (QUIC first).
func TestTCPFirstOnLANOrder(t *testing.T) {
	const (
		lanTCP   = "/ip4/192.168.1.5/tcp/4001"
		lanQUIC  = "/ip4/192.168.1.5/udp/4001/quic-v1"
		loTCP    = "/ip4/127.0.0.1/tcp/4001"
		loQUIC   = "/ip4/127.0.0.1/udp/4001/quic-v1"
		pubTCP   = "/ip4/1.2.3.4/tcp/4001"
		pubQUIC  = "/ip4/1.2.3.4/udp/4001/quic-v1"
		lanWS    = "/ip4/10.0.0.2/tcp/4002/ws"
		lanRelay = "/ip4/10.0.0.3/tcp/4001/p2p/12D3KooWGzBqF6fXDQ1pJxXEA8MTp8dZ6LwEG6jJaVv2ZtDrbWyh/p2p-circuit"
	)
	tests := []struct {
		name  string
		addrs []string
		first []string // dialled at delay 0
	}{
		{"LAN TCP before LAN QUIC", []string{lanQUIC, lanTCP}, []string{lanTCP}},
		{"loopback TCP before loopback QUIC", []string{loQUIC, loTCP}, []string{loTCP}},
		{"LAN TCP before public QUIC", []string{pubQUIC, pubTCP, lanQUIC, lanTCP}, []string{lanTCP}},
		{"public only: QUIC first", []string{pubTCP, pubQUIC}, []string{pubQUIC}},
		{"LAN QUIC only", []string{lanQUIC}, []string{lanQUIC}},
		{"WebSocket is not plain TCP", []string{lanWS, lanQUIC}, []string{lanQUIC}},
		{"a relay on the LAN is a relay, as go-libp2p ranks it", []string{lanRelay, lanQUIC}, []string{lanQUIC, lanRelay}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []ma.Multiaddr
			for _, s := range tt.addrs {
				addrs = append(addrs, ma.StringCast(s))
			}
			ranked := tcpFirstOnLAN(addrs)
			if len(ranked) != len(addrs) {
				t.Fatalf("ranked %d addresses of %d: %v", len(ranked), len(addrs), ranked)
			}
			var first []string
			for _, d := range ranked {
				if d.Delay == 0 {
					first = append(first, d.Addr.String())
				} else if isLANTCP(d.Addr) {
					t.Errorf("%s delayed by %s", d.Addr, d.Delay)
				} else if len(tt.first) > 0 && isLANTCP(ma.StringCast(tt.first[0])) && d.Delay < lanOtherDelay {
					t.Errorf("%s dialled %s after LAN TCP, want at least %s", d.Addr, d.Delay, lanOtherDelay)
				}
			}
			if len(first) != len(tt.first) || (len(first) > 0 && first[0] != tt.first[0]) {
				t.Errorf("dialled at once: %v, want %v", first, tt.first)
			}
		})
	}
}

// TestLoopbackPeersConnectOverTCP: two hosts listening on TCP and QUIC on
// loopback, one dialling the other with every address it has, end up on
// a TCP connection.
func TestLoopbackPeersConnectOverTCP(t *testing.T) {
	var nets []*Network
	for range 2 {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{
			Listen:   []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"},
			ConnsLow: 16, ConnsHigh: 64, MaxMemory: 1 << 28, MaxConns: 256,
			DHTMode: DHTOff,
			Logger:  slog.New(slog.DiscardHandler),
		}, sk, storetest.New(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeNetwork(t, n) })
		nets = append(nets, n)
	}
	a, b := nets[0].Host, nets[1].Host
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection after Connect")
	}
	for _, c := range conns {
		if !isLANTCP(c.RemoteMultiaddr()) {
			t.Errorf("connection over %s (of %v), want TCP", c.RemoteMultiaddr(), b.Addrs())
		}
	}
}
