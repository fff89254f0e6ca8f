// Package mirror is a node's LAN HTTP server for a school or lab: the
// Hugging Face-compatible API (package hfapi below it) over the models the
// node holds, names resolved in the swarm and fills from an upstream hub;
// the IPFS trustless gateway; the web page; Prometheus metrics. It keeps
// what it fetches for its clients within mirror.quota (a least recently
// used cache of models, files and blocks), bounds the fills each client
// may have going, and serves files held whole on disk with sendfile.
//
// It imports models and fetch, and nothing of node: what it needs of the
// node it runs on is the Node interface.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/node/gate"
	"github.com/allmende/allmende/node/httpserve"
	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/node/mirror/ocifill"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/node/pace"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// ErrForbidden means a client address is outside mirror.allow.
var ErrForbidden = errors.New("client network not allowed")

// Defaults of Config fields left zero.
const (
	// DefaultInterval is how often the mirror retries mirror.pins and
	// checks the quota.
	DefaultInterval = time.Minute
	// DefaultStallTimeout is mirror.stall_timeout's default.
	DefaultStallTimeout = 30 * time.Second
	// DefaultUpstreamTTL is mirror.upstream_ttl's default.
	DefaultUpstreamTTL = 10 * time.Minute
	// DefaultClientFills is mirror.fills_per_client's default:
	// huggingface_hub's snapshot_download runs 8 downloads at once.
	DefaultClientFills = 8
)

// UserAgent is what the mirror calls itself to its upstream.
func UserAgent(version string) string {
	if version == "" {
		version = "devel"
	}
	return "allmende/" + version
}

// Node is what the mirror shows of the node it runs on (on the web page).
type Node interface {
	ID(ctx context.Context) (api.IDInfo, error)
	Peers(ctx context.Context) ([]api.PeerInfo, error)
	List(ctx context.Context) ([]api.PinInfo, error)
}

// Config is what the mirror needs. The mirror.* keys of the same names
// (configs/default.yaml) document the settings.
type Config struct {
	// Home is the node's home directory (the fills and the cache file).
	Home string
	// Upstream is a Hugging Face-compatible endpoint to fill from; empty
	// for none.
	Upstream string
	// RegistryUpstream is an OCI registry to fill /v2/ from; empty for
	// none.
	RegistryUpstream string
	// Pins are names or CIDs the mirror keeps and never evicts.
	Pins []string
	// Quota, if positive, bounds the bytes the store holds.
	Quota int64
	// Interval is how often mirror.pins and the quota are checked.
	Interval time.Duration
	// UpstreamTTL is how long an upstream's answer about a revision holds.
	UpstreamTTL time.Duration
	// ClientFills bounds the fills one client address has going.
	ClientFills int
	// StallTimeout aborts a fill that delivered no byte for this long.
	StallTimeout time.Duration
	// UpstreamToken, if set, is sent to the upstream (and only there) as
	// a bearer token, so gated repositories can be filled. Never logged.
	UpstreamToken string
	// ServeGated serves gated and private repositories the mirror's token
	// reads to every client, not only to those the upstream accepts.
	ServeGated bool
	// Version is allmende's version, for the User-Agent sent upstream.
	Version string
	// UpstreamRetries bounds the attempts in a row that bring no byte
	// (hfapi.DefaultRetries if zero).
	UpstreamRetries int
	// RetryWait is the first backoff before a fill asks the upstream
	// again (hfapi.DefaultRetryWait if zero).
	RetryWait time.Duration
	// Allow are the client networks the mirror answers.
	Allow []netip.Prefix
	// Up, if set, paces the mirror's answers (bandwidth.up).
	Up *rate.Limiter

	// Node is the node the mirror runs on.
	Node Node
	// Store is the node's store.
	Store *store.Store
	// Models is the node's model registry.
	Models *models.Registry
	// Fetch is the node's fetch engine.
	Fetch *fetch.Engine
	// Net is the node's network DAG.
	Net ipld.DAGService
	// Exchange fetches the blocks the gateway and clients' reads need
	// (the node's bitswap); the mirror keeps them only within the quota.
	Exchange exchange.Interface
	// Gate is the node's policy (denylists, licences); nil refuses
	// nothing. The hub API answers 451 for what it refuses, the gateway
	// 410, and fills refuse a licence the policy does not pass on.
	Gate *gate.Gate
	// Metrics is the node's registry: the mirror registers its own metrics
	// (and the gateway's) on it and serves all of it at /metrics; nil
	// gives the mirror a registry of its own.
	Metrics *prometheus.Registry
	// Announce, if set, starts providing a root the mirror kept now
	// (otherwise the routing's next reconcile with the pins does).
	Announce func(ctx context.Context, root cid.Cid)
	// Log receives the mirror's logs; it must not be nil.
	Log *slog.Logger
}

