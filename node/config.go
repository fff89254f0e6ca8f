package node

import (
	"log/slog"
	"time"

	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/node/localapi"
	"github.com/allmende/allmende/node/mirror"
	"github.com/allmende/allmende/node/p2p"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is everything a Node needs to start. Package cmd builds it from
// viper; every field has a matching key documented in configs/default.yaml.
type Config struct {
	// Home holds the identity key, the lock and the API file.
	Home string
	// StorePath is the store directory (default Home/store).
	StorePath string
	// StoreSync makes every block write durable before it is acknowledged.
	StoreSync bool
	// StoreDirectIO writes the store's copies of added files with direct
	// I/O, past the page cache.
	StoreDirectIO bool
	// Listen are the multiaddrs the libp2p host listens on.
	Listen []string
	// APIAddr is host:port of the local HTTP API (daemon only).
	APIAddr string
	// APIToken, if set, must come with every API request as
	// "Authorization: Bearer <token>". It is required when APIAddr is not
	// a loopback address.
	APIToken localapi.Secret
	// Bootstrap peers are dialled at start.
	Bootstrap []string
	// MDNS enables LAN discovery.
	MDNS bool
	// DHTMode is auto, server, client or off (see the DHT* constants);
	// empty means off.
	DHTMode string
	// NAT enables port mapping, AutoNAT, hole punching and relay client.
	NAT bool
	// RelayService makes the node a circuit relay v2 for other peers.
	RelayService bool
	// StaticRelays are relays (multiaddrs with /p2p/<id>) to use instead of
	// relays found through the DHT.
	StaticRelays []string
	// SwarmKey is the path of a libp2p private network key, or empty.
	SwarmKey string
	// FetchTimeout fails a fetch when no block arrived for this long.
	FetchTimeout time.Duration
	// FetchParallel is the number of blocks wanted at once.
	FetchParallel int
	// FetchCopy keeps a copy of a fetched file's blocks in the block
	// store. Without it the fetched file itself holds them (its bytes are
	// on disk once), so moving or editing it stops this node seeding it.
	FetchCopy bool
	// SuperSeed makes the node super-seed the roots it holds whole
	// (swarm.superseed): offer each classroom peer one piece nobody in the
	// room has, so that every piece leaves the uplink once.
	SuperSeed bool
	// SendAllowance is the bytes bitswap queues per peer.
	SendAllowance int
	// ConnsLow and ConnsHigh are the connection manager's watermarks.
	ConnsLow, ConnsHigh int
	// MaxMemory caps the libp2p resource manager's memory budget, in bytes.
	MaxMemory int64
	// MaxConns caps the number of libp2p connections.
	MaxConns int
	// AllowNets are multiaddrs (e.g. /ip4/10.0.0.0/ipcidr/8) exempt from
	// the per-IP connection limits, for a LAN mirror.
	AllowNets []string
	// MirrorAddr is host:port of the LAN HTTP server (gateway, metrics,
	// web page); empty turns it off.
	MirrorAddr string
	// MirrorUpstream is a Hugging Face-compatible endpoint (the hub or
	// another mirror) to fill from when the swarm lacks a model.
	MirrorUpstream string
	// MirrorRegistryUpstream is an OCI registry (e.g.
	// https://registry.ollama.ai) the mirror's /v2/ API fills from when
	// neither this node nor the swarm has a blob.
	MirrorRegistryUpstream string
	// MirrorPins are names (org/model[@rev]) or CIDs the mirror prefetches
	// and keeps; a quota never evicts them.
	MirrorPins []string
	// MirrorQuota, if positive, is the most bytes the store may hold before
	// the mirror evicts models it filled on demand, least recently used
	// first.
	MirrorQuota int64
	// MirrorInterval is how often mirror.pins and the quota are checked.
	MirrorInterval time.Duration
	// MirrorUpstreamTTL is how long the mirror trusts an upstream's answer
	// about a revision (which commit main is, which files it has) before it
	// asks again.
	MirrorUpstreamTTL time.Duration
	// MirrorClientFills bounds the downloads one client address may have
	// being filled (from the upstream or from peers) at once; more get 429
	// Too Many Requests with Retry-After.
	MirrorClientFills int
	// MirrorStallTimeout is how long a fill waits for a byte: a download
	// from the upstream then resumes with a Range request (a few times in a
	// row at most, MirrorUpstreamRetries), a fill from peers falls back
	// to the upstream.
	MirrorStallTimeout time.Duration
	// MirrorUpstreamRetries bounds a fill's attempts in a row that bring
	// no byte from the upstream (hfapi.DefaultRetries if zero).
	MirrorUpstreamRetries int
	// MirrorUpstreamToken, if set, is sent to mirror.upstream (and only
	// there) as a bearer token, so gated repositories can be filled. It is
	// never logged nor sent to peers.
	MirrorUpstreamToken string
	// MirrorServeGated serves gated repositories to every client of the
	// mirror, not only to those whose own token the upstream accepts.
	MirrorServeGated bool
	// Version is allmende's version (the User-Agent the mirror sends).
	Version string
	// BandwidthUp and BandwidthDown cap bytes per second sent and received
	// (mirror HTTP answers and block transfers); 0 means no limit.
	BandwidthUp, BandwidthDown int64
	// MirrorAllow are the client networks (CIDR) the mirror answers.
	MirrorAllow []string
	// Denylists are the denylists key: files, folders of *.deny files and
	// https URLs of IPIP-383 denylists, enforced after HOME/denylists/*.deny
	// (policy/denylist.ParseSource reads each); node/gate enforces them.
	Denylists []string
	// DenylistsRefresh is how often denylists from URLs are fetched again
	// (denylists_refresh).
	DenylistsRefresh time.Duration
	// LicenseAllow and LicenseDeny are policy.licenses.allow and .deny:
	// SPDX ids or patterns of the licences this node re-seeds and its
	// mirror fills; LicenseUnknown (allow or deny) is for models whose
	// licence is unknown. See policy/license.NewPolicy; node/gate applies it.
	LicenseAllow, LicenseDeny []string
	LicenseUnknown            string
	// Offline starts the node without a network: its host has no
	// transport and listens nowhere, and there is no DHT, mDNS, NAT,
	// relay or bootstrap dial; blocks the store lacks are not found. The
	// read-only commands (ls, id, verify, inspect of local content) run
	// on such a node when no daemon is running.
	Offline bool
	// Metrics is the registry the node's metrics (libp2p's, the resource
	// manager's, its own and the mirror's) are registered on; nil gives
	// the node a registry of its own. The daemon passes the process's one
	// registry (see ProcessMetrics).
	Metrics *prometheus.Registry
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
}

// setDefaults fills the fields left zero with the defaults of the
// packages they configure (fetch.DefaultTimeout, p2p.DefaultConnsLow,
// mirror.DefaultStallTimeout and the others).
func (c *Config) setDefaults() {
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = fetch.DefaultTimeout
	}
	if c.FetchParallel <= 0 {
		c.FetchParallel = fetch.DefaultParallel
	}
	if c.ConnsLow <= 0 {
		c.ConnsLow = p2p.DefaultConnsLow
	}
	if c.ConnsHigh <= c.ConnsLow {
		c.ConnsHigh = max(p2p.DefaultConnsHigh, 2*c.ConnsLow)
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = p2p.DefaultMaxMemory
	}
	if c.MaxConns <= 0 {
		c.MaxConns = p2p.DefaultMaxConns
	}
	if c.MirrorStallTimeout <= 0 {
		c.MirrorStallTimeout = mirror.DefaultStallTimeout
	}
	if c.MirrorUpstreamTTL <= 0 {
		c.MirrorUpstreamTTL = mirror.DefaultUpstreamTTL
	}
	if c.MirrorClientFills <= 0 {
		c.MirrorClientFills = mirror.DefaultClientFills
	}
	if c.DHTMode == "" {
		c.DHTMode = DHTOff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
}

// DHT modes, the values of dht.mode (see p2p.DHTAuto and the others).
const (
	DHTAuto   = p2p.DHTAuto
	DHTServer = p2p.DHTServer
	DHTClient = p2p.DHTClient
	DHTOff    = p2p.DHTOff
)

// p2pConfig is what the network needs of cfg.
func p2pConfig(cfg Config) p2p.Config {
	if cfg.Offline {
		return p2p.Config{Offline: true, ConnsLow: cfg.ConnsLow, ConnsHigh: cfg.ConnsHigh,
			MaxMemory: cfg.MaxMemory, MaxConns: cfg.MaxConns, DHTMode: DHTOff,
			Metrics: cfg.Metrics, Logger: cfg.Logger}
	}
	return p2p.Config{
		Listen: cfg.Listen, SwarmKey: cfg.SwarmKey, NAT: cfg.NAT, RelayService: cfg.RelayService,
		StaticRelays: cfg.StaticRelays, ConnsLow: cfg.ConnsLow, ConnsHigh: cfg.ConnsHigh,
		MaxMemory: cfg.MaxMemory, MaxConns: cfg.MaxConns, AllowNets: cfg.AllowNets,
		DHTMode: cfg.DHTMode, MDNS: cfg.MDNS, Bootstrap: cfg.Bootstrap,
		Metrics: cfg.Metrics, Logger: cfg.Logger,
	}
}
