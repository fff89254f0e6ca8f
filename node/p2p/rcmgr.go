package p2p

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Limits on inbound connections from networks in resources.allow. libp2p's
// allowlist lifts its per-address limit (8 connections per IPv4 address)
// for them altogether, so that a classroom behind one address can reach a
// LAN mirror; then one machine on the LAN could hold every inbound slot
// with connections that never finish their handshake (libp2p keeps each
// for its 15 s accept timeout). These put finite limits back.
const (
	// AllowedConnsPerAddr caps the connections from one address in an
	// allowed network: 30 machines behind one NAT address with a TCP and a
	// QUIC connection each fit twice over.
	AllowedConnsPerAddr = 128
	// AllowedHandshakesPerAddr caps the connections from one allowed
	// address still in their security handshake. An honest peer finishes
	// it in milliseconds on a LAN.
	AllowedHandshakesPerAddr = 16
	// AllowedHandshakes caps the handshakes in progress from all allowed
	// networks together. It is below libp2p's transient inbound limit
	// (48 at the default memory budget), which allowed networks share
	// with everyone, so a flood from the LAN leaves room for others.
	AllowedHandshakes = 32
	// AllowedConnRate and AllowedConnBurst bound how fast allowed networks
	// together may open connections (per second, and at once). libp2p's
	// default, 0.2 per second after a burst of 16 for each IPv4 address,
	// would keep most of a classroom behind one NAT address waiting.
	AllowedConnRate  = 50
	AllowedConnBurst = 256
)

// libp2p's connection rate limits for every other address, as in its
// defaults (which it does not export).
var (
	defaultIPv4ConnRates = []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 0.2, Burst: 16}}}
	defaultIPv6ConnRates = []rate.SubnetLimit{
		{PrefixLength: 56, Limit: rate.Limit{RPS: 0.2, Burst: 16}},
		{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5, Burst: 80}},
	}
)

// allowedPrefixes turns resources.allow multiaddrs into IP prefixes.
func allowedPrefixes(allow []ma.Multiaddr) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range allow {
		n, err := manet.MultiaddrToIPNet(a)
		if err != nil {
			return nil, fmt.Errorf("allow list entry %s: %w", a, err)
		}
		p, err := netip.ParsePrefix(n.String())
		if err != nil {
			return nil, fmt.Errorf("allow list entry %s: %w", a, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// newConnRateLimiter is libp2p's default connection rate limiter (loopback
// unlimited, per-subnet limits for the rest) with one shared, finite
// budget for the allowed networks instead of the per-address one.
func newConnRateLimiter(allowed []netip.Prefix) *rate.Limiter {
	prefixes := []rate.PrefixLimit{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
		{Prefix: netip.MustParsePrefix("::1/128")},
	}
	for _, p := range allowed {
		prefixes = append(prefixes, rate.PrefixLimit{Prefix: p, Limit: rate.Limit{RPS: AllowedConnRate, Burst: AllowedConnBurst}})
	}
	return &rate.Limiter{
		NetworkPrefixLimits: prefixes,
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: defaultIPv4ConnRates,
			IPv6SubnetLimits: defaultIPv6ConnRates,
			GracePeriod:      time.Minute,
		},
	}
}

// errAllowedNetLimit refuses a connection over the limits above.
var errAllowedNetLimit = errors.New("allowed network connection limit")

// allowedNetGate wraps a resource manager and applies the Allowed* limits
// to inbound connections from allowed networks before the inner manager
// sees them.
type allowedNetGate struct {
	network.ResourceManager
	nets []netip.Prefix

	mu         sync.Mutex
	conns      map[netip.Addr]int // per address, handshaking or not
	handshakes map[netip.Addr]int // per address, not yet bound to a peer
	handshakeN int                // sum of handshakes
}

// newAllowedNetGate gates inner for the allowed networks.
func newAllowedNetGate(inner network.ResourceManager, allowed []netip.Prefix) *allowedNetGate {
	return &allowedNetGate{ResourceManager: inner, nets: allowed, conns: map[netip.Addr]int{}, handshakes: map[netip.Addr]int{}}
}

func (g *allowedNetGate) allowed(endpoint ma.Multiaddr) (netip.Addr, bool) {
	ip, err := manet.ToIP(endpoint)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	for _, p := range g.nets {
		if p.Contains(addr) {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// OpenConnection implements network.ResourceManager.
func (g *allowedNetGate) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	addr, ok := g.allowed(endpoint)
	if !ok || dir != network.DirInbound {
		return g.ResourceManager.OpenConnection(dir, usefd, endpoint)
	}
	g.mu.Lock()
	switch {
	case g.conns[addr] >= AllowedConnsPerAddr:
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d connections from %s", errAllowedNetLimit, AllowedConnsPerAddr, addr)
	case g.handshakes[addr] >= AllowedHandshakesPerAddr:
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d handshakes from %s", errAllowedNetLimit, AllowedHandshakesPerAddr, addr)
	case g.handshakeN >= AllowedHandshakes:
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d handshakes from allowed networks", errAllowedNetLimit, AllowedHandshakes)
	}
	g.conns[addr]++
	g.handshakes[addr]++
	g.handshakeN++
	g.mu.Unlock()
	s, err := g.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil {
		g.release(addr, true)
		return nil, err
	}
	return &gatedConnScope{ConnManagementScope: s, g: g, addr: addr, handshaking: true}, nil
}

// release gives back a connection, and its handshake slot if it held one.
func (g *allowedNetGate) release(addr netip.Addr, handshake bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if handshake {
		g.handshakeDoneLocked(addr)
	}
	if g.conns[addr]--; g.conns[addr] <= 0 {
		delete(g.conns, addr)
	}
}

func (g *allowedNetGate) handshakeDoneLocked(addr netip.Addr) {
	g.handshakeN--
	if g.handshakes[addr]--; g.handshakes[addr] <= 0 {
		delete(g.handshakes, addr)
	}
}

// gatedConnScope frees its handshake slot once bound to a peer and its
// connection slot when done.
type gatedConnScope struct {
	network.ConnManagementScope
	g    *allowedNetGate
	addr netip.Addr

	mu          sync.Mutex
	handshaking bool
	done        bool
}

// SetPeer implements network.ConnManagementScope: the handshake is over.
func (s *gatedConnScope) SetPeer(p peer.ID) error {
	if err := s.ConnManagementScope.SetPeer(p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handshaking && !s.done {
		s.handshaking = false
		s.g.mu.Lock()
		s.g.handshakeDoneLocked(s.addr)
		s.g.mu.Unlock()
	}
	return nil
}

// Done implements network.ConnManagementScope.
func (s *gatedConnScope) Done() {
	s.mu.Lock()
	if !s.done {
		s.done = true
		s.g.release(s.addr, s.handshaking)
		s.handshaking = false
	}
	s.mu.Unlock()
	s.ConnManagementScope.Done()
}
