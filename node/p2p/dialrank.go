package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// lanOtherDelay is how long after its plain TCP addresses on the LAN the
// ranker dials a peer's other addresses (QUIC, public, relays). Long
// enough that a TCP connect on a LAN (well under a millisecond, more on a
// loaded machine) is under way, after which go-libp2p holds further dials
// until its upgrade ends; short enough that a peer whose TCP port is
// blocked is still reached over QUIC at once.
const lanOtherDelay = 100 * time.Millisecond

// tcpFirstOnLAN is the host's dial ranker. To a peer with plain TCP
// addresses on a private or loopback network it dials those first, and
// everything else lanOtherDelay later: on a LAN there is no NAT for QUIC
// to traverse, and QUIC costs three to four times TCP's CPU per byte
// (docs/swarm.md: on loopback one stream ran at 194 MB/s over QUIC
// against 554 over TCP), so the connection a fetch runs on should be TCP.
// Without such addresses it is go-libp2p's DefaultDialRanker (QUIC
// first). The price: a remote peer that also announces private addresses
// (its home network's) is reached up to lanOtherDelay later.
func tcpFirstOnLAN(addrs []ma.Multiaddr) []network.AddrDelay {
	var lanTCP, rest []ma.Multiaddr
	for _, a := range addrs {
		if isLANTCP(a) {
			lanTCP = append(lanTCP, a)
		} else {
			rest = append(rest, a)
		}
	}
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range lanTCP {
		out = append(out, network.AddrDelay{Addr: a})
	}
	var offset time.Duration
	if len(lanTCP) > 0 {
		offset = lanOtherDelay
	}
	for _, d := range swarm.DefaultDialRanker(rest) {
		d.Delay += offset
		out = append(out, d)
	}
	return out
}

// isLANTCP reports whether a is a plain TCP address (IP, TCP, perhaps the
// peer ID; not relayed, no WebSocket or TLS on top) on a private or
// loopback network.
func isLANTCP(a ma.Multiaddr) bool {
	if !manet.IsPrivateAddr(a) && !manet.IsIPLoopback(a) {
		return false
	}
	var codes []int
	for _, c := range a {
		if code := c.Protocol().Code; code != ma.P_P2P {
			codes = append(codes, code)
		}
	}
	return len(codes) == 2 && (codes[0] == ma.P_IP4 || codes[0] == ma.P_IP6) && codes[1] == ma.P_TCP
}