// Mirror is a node's LAN HTTP server and what it keeps for its clients.
type Mirror struct {
	cfg    Config
	log    *slog.Logger
	store  *store.Store
	models *models.Registry
	fetch  *fetch.Engine
	// ctx bounds the mirror's own work (fills, seeds, re-verifies), which
	// outlives the requests that start it.
	ctx     context.Context
	hfb     *hfBackend
	reg     *ocifill.Backend
	handler http.Handler
}

// New prepares the mirror: it opens the cache of what it keeps for its
// clients and clears what fills cut short by a kill left, before any
// client can ask. The gateway and the hub API read through a block service
// of their own, whose block store keeps what they fetch only within the
// quota; its exchange is cfg.Exchange (closed with the node). Background
// work runs under ctx.
func New(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.UpstreamTTL <= 0 {
		cfg.UpstreamTTL = DefaultUpstreamTTL
	}
	if cfg.ClientFills <= 0 {
		cfg.ClientFills = DefaultClientFills
	}
	mr := &Mirror{cfg: cfg, log: cfg.Log, store: cfg.Store, models: cfg.Models, fetch: cfg.Fetch, ctx: ctx}
	cache, err := openMirrorCache(cfg.Home)
	if err != nil {
		return nil, err
	}
	quota := newMirrorQuota(cfg.Quota, cache, storeQuota{mr}, mr.log)
	bserv := blockservice.New(&quotaBlockstore{Blockstore: cfg.Store.Blockstore(), q: quota}, cfg.Exchange)
	hfb := &hfBackend{mr: mr, cache: cache, quota: quota, fills: newClientFills(cfg.ClientFills),
		whole: newWholeFiles(mr), dag: merkledag.NewDAGService(bserv), seeding: map[string]bool{}}
	if cfg.Upstream != "" {
		if hfb.upstream, err = newUpstreamFiller(mr, cfg.Upstream, quota, hfb.fills, hfb.dag); err != nil {
			return nil, err
		}
	}
	mr.hfb = hfb
	if mr.reg, err = mr.newRegistry(); err != nil {
		return nil, api.BadInput(err)
	}
	if mr.handler, err = mr.newHandler(bserv); err != nil {
		return nil, err
	}
	return mr, nil
}

// Serve runs the mirror's server on ln, and its housekeeping, until ctx
// ends. Every answer may be a file of many GiB or wait on a fill: each
// write gets its own deadline.
func (mr *Mirror) Serve(ctx context.Context, ln net.Listener) error {
	go mr.housekeep(ctx)
	if err := httpserve.Serve(ctx, ln, httpserve.WriteDeadlines(mr.handler)); err != nil {
		return fmt.Errorf("mirror server: %w", err)
	}
	return nil
}

// Handler is the mirror's HTTP handler (without per-write deadlines).
func (mr *Mirror) Handler() http.Handler { return mr.handler }

