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

	"github.com/allmende/allmende/node/hfapi"
	"github.com/ipfs/boxo/gateway"
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
func (n *Node) mirrorHandler(allow []netip.Prefix, hfb *hfBackend) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics(reg)

	backend, err := gateway.NewBlocksBackend(n.bserv, gateway.WithPrometheusRegistry(reg))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	gw := gateway.NewHandler(gateway.Config{
		DeserializedResponses: false, // trustless: raw blocks and CARs only
		NoDNSLink:             true,
		MetricsRegistry:       reg,
	}, backend)

	if up := hfb.upstream; up != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "allmende_mirror_upstream_downloads_total", Help: "Files downloaded from mirror.upstream.",
		}, func() float64 { return float64(up.downloads.Load()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "allmende_mirror_swarm_fills_total", Help: "Files the mirror filled from peers by sha256 instead of the upstream.",
		}, func() float64 { return float64(up.fromSwarm.Load()) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "allmende_mirror_whole_file_responses_total",
		Help: "File downloads sent straight from a verified file on disk (sendfile) rather than through the block store.",
	}, func() float64 { return float64(hfb.whole.served.Load()) }))
	hf := hfapi.Handler(hfb, n.log)

	mux := http.NewServeMux()
	mux.Handle("/api/", hf)
	mux.Handle("/", hf) // /{org}/{name}/resolve/... and /datasets/...
	mux.Handle("/ipfs/", gw)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /{$}", n.serveIndex)
	return allowNetworks(allow, limitUploads(n.upLimit, mux), n.log), nil
}

// registerMetrics exposes the node's transfer counters, store size and
// the Guard's counters of lying and stalling peers.
func (n *Node) registerMetrics(reg prometheus.Registerer) {
	reg.MustRegister(newGuardCollector(n))
	stat := func(f func(Stats) uint64) func() float64 {
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
			stat(func(s Stats) uint64 { return s.BytesReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_bytes_sent_total", Help: "Block bytes sent to peers."},
			stat(func(s Stats) uint64 { return s.BytesSent })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_blocks_received_total", Help: "Blocks received from peers."},
			stat(func(s Stats) uint64 { return s.BlocksReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_blocks_sent_total", Help: "Blocks sent to peers."},
			stat(func(s Stats) uint64 { return s.BlocksSent })),
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
			return nil, fmt.Errorf("%w: network %q: %v", ErrBadInput, s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// allowNetworks answers 403 to clients outside allow.
func allowNetworks(allow []netip.Prefix, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clientAllowed(allow, r.RemoteAddr) {
			log.Warn("mirror request refused", "addr", r.RemoteAddr, "err", ErrForbidden)
			http.Error(w, "403 forbidden: your network is not in this mirror's mirror.allow list", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func clientAllowed(allow []netip.Prefix, remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// newMirror prepares the mirror: it opens the cache of filled models and
// clears what fills cut short by a kill left, before any client can ask.
func (n *Node) newMirror(allow []netip.Prefix) (http.Handler, *hfBackend, error) {
	cache, err := openMirrorCache(n.cfg.Home)
	if err != nil {
		return nil, nil, err
	}
	var up *upstreamFiller
	if n.cfg.MirrorUpstream != "" {
		up = newUpstreamFiller(n, n.cfg.MirrorUpstream)
	}
	hfb := newHFBackend(n, up, cache)
	h, err := n.mirrorHandler(allow, hfb)
	if err != nil {
		return nil, nil, err
	}
	return h, hfb, nil
}

// serveMirror runs the mirror server h on ln, and its housekeeping, until
// ctx ends.
func (n *Node) serveMirror(ctx context.Context, ln net.Listener, h http.Handler, hfb *hfBackend) error {
	go n.housekeep(ctx, hfb)
	if err := serveHTTP(ctx, ln, h); err != nil {
		return fmt.Errorf("mirror server: %w", err)
	}
	return nil
}
