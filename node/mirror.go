package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/hfapi"
	"github.com/allmende/allmende/node/httpserve"
	"github.com/allmende/allmende/node/pace"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MirrorFile in HOME holds the mirror's base URL while the daemon runs.
const MirrorFile = "mirror"

// ErrForbidden means a client address is outside mirror.allow.
var ErrForbidden = errors.New("client network not allowed")

// mirrorHandler serves the LAN side of a node: the Hugging Face-compatible
// API (/api/..., /{org}/{name}/resolve/...), the IPFS trustless gateway at
// /ipfs/, Prometheus metrics at /metrics and the web page at /. Every
// request must come from a network in allow.
func (n *Node) mirrorHandler(allow []netip.Prefix, hfb *hfBackend, bserv blockservice.BlockService) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics(reg)
	registerMirrorMetrics(reg, hfb)

	backend, err := gateway.NewBlocksBackend(bserv, gateway.WithPrometheusRegistry(reg))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	gw := gateway.NewHandler(gateway.Config{
		DeserializedResponses: false, // trustless: raw blocks and CARs only
		NoDNSLink:             true,
		MetricsRegistry:       reg,
	}, backend)

	hf := hfapi.Handler(hfb, n.log)

	mux := http.NewServeMux()
	mux.Handle("/api/", hf)
	mux.Handle("/", hf) // /{org}/{name}/resolve/... and /datasets/...
	mux.Handle("/ipfs/", gatewayFills(hfb.fills, n.holdsGatewayRoot, gw))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /{$}", n.serveIndex)
	return allowNetworks(allow, pace.Uploads(n.upLimit, mux), n.log), nil
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

// registerMetrics exposes the node's transfer counters, store size and
// the Guard's counters of lying and stalling peers.
func (n *Node) registerMetrics(reg prometheus.Registerer) {
	reg.MustRegister(newGuardCollector(n))
	stat := func(f func(api.Stats) uint64) func() float64 {
		return func() float64 {
			s, err := n.Stats(context.Background())
			if err != nil {
				return 0
			}
			return float64(f(s))
		}
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_bytes_received_total", Help: "Block bytes received from peers."},
			stat(func(s api.Stats) uint64 { return s.BytesReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_bytes_sent_total", Help: "Block bytes sent to peers."},
			stat(func(s api.Stats) uint64 { return s.BytesSent })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_blocks_received_total", Help: "Blocks received from peers."},
			stat(func(s api.Stats) uint64 { return s.BlocksReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_blocks_sent_total", Help: "Blocks sent to peers."},
			stat(func(s api.Stats) uint64 { return s.BlocksSent })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "allmende_peers", Help: "Connected peers."},
			func() float64 { return float64(len(n.host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "allmende_store_bytes", Help: "Bytes the block store occupies."},
			func() float64 {
				u, err := n.store.DiskUsage(context.Background())
				if err != nil {
					return 0
				}
				return float64(u)
			}),
	)
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

// newMirror prepares the mirror: it opens the cache of what it keeps for
// its clients and clears what fills cut short by a kill left, before any
// client can ask. The gateway and the hub API read through a block service
// of their own, whose block store keeps what they fetch only within the
// quota; its exchange is the node's bitswap (closed with the node).
func (n *Node) newMirror(allow []netip.Prefix) (http.Handler, *hfBackend, error) {
	cache, err := openMirrorCache(n.cfg.Home)
	if err != nil {
		return nil, nil, err
	}
	quota := newMirrorQuota(n.cfg.MirrorQuota, cache, nodeQuota{n}, n.log)
	bserv := blockservice.New(&quotaBlockstore{Blockstore: n.store.Blockstore(), q: quota}, n.bitswap)
	hfb := &hfBackend{n: n, cache: cache, quota: quota, fills: newClientFills(n.cfg.MirrorClientFills),
		whole: newWholeFiles(n), dag: merkledag.NewDAGService(bserv), seeding: map[string]bool{}}
	if n.cfg.MirrorUpstream != "" {
		if hfb.upstream, err = newUpstreamFiller(n, n.cfg.MirrorUpstream, quota, hfb.fills, hfb.dag); err != nil {
			return nil, nil, err
		}
	}
	h, err := n.mirrorHandler(allow, hfb, bserv)
	if err != nil {
		return nil, nil, err
	}
	return h, hfb, nil
}

// serveMirror runs the mirror server h on ln, and its housekeeping, until
// ctx ends.
func (n *Node) serveMirror(ctx context.Context, ln net.Listener, h http.Handler, hfb *hfBackend) error {
	go n.housekeep(ctx, hfb)
	if err := httpserve.Serve(ctx, ln, h); err != nil {
		return fmt.Errorf("mirror server: %w", err)
	}
	return nil
}
