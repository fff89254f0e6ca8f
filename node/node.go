// Package node wires allmende together: the libp2p host, bitswap, the
// store, fetch orchestration across peers, and the local HTTP API that the
// CLI talks to. It is the only package that imports all the others.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"
)

// Node is a running allmende node: a store served and fetched over libp2p.
type Node struct {
	cfg     Config
	log     *slog.Logger
	lock    *homeLock
	store   *store.Store
	host    host.Host
	bitswap *bitswap.Bitswap
	// guard counts corrupt blocks per peer and cuts liars off.
	guard  *protocol.Guard
	bserv  blockservice.BlockService
	dag    ipld.DAGService
	cancel context.CancelFunc
	// ctx lives as long as the node: background work runs under it.
	ctx context.Context
	// upLimit and downLimit pace bytes sent and received (bandwidth.up,
	// bandwidth.down); nil means no limit.
	upLimit, downLimit *rate.Limiter
	// routing is the DHT and the provider; nil when dht.mode is off.
	routing *dhtRouting
	// stopMDNS stops LAN discovery; nil when mdns.enabled is false.
	stopMDNS func() error
	// transfers are the fetches in progress.
	transfers transferTable
	// models indexes the models this node holds (see models.go).
	models *modelIndex
	// bulk is allmende's bulk transfer protocol (see bulk.go).
	bulk *bulkService
}

// New opens home's store and starts a node on it. It holds the home lock
// until Close, so two processes never share a store.
func New(ctx context.Context, cfg Config) (n *Node, err error) {
	cfg.setDefaults()
	if cfg.StorePath == "" {
		cfg.StorePath = DefaultStorePath(cfg.Home)
	}
	lock, err := lockHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	var cleanups []func() error
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
			lock.release()
		}
	}()
	sk, err := loadIdentity(cfg.Home)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.StorePath, store.Options{Sync: cfg.StoreSync, DirectIO: cfg.StoreDirectIO, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, st.Close)
	bootstrap, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	relays := &relayFinder{}
	h, err := newHost(cfg, sk, relays)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, h.Close)
	rt, err := newRouting(cfg, h, st, bootstrap)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, rt.Close)
	relays.dht.Store(rt.router())

	runCtx, cancel := context.WithCancel(context.Background())
	guard := protocol.NewGuard(h, cfg.Logger)
	upLimit := newLimiter(cfg.BandwidthUp)
	served := paceReads(st.Serving(), upLimit)
	bs := protocol.NewBitswap(runCtx, h, rt.contentDiscovery(), served, protocol.BitswapConfig{SendAllowance: cfg.SendAllowance, Guard: guard, Log: cfg.Logger})
	bserv := blockservice.New(st.Blockstore(), bs, blockservice.WriteThrough(true))
	n = &Node{
		cfg:       cfg,
		log:       cfg.Logger,
		lock:      lock,
		store:     st,
		host:      h,
		bitswap:   bs,
		bserv:     bserv,
		dag:       merkledag.NewDAGService(bserv),
		cancel:    cancel,
		ctx:       runCtx,
		upLimit:   upLimit,
		downLimit: newLimiter(cfg.BandwidthDown),
	}
	n.bulk = newBulkService(h, served, cfg.Logger)
	n.bulk.guard = guard
	n.guard = guard
	n.routing = rt
	if err := n.startModels(ctx); err != nil {
		cancel()
		return nil, err
	}
	n.routing.announceExtra(n.models.sha256KeysOf)
	n.startDiscovery(runCtx, bootstrap)
	n.log.Info("node started", "peer", h.ID().String(), "addrs", h.Addrs())
	return n, nil
}

// Close stops the node and releases its store and home.
func (n *Node) Close() error {
	n.cancel()
	err := n.stopDiscovery()
	err = errors.Join(err, n.bserv.Close(), n.bitswap.Close(), n.host.Close(), n.store.Close())
	return errors.Join(err, n.lock.release())
}

// Store is the node's store.
func (n *Node) Store() *store.Store { return n.store }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// ID returns the node's peer ID and full multiaddrs (with /p2p/<id>).
func (n *Node) ID(context.Context) (api.IDInfo, error) {
	info := api.IDInfo{ID: n.host.ID().String()}
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return info, err
	}
	for _, a := range full {
		info.Addrs = append(info.Addrs, a.String())
	}
	sort.Strings(info.Addrs)
	return info, nil
}

// Connect dials the peer at addr, a multiaddr ending in /p2p/<id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w: %v", addr, api.ErrBadInput, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return fmt.Errorf("connect %s: %w: the address must end in /p2p/<peer id>", addr, api.ErrBadInput)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	return nil
}

// Peers lists connected peers, each once (with the address of one of its
// connections: two nodes that dial each other at once have two).
func (n *Node) Peers(context.Context) ([]api.PeerInfo, error) {
	var out []api.PeerInfo
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		out = append(out, api.PeerInfo{ID: p.String(), Addr: conns[0].RemoteMultiaddr().String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// List returns the pinned roots.
func (n *Node) List(ctx context.Context) ([]api.PinInfo, error) {
	pins, err := n.store.Pins(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PinInfo, 0, len(pins))
	for _, p := range pins {
		out = append(out, api.PinInfo{CID: p.CID.String(), Name: p.Name, Size: p.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove unpins root.
func (n *Node) Remove(ctx context.Context, ref string) error {
	c, err := api.ParseCID(ref)
	if err != nil {
		return err
	}
	if err := n.store.Unpin(ctx, c); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %w", api.ErrBadInput, err)
		}
		return err
	}
	n.routing.reconcileSoon()
	return nil
}

// GC frees every block no pin holds.
func (n *Node) GC(ctx context.Context) (api.GCResult, error) {
	res, err := n.store.GC(ctx)
	return api.GCResult(res), err
}

// Stats returns transfer counters.
func (n *Node) Stats(context.Context) (api.Stats, error) {
	st, err := n.bitswap.Stat()
	if err != nil {
		return api.Stats{}, err
	}
	recvBytes, recvBlocks, sentBytes, sentBlocks := n.bulk.stats()
	guard := n.guard.Stats()
	return api.Stats{
		BlocksReceived: st.BlocksReceived + recvBlocks,
		BytesReceived:  st.DataReceived + recvBytes,
		BlocksSent:     st.BlocksSent + sentBlocks,
		BytesSent:      st.DataSent + sentBytes,
		DupBytes:       st.DupDataReceived,
		BadBlocks:      guard.BadBlocks,
		BadBytes:       guard.BadBytes,
		BannedPeers:    guard.Banned,
	}, nil
}
