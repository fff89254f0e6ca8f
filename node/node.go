// Package node is allmende's composition root: New opens the store under
// HOME and wires the packages below it into a running node (the network
// of node/p2p, bitswap and the bulk server of package protocol, the fetch
// engine, the model registry), RunDaemon serves it on the local HTTP API
// and, if configured, the LAN mirror. Config, creating and locking HOME
// (whose files node/home names) are here too. *Node implements api.API,
// mostly by delegating to those packages. It is the only package that
// imports all the others; none below it imports it.
package node

import (
	"context"
	"errors"
	"log/slog"
	"sort"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/node/gate"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/node/p2p"
	"github.com/allmende/allmende/node/pace"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/ipfs/go-metrics-interface"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
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
	guard *protocol.Guard
	bserv blockservice.BlockService
	// netDAG is the network DAG: it reads the store's blocks and fetches
	// the others through bitswap, storing them (store.LocalDAG never
	// leaves the disk).
	netDAG ipld.DAGService
	cancel context.CancelFunc
	// ctx lives as long as the node: background work runs under it.
	ctx context.Context
	// upLimit and downLimit pace bytes sent and received (bandwidth.up,
	// bandwidth.down); nil means no limit.
	upLimit, downLimit *rate.Limiter
	// net is the libp2p side: host, routing, discovery.
	net *p2p.Network
	// routing is the DHT and the provider; nil when dht.mode is off.
	routing *p2p.Routing
	// fetch is the fetch engine.
	fetch *fetch.Engine
	// bulk serves the store's blocks over allmende's bulk protocol.
	bulk *protocol.BulkServer
	// models is the model registry: manifests, names, sha256 lookups.
	models *models.Registry
	// gate enforces the denylists and the licence policy, and counts
	// refusals.
	gate *gate.Gate
	// collectors are the node's own metrics, registered on cfg.Metrics
	// until Close.
	collectors []prometheus.Collector
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
	net, err := p2p.New(p2pConfig(cfg), sk, st)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() error { return errors.Join(net.StopDiscovery(), net.Host.Close()) })
	h, rt := net.Host, net.Routing

	held := &heldModels{}
	g, err := openGate(cfg, held)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, g.Blocker().Close)

	runCtx, cancel := context.WithCancel(context.Background())
	guard := protocol.NewGuard(h, cfg.Logger)
	upLimit := pace.NewLimiter(cfg.BandwidthUp)
	served := pace.Reads(st.Serving(), upLimit)
	// Bitswap's metrics are named ipfs_bitswap_* (see ProcessMetrics).
	bs := protocol.NewBitswap(metrics.CtxScope(runCtx, bitswapMetricsScope), h, rt.ContentDiscovery(),
		g.Serving(served, policy.SurfaceBitswap),
		protocol.BitswapConfig{SendAllowance: cfg.SendAllowance, Guard: guard, Log: cfg.Logger})
	cleanups = append(cleanups, bs.Close)
	bserv := blockservice.New(st.Blockstore(), bs, blockservice.WriteThrough(true))
	if cfg.Offline {
		// Only what the store holds: a missing block is not found at once.
		bserv = blockservice.New(st.Blockstore(), nil, blockservice.WriteThrough(true))
	}
	n = &Node{
		cfg:       cfg,
		log:       cfg.Logger,
		lock:      lock,
		store:     st,
		host:      h,
		bitswap:   bs,
		bserv:     bserv,
		netDAG:    merkledag.NewDAGService(bserv),
		cancel:    cancel,
		ctx:       runCtx,
		upLimit:   upLimit,
		downLimit: pace.NewLimiter(cfg.BandwidthDown),
		net:       net,
		gate:      g,
	}
	held.n = n
	n.bulk = protocol.NewBulkServer(h, g.Serving(served, policy.SurfaceBulk), cfg.Logger)
	n.guard = guard
	n.routing = rt
	n.fetch = fetch.New(fetch.Config{
		Store: st, Net: n.netDAG, Host: h, Guard: guard, Down: n.downLimit,
		Timeout: cfg.FetchTimeout, Parallel: cfg.FetchParallel, Copy: cfg.FetchCopy,
		Announce: rt.Announce, Log: cfg.Logger,
		Refuse:    func(c cid.Cid) error { return g.CID(c, policy.SurfaceFetch) },
		SuperSeed: cfg.SuperSeed,
	})
	n.fetch.ServeSwarm(n.bulk)
	var dht models.Providers // an untyped nil when the DHT is off
	if d := rt.DHT(); d != nil {
		dht = d
	}
	n.models, err = models.Open(ctx, models.Config{Home: cfg.Home, Store: st, Host: h, Guard: guard,
		Fetch: n.fetch, DHT: dht, Timeout: cfg.FetchTimeout, Gate: g, Indexed: func() { g.Recheck(runCtx) }, Log: cfg.Logger})
	if err != nil {
		cancel()
		return nil, err
	}
	n.routing.AnnounceExtra(n.models.Index().SHA256KeysOf)
	n.routing.AnnounceFilter(func(c cid.Cid) bool { return g.Blocked(c, policy.SurfaceAnnounce) })
	if err := n.registerMetrics(cfg.Metrics); err != nil {
		cancel()
		return nil, err
	}
	g.Recheck(ctx)
	go g.Run(runCtx) // closes the blocker when the node stops
	n.net.Start(runCtx)
	n.log.Info("node started", "peer", h.ID().String(), "addrs", h.Addrs(), "offline", cfg.Offline)
	return n, nil
}

// Close stops the node and releases its store and home.
func (n *Node) Close() error {
	n.cancel()
	n.fetch.Close()
	n.unregisterMetrics()
	err := n.net.StopDiscovery()
	err = errors.Join(err, n.bserv.Close(), n.bitswap.Close(), n.host.Close(), n.store.Close())
	return errors.Join(err, n.lock.release())
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
		return api.BadInputIf(err, store.ErrNotFound) // not pinned here
	}
	n.routing.ReconcileSoon()
	return nil
}

// GC frees every block no pin holds; with req.Denied it first unpins the
// roots the policy now refuses to pass on (see gcDenied).
func (n *Node) GC(ctx context.Context, req api.GCRequest) (api.GCResult, error) {
	var unpinned []string
	if req.Denied {
		var err error
		if unpinned, err = n.unpinDenied(ctx); err != nil {
			return api.GCResult{Unpinned: unpinned}, err
		}
	}
	res, err := n.store.GC(ctx)
	return api.GCResult{Unpinned: unpinned, Removed: res.Removed, Freed: res.Freed, Kept: res.Kept}, err
}

// Stats returns transfer counters.
func (n *Node) Stats(context.Context) (api.Stats, error) {
	st, err := n.bitswap.Stat()
	if err != nil {
		return api.Stats{}, err
	}
	recvBytes, recvBlocks := n.fetch.BulkReceived()
	sentBytes, sentBlocks := n.bulk.Sent()
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
