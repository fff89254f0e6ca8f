package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	provdual "github.com/libp2p/go-libp2p-kad-dht/provider/dual"
	"github.com/libp2p/go-libp2p-kad-dht/provider/keystore"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// DHT modes, the values of dht.mode.
const (
	// DHTAuto: a DHT server on the LAN; on the WAN a client until AutoNAT
	// finds the node publicly reachable, then a server.
	DHTAuto = "auto"
	// DHTServer: answer DHT queries on both LAN and WAN.
	DHTServer = "server"
	// DHTClient: query the DHT, never answer.
	DHTClient = "client"
	// DHTOff: no DHT; only connected peers are asked for content.
	DHTOff = "off"
)

// Routing constants.
const (
	// ReprovideInterval is how often every announced key is announced
	// again. Provider records live 48 h on the Amino DHT; 22 h is Kubo's
	// interval too.
	ReprovideInterval = amino.DefaultReprovideInterval
	// reconcileInterval is how often the provide list is compared with the
	// pins: keys of new pins are added, keys of removed pins withdrawn.
	reconcileInterval = 10 * time.Minute
	// bootstrapTimeout bounds dialling the configured bootstrap peers.
	bootstrapTimeout = 30 * time.Second
	// providerNamespace is where the provide list and the provider's state
	// live in the store's metadata datastore.
	providerNamespace = "/routing/provider"
)

// Routing is the node's content routing: the dual Kademlia DHT (a LAN
// table for private addresses and a WAN table joined through the
// bootstrap peers) and the provider announcing what the node holds.
//
// Only roots are announced: each pinned root and each file root inside a
// pinned directory, never the blocks below them. A fetch always starts at
// a root; the peers that have the root have the whole DAG (pins are
// recursive), and bitswap asks those peers for every block below it.
//
// A nil *Routing is valid and does nothing (dht.mode off).
type Routing struct {
	log   *slog.Logger
	store *store.Store
	dht   *dual.DHT
	prov  *provdual.SweepingProvider
	keys  keystore.Keystore
	// kick asks the reconcile loop to run now.
	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}

	// reconciling serialises reconcile runs (the loop's and a caller's).
	reconciling sync.Mutex
	mu          sync.Mutex
	// fileRoots caches the keys announced for a pinned root; a root's
	// content never changes, so entries stay valid.
	fileRoots map[cid.Cid][]cid.Cid
	// extraKeys, if set, names more keys to announce for a file root: the
	// whole-file sha256 keys of the models this node holds. Guarded by mu.
	extraKeys func(fileRoot cid.Cid) []mh.Multihash
	// skip, if set, leaves a file root out of what is announced (a
	// denylist or the licence policy refuses it: node/gate).
	skip func(fileRoot cid.Cid) bool
}

// dhtModes maps dht.mode to the WAN and LAN modes.
var dhtModes = map[string][2]dht.ModeOpt{
	DHTAuto:   {dht.ModeAuto, dht.ModeServer},
	DHTServer: {dht.ModeServer, dht.ModeServer},
	DHTClient: {dht.ModeClient, dht.ModeClient},
}

// newRouting starts the DHT and the provider on h, keeping the provide list
// in st's metadata datastore so it survives a restart. It returns nil when
// cfg.DHTMode is off.
func newRouting(cfg Config, h host.Host, st *store.Store, bootstrap []peer.AddrInfo) (*Routing, error) {
	if cfg.DHTMode == DHTOff {
		return nil, nil
	}
	modes, ok := dhtModes[cfg.DHTMode]
	if !ok {
		return nil, fmt.Errorf("dht.mode %q: %w: want auto, server, client or off", cfg.DHTMode, api.ErrBadInput)
	}
	d, err := dual.New(h,
		dual.DHTOption(dht.BootstrapPeers(bootstrap...)),
		dual.WanDHTOption(dht.Mode(modes[0])),
		dual.LanDHTOption(dht.Mode(modes[1])),
	)
	if err != nil {
		return nil, fmt.Errorf("start dht: %w", err)
	}
	ds := namespace.Wrap(st.Meta(), datastore.NewKey(providerNamespace))
	ks, err := keystore.NewKeystore(namespace.Wrap(ds, datastore.NewKey("keys")))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("provide list: %w", err)
	}
	prov, err := provdual.New(d,
		provdual.WithKeystore(ks),
		provdual.WithDatastore(namespace.Wrap(ds, datastore.NewKey("state"))),
		provdual.WithReprovideInterval(ReprovideInterval),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start provider: %w", err), ks.Close(), d.Close())
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Routing{
		log:       cfg.Logger.With("component", "routing"),
		store:     st,
		dht:       d,
		prov:      prov,
		keys:      ks,
		kick:      make(chan struct{}, 1),
		stop:      cancel,
		done:      make(chan struct{}),
		fileRoots: map[cid.Cid][]cid.Cid{},
	}
	go r.run(ctx)
	return r, nil
}

// DHT is the DHT, or nil when dht.mode is off.
func (r *Routing) DHT() *dual.DHT {
	if r == nil {
		return nil
	}
	return r.dht
}

// ContentDiscovery is what bitswap asks for providers: the DHT, or an
// untyped nil (never a nil *dual.DHT in an interface).
func (r *Routing) ContentDiscovery() routing.ContentDiscovery {
	if r == nil {
		return nil
	}
	return r.dht
}

