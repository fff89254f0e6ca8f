package p2p

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/peer"
)

// natOptions are the libp2p options for NAT traversal and relaying:
//   - cfg.NAT: UPnP/NAT-PMP port mapping, AutoNAT v2, hole punching (DCUtR)
//     and circuit relay v2 as a client, through cfg.StaticRelays or, if
//     none are set, relays found among the DHT's WAN peers;
//   - cfg.RelayService: serve as a (resource-limited) relay for others, for
//     a public seed server. libp2p runs the relay only while the node is
//     publicly reachable: with cfg.NAT, once AutoNAT v2 confirms it; without
//     cfg.NAT the operator's word is taken (a server on a public address).
//
// With neither, the relay transport is off too.
func natOptions(cfg Config, relays *relayFinder) ([]libp2p.Option, error) {
	var opts []libp2p.Option
	if !cfg.NAT && !cfg.RelayService {
		return []libp2p.Option{libp2p.DisableRelay()}, nil
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if !cfg.NAT {
		return append(opts, libp2p.ForceReachabilityPublic()), nil
	}
	opts = append(opts,
		libp2p.NATPortMap(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableHolePunching(),
	)
	if len(cfg.StaticRelays) > 0 {
		static, err := ParseBootstrap(cfg.StaticRelays)
		if err != nil {
			return nil, fmt.Errorf("relay.static: %w", err)
		}
		return append(opts, libp2p.EnableAutoRelayWithStaticRelays(static)), nil
	}
	return append(opts, libp2p.EnableAutoRelayWithPeerSource(relays.peers)), nil
}

// relayFinder offers the DHT's WAN peers to AutoRelay as relay
// candidates. The host needs it before the DHT exists, so the DHT is set
// later; until then it offers nobody.
type relayFinder struct {
	dht atomic.Pointer[dual.DHT]
}

// peers sends up to num WAN routing table peers (AutoRelay checks which of
// them actually offer the relay protocol).
func (f *relayFinder) peers(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		d := f.dht.Load()
		if d == nil {
			return
		}
		ps := d.WAN.Host().Peerstore()
		for _, p := range d.WAN.RoutingTable().ListPeers() {
			if num <= 0 {
				return
			}
			select {
			case out <- ps.PeerInfo(p):
				num--
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
