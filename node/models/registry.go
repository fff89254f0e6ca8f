// Package models is what a node knows about named models and datasets:
// the manifests it holds (the Index, by name and by whole-file sha256),
// importing folders and Hugging Face caches as models, signed name records
// and the publishers it trusts, resolving names and sha256s among peers
// and in the DHT, fetching a model by name or a file by sha256 (through
// the fetch engine, each file checked against its sha256), and reading
// model headers (inspect) with as few bytes from peers as possible.
//
// It answers peers' resolve requests (protocol.ServeResolve) from what it
// holds. It imports fetch and nothing of the mirror.
package models

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Providers finds the peers that announce a key in the DHT (the node's
// *dual.DHT implements it).
type Providers interface {
	FindProvidersAsync(ctx context.Context, key cid.Cid, count int) <-chan peer.AddrInfo
}

// Gate is the node's policy as the registry consults it (node/gate
// implements it): each method refuses with an error naming the rule, and
// counts the refusal on where.
type Gate interface {
	// Name refuses a model or dataset name.
	Name(name string, where policy.Surface) error
	// SHA256 refuses a file by its whole-file sha256 (what names it).
	SHA256(sum, what string, where policy.Surface) error
	// Manifest refuses a manifest for its name, licence, CIDs or files.
	Manifest(m *manifest.Manifest, mc cid.Cid, where policy.Surface) error
	// Blocked reports, without counting, whether a block is refused.
	Blocked(c cid.Cid, where policy.Surface) bool
}

// openGate refuses nothing: the registry's Gate when Config has none.
type openGate struct{}

func (openGate) Name(string, policy.Surface) error                          { return nil }
func (openGate) SHA256(string, string, policy.Surface) error                { return nil }
func (openGate) Manifest(*manifest.Manifest, cid.Cid, policy.Surface) error { return nil }
func (openGate) Blocked(cid.Cid, policy.Surface) bool                       { return false }

// Config is what the registry needs.
type Config struct {
	// Home is the node's home directory: index, records, trust, keys.
	Home string
	// Store holds the manifests (as blocks) and the models' content.
	Store *store.Store
	// Host asks peers (resolve protocol) and answers them.
	Host host.Host
	// Guard skips banned peers and hears of peers that lie about sha256s.
	Guard *protocol.Guard
	// Fetch fetches files, manifests and headers.
	Fetch *fetch.Engine
	// DHT, if set, finds providers of a sha256; nil when the DHT is off.
	DHT Providers
	// Timeout bounds fetching a manifest (fetch.timeout).
	Timeout time.Duration
	// Gate, if set, is the node's policy: names, files and blocks it
	// refuses are neither fetched nor offered to peers.
	Gate Gate
	// Indexed, if set, is called after a manifest was added to the index
	// or forgotten (the gate derives again what its rules reach).
	Indexed func()
	// Log receives the registry's logs; it must not be nil.
	Log *slog.Logger
}

// Registry is a node's model registry. Open starts it.
type Registry struct {
	home    home.Dir
	store   *store.Store
	host    host.Host
	guard   *protocol.Guard
	fetch   *fetch.Engine
	dht     Providers
	timeout time.Duration
	log     *slog.Logger
	index   *Index
	gate    Gate
	// trustMu serialises this node's changes to the trust file.
	trustMu sync.Mutex
}

// Open loads the index of the models the store holds and starts answering
// peers' resolve requests.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	dir := home.Dir(cfg.Home)
	x, err := openIndex(ctx, dir.ModelIndex(), cfg.Store.LocalDAG())
	if err != nil {
		return nil, err
	}
	x.changed = cfg.Indexed
	reg := &Registry{home: dir, store: cfg.Store, host: cfg.Host, guard: cfg.Guard, fetch: cfg.Fetch,
		dht: cfg.DHT, timeout: cfg.Timeout, log: cfg.Log, index: x, gate: cfg.Gate}
	if reg.gate == nil {
		reg.gate = openGate{}
	}
	protocol.ServeResolve(cfg.Host, cfg.Log, reg.answerResolve)
	return reg, nil
}

// Index is the index of the manifests this node holds.
func (reg *Registry) Index() *Index { return reg.index }