// newHandler serves the LAN side of a node: the Hugging Face-compatible
// API (/api/..., /{org}/{name}/resolve/...), the OCI distribution pull API
// at /v2/ (ollama pull, oras, crane), the IPFS trustless gateway at
// /ipfs/, Prometheus metrics at /metrics, the web page at / and a model's
// CAR at /allmende/car/{org}/{name}. Every
// request must come from a network in mirror.allow.
func (mr *Mirror) newHandler(bserv blockservice.BlockService) (http.Handler, error) {
	hfb := mr.hfb
	reg := mr.cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	registerMirrorMetrics(reg, hfb)
	registerRegistryMetrics(reg, mr.reg)

	backend, err := gateway.NewBlocksBackend(bserv, gateway.WithPrometheusRegistry(reg))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	gw := gateway.NewHandler(gateway.Config{
		DeserializedResponses: false, // trustless: raw blocks and CARs only
		NoDNSLink:             true,
		MetricsRegistry:       reg,
	}, backend)

	hf := hfapi.Handler(hfb, mr.log)

	mux := http.NewServeMux()
	mux.Handle("/api/", hf)
	mux.Handle("/", hf) // /{org}/{name}/resolve/... and /datasets/...
	mux.Handle("/v2/", oci.Handler(mr.reg, mr.log))
	mux.Handle("/ipfs/", mr.cfg.Gate.Gateway(gatewayFills(hfb.fills, mr.holdsGatewayRoot, gw)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /{$}", mr.serveIndex)
	mux.HandleFunc(carRoute, mr.serveModelCAR)
	return allowNetworks(mr.cfg.Allow, pace.Uploads(mr.cfg.Up, mux), mr.log), nil
}

// registerMirrorMetrics exposes the mirror's fills, upstream lookups and
// quota reservations.
func registerMirrorMetrics(reg prometheus.Registerer, hfb *hfBackend) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	if up := hfb.upstream; up != nil {
		counter("allmende_mirror_upstream_downloads_total", "Files downloaded from mirror.upstream.",
			func() float64 { return float64(up.downloads.Load()) })
		counter("allmende_mirror_swarm_fills_total", "Files the mirror filled from peers by sha256 instead of the upstream.",
			func() float64 { return float64(up.fromSwarm.Load()) })
		counter("allmende_mirror_upstream_lookups_total", "Revision lookups sent to mirror.upstream (one for all clients asking at once).",
			func() float64 { return float64(up.repos.lookups.Load()) })
		gauge("allmende_mirror_upstream_lookups_waiting", "Requests waiting on a revision lookup at mirror.upstream.",
			func() float64 { return float64(up.repos.waiting.Load()) })
	}
	counter("allmende_mirror_whole_file_responses_total",
		"File downloads sent straight from a verified file on disk (sendfile) rather than through the block store.",
		func() float64 { return float64(hfb.whole.served.Load()) })
	counter("allmende_mirror_busy_total", "Requests answered 429 because their client had mirror.fills_per_client fills going.",
		func() float64 { return float64(hfb.fills.refusals()) })
	gauge("allmende_mirror_quota_reserved_bytes", "Bytes fills in progress hold against mirror.quota.",
		func() float64 { return float64(hfb.quota.held()) })
}

// registerRegistryMetrics exposes the OCI backend's upstream lookups and
// blob fills.
func registerRegistryMetrics(reg prometheus.Registerer, b *ocifill.Backend) {
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"allmende_mirror_registry_lookups_total", "Tag lookups sent to mirror.registry_upstream (one for all clients asking at once).", &b.UpstreamLookups},
		{"allmende_mirror_registry_upstream_blobs_total", "Blobs downloaded from mirror.registry_upstream.", &b.UpstreamBlobs},
		{"allmende_mirror_registry_swarm_blobs_total", "Blobs the mirror filled from peers by sha256.", &b.SwarmBlobs},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v.Load()) }))
	}
}

// ParseNetworks parses CIDR prefixes such as 10.0.0.0/8 or ::1/128.
func ParseNetworks(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: network %q: %v", api.ErrBadInput, s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// allowNetworks answers 403 to clients outside allow, and passes the
// others' address on in the request's context (see withClient).
func allowNetworks(allow []netip.Prefix, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, ok := clientAllowed(allow, r.RemoteAddr)
		if !ok {
			log.Warn("mirror request refused", "addr", r.RemoteAddr, "err", ErrForbidden)
			http.Error(w, "403 forbidden: your network is not in this mirror's mirror.allow list", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(withClient(r.Context(), addr)))
	})
}

func clientAllowed(allow []netip.Prefix, remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	for _, p := range allow {
		if p.Contains(addr) {
			return addr, true
		}
	}
	return netip.Addr{}, false
}
