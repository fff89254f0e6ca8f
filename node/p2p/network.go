// Package p2p is a node's side of the libp2p network: the host (TCP and
// QUIC, Noise and TLS, yamux), NAT traversal and relays, a private network
// from a swarm key, the resource manager with finite limits for allowed
// LAN networks, discovery (mDNS on the LAN, the bootstrap peers), and
// content routing (the dual Kademlia DHT and the provider that announces
// what the node holds).
//
// It moves no content itself: bitswap and allmende's own protocols
// (package protocol) run on the host it builds.
package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the network's limits (node.Config applies them to fields
// left zero).
const (
	DefaultConnsLow  = 64
	DefaultConnsHigh = 256
	DefaultMaxMemory = 1 << 30
	DefaultMaxConns  = 1024
)

// Config is what the network needs; node.Config's keys of the same names
// (configs/default.yaml) document each field.
type Config struct {
	// Listen are the multiaddrs the host listens on.
	Listen []string
	// SwarmKey is the path of a private network key, or empty.
	SwarmKey string
	// NAT enables port mapping, AutoNAT, hole punching and relay client.
	NAT bool
	// RelayService makes the node a circuit relay v2 for other peers.
	RelayService bool
	// StaticRelays are relays to use instead of ones found in the DHT.
	StaticRelays []string
	// ConnsLow and ConnsHigh are the connection manager's watermarks.
	ConnsLow, ConnsHigh int
	// MaxMemory caps the resource manager's memory budget, in bytes.
	MaxMemory int64
	// MaxConns caps the number of connections.
	MaxConns int
	// AllowNets are multiaddrs exempt from the per-IP limits (see rcmgr.go).
	AllowNets []string
	// DHTMode is auto, server, client or off (the DHT* constants).
	DHTMode string
	// MDNS enables LAN discovery.
	MDNS bool
	// Bootstrap peers are dialled at start.
	Bootstrap []string
	// Offline builds a host with no transport that listens nowhere (and
	// dials nothing); NAT, relays and the DHT are off with it.
	Offline bool
	// Metrics receives libp2p's metrics (the host's and the resource
	// manager's); nil gives them a registry of their own.
	Metrics prometheus.Registerer
	// Logger receives the network's logs; it must not be nil.
	Logger *slog.Logger
}

// Network is a running host with its routing and discovery.
type Network struct {
	// Host is the libp2p host.
	Host host.Host
	// Routing is the DHT and the provider; nil when dht.mode is off (its
	// methods then do nothing).
	Routing *Routing

	cfg       Config
	log       *slog.Logger
	bootstrap []peer.AddrInfo
	// stopMDNS stops LAN discovery; nil when mDNS is off.
	stopMDNS func() error
}

// New starts the host and the routing on it (keeping the provide list in
// st's metadata datastore). Discovery starts with Start.
func New(cfg Config, sk crypto.PrivKey, st *store.Store) (net *Network, err error) {
	bootstrap, err := ParseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	relays := &relayFinder{}
	h, err := newHost(cfg, sk, relays)
	if err != nil {
		return nil, err
	}
	rt, err := newRouting(cfg, h, st, bootstrap)
	if err != nil {
		h.Close()
		return nil, err
	}
	relays.dht.Store(rt.DHT())
	return &Network{Host: h, Routing: rt, cfg: cfg, log: cfg.Logger, bootstrap: bootstrap}, nil
}

// StopDiscovery stops mDNS and the routing; the caller has cancelled the
// context given to Start. The host stays up until the caller closes it.
func (n *Network) StopDiscovery() error {
	var err error
	if n.stopMDNS != nil {
		err = n.stopMDNS()
	}
	return errors.Join(err, n.Routing.Close())
}

// ID returns the host's peer ID and full multiaddrs (with /p2p/<id>).
func (n *Network) ID() (api.IDInfo, error) {
	info := api.IDInfo{ID: n.Host.ID().String()}
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()})
	if err != nil {
		return info, err
	}
	for _, a := range full {
		info.Addrs = append(info.Addrs, a.String())
	}
	sort.Strings(info.Addrs)
	return info, nil
}

// Connect dials the peer at addr, a multiaddr ending in /p2p/<id>. A new
// connection over QUIC to a peer that listens on TCP at the same LAN
// address moves to TCP (moveToLANTCP).
func (n *Network) Connect(ctx context.Context, addr string) error {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w: %v", addr, api.ErrBadInput, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return fmt.Errorf("connect %s: %w: the address must end in /p2p/<peer id>", addr, api.ErrBadInput)
	}
	fresh := n.Host.Network().Connectedness(ai.ID) != network.Connected
	if err := n.Host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	if fresh {
		n.moveToLANTCP(ctx, *ai)
	}
	return nil
}

// Peers lists connected peers, each once (with the address of one of its
// connections: two nodes that dial each other at once have two).
func (n *Network) Peers() []api.PeerInfo {
	var out []api.PeerInfo
	for _, p := range n.Host.Network().Peers() {
		conns := n.Host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		out = append(out, api.PeerInfo{ID: p.String(), Addr: conns[0].RemoteMultiaddr().String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Provider lookups.
const (
	// findProvidersTimeout bounds one FindProviders lookup.
	findProvidersTimeout = 20 * time.Second
	// maxProviders is the most providers one lookup returns.
	maxProviders = 20
)

// FindProviders asks the DHT (LAN and WAN) which peers announce ref, a
// CID, and returns their peer IDs (this node excluded).
func (n *Network) FindProviders(ctx context.Context, ref string) ([]string, error) {
	c, err := api.ParseCID(ref)
	if err != nil {
		return nil, err
	}
	d := n.Routing.DHT()
	if d == nil {
		return nil, fmt.Errorf("find providers: %w: the DHT is off (dht.mode)", api.ErrBadInput)
	}
	ctx, cancel := context.WithTimeout(ctx, findProvidersTimeout)
	defer cancel()
	ids := []string{}
	for p := range d.FindProvidersAsync(ctx, c, maxProviders) {
		if p.ID != n.Host.ID() {
			ids = append(ids, p.ID.String())
		}
	}
	return ids, nil
}