// Close stops the provider and the DHT. Announced keys stay in the provide
// list for the next start.
func (r *Routing) Close() error {
	if r == nil {
		return nil
	}
	r.stop()
	<-r.done
	return errors.Join(r.prov.Close(), r.keys.Close(), r.dht.Close())
}

// run reconciles the provide list with the pins at start, when kicked and
// every reconcileInterval, until ctx ends.
func (r *Routing) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	for {
		if err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("provide list not reconciled with pins", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.kick:
		}
	}
}

// Announce starts providing root (and the file roots inside it) now.
// Errors are logged: the next reconcile retries.
func (r *Routing) Announce(ctx context.Context, root cid.Cid) {
	if r == nil {
		return
	}
	keys, err := r.keysOf(ctx, root)
	if err == nil {
		err = r.prov.StartProviding(false, keys...)
	}
	if err != nil {
		r.log.Warn("announce failed; will retry", "cid", root.String(), "err", err)
		return
	}
	r.log.Info("announcing", "cid", root.String(), "keys", len(keys))
}

// ReconcileSoon asks for a reconcile, e.g. after an unpin.
func (r *Routing) ReconcileSoon() {
	if r == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Reconcile makes the provide list exactly the keys of the pinned roots:
// it adds what is missing and withdraws (with a log line) what no pin
// holds any more.
func (r *Routing) Reconcile(ctx context.Context) error {
	r.reconciling.Lock()
	defer r.reconciling.Unlock()
	pins, err := r.store.Pins(ctx)
	if err != nil {
		return err
	}
	want := map[string]mh.Multihash{}
	for _, p := range pins {
		keys, err := r.keysOf(ctx, p.CID)
		if err != nil {
			return err
		}
		for _, k := range keys {
			want[string(k)] = k
		}
	}
	have, err := r.keys.Get(ctx, "")
	if err != nil {
		return fmt.Errorf("read provide list: %w", err)
	}
	var withdraw []mh.Multihash
	for _, k := range have {
		if _, ok := want[string(k)]; ok {
			delete(want, string(k))
			continue
		}
		withdraw = append(withdraw, k)
	}
	if len(withdraw) > 0 {
		if err := r.prov.StopProviding(withdraw...); err != nil {
			return err
		}
		r.log.Info("withdrawn from the DHT: no pin holds them any more", "keys", len(withdraw))
	}
	add := make([]mh.Multihash, 0, len(want))
	for _, k := range want {
		add = append(add, k)
	}
	if len(add) == 0 {
		return nil
	}
	r.log.Info("announcing pinned roots", "keys", len(add))
	return r.prov.StartProviding(false, add...)
}

// keysOf lists the multihashes announced for a pinned root: the root and,
// if it is a directory, every file root inside it (at any depth).
// Directory and HAMT shard nodes below the root are not announced.
func (r *Routing) keysOf(ctx context.Context, root cid.Cid) ([]mh.Multihash, error) {
	r.mu.Lock()
	roots, ok := r.fileRoots[root]
	extra, skip := r.extraKeys, r.skip
	r.mu.Unlock()
	if !ok {
		roots = []cid.Cid{root}
		err := ufs.WalkFiles(ctx, r.store.LocalDAG(), root, func(c cid.Cid) {
			roots = append(roots, c)
		})
		if err != nil {
			return nil, fmt.Errorf("list file roots of %s: %w", root, err)
		}
		r.mu.Lock()
		r.fileRoots[root] = roots
		r.mu.Unlock()
	}
	keys := make([]mh.Multihash, 0, len(roots))
	for _, c := range roots {
		if skip != nil && skip(c) {
			continue
		}
		keys = append(keys, c.Hash())
		if extra != nil {
			keys = append(keys, extra(c)...)
		}
	}
	return keys, nil
}

// AnnounceExtra makes every reconcile also announce f's keys for each
// file root, and runs one now.
func (r *Routing) AnnounceExtra(f func(fileRoot cid.Cid) []mh.Multihash) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.extraKeys = f
	r.mu.Unlock()
	r.ReconcileSoon()
}

// AnnounceFilter makes every reconcile leave out (and so withdraw) the
// file roots skip refuses, with their extra keys, and runs one now.
func (r *Routing) AnnounceFilter(skip func(fileRoot cid.Cid) bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.skip = skip
	r.mu.Unlock()
	r.ReconcileSoon()
}

// ParseBootstrap turns bootstrap multiaddrs (ending in /p2p/<id>) into
// peer infos, merging addresses of the same peer.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	mas := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w: %v", s, api.ErrBadInput, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap addresses: %w: %v (each must end in /p2p/<peer id>)", api.ErrBadInput, err)
	}
	return infos, nil
}

// connectBootstrap dials the bootstrap peers (in the background: a node
// starts at once even when they are unreachable), then bootstraps the DHT.
func (n *Network) connectBootstrap(ctx context.Context, peers []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
			defer cancel()
			if err := n.Host.Connect(dctx, p); err != nil && ctx.Err() == nil {
				n.log.Warn("bootstrap peer unreachable", "peer", p.ID.String(), "err", err)
			}
		}()
	}
	wg.Wait()
	if d := n.Routing.DHT(); d != nil && ctx.Err() == nil {
		if err := d.Bootstrap(ctx); err != nil {
			n.log.Warn("dht bootstrap", "err", err)
		}
	}
}

// ProvideList returns the keys on the persistent provide list.
func (r *Routing) ProvideList(ctx context.Context) ([]mh.Multihash, error) {
	if r == nil {
		return nil, nil
	}
	return r.keys.Get(ctx, "")
}
