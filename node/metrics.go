package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/protocol"
	"github.com/ipfs/go-metrics-interface"
	metricsprom "github.com/ipfs/go-metrics-prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metric name prefixes.
const (
	// bitswapMetricsScope begins the names of bitswap's metrics, as in
	// Kubo (ipfs_bitswap_*); allmende's own begin with allmende_.
	bitswapMetricsScope = "ipfs"
	// dhtMetricsNamespace begins the names of the metrics that reach
	// Prometheus through OpenTelemetry: only the DHT and its provider
	// report that way (libp2p_kad_dht_rpc_inbound_messages_total, ...).
	dhtMetricsNamespace = "libp2p_kad_dht"
)

// ProcessMetrics makes the process's one Prometheus registry, with the Go
// runtime's and the process's metrics, and points at it the libraries that
// report metrics through process-wide hooks rather than a registry they
// are given: bitswap (go-metrics-interface, bound to Prometheus'
// default registerer, which becomes this registry) and the DHT and its
// provider (OpenTelemetry's global meter provider, exported to this
// registry). The daemon calls it once, in main, before New, and passes the
// registry as Config.Metrics; libp2p and allmende's own metrics are
// registered on it by New. The returned function stops the OpenTelemetry
// export.
func ProcessMetrics() (*prometheus.Registry, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prometheus.DefaultRegisterer, prometheus.DefaultGatherer = reg, reg
	if err := metricsprom.Inject(); err != nil && !errors.Is(err, metrics.ErrImplemented) {
		return nil, nil, fmt.Errorf("bitswap metrics: %w", err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutTargetInfo(),
		otelprom.WithNamespace(dhtMetricsNamespace))
	if err != nil {
		return nil, nil, fmt.Errorf("dht metrics: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	return reg, mp.Shutdown, nil
}

// registerMetrics registers the node's own collectors on reg (a node
// opened again on the same registry after Close registers them anew).
func (n *Node) registerMetrics(reg prometheus.Registerer) error {
	for _, c := range n.metrics() {
		if err := reg.Register(c); err != nil {
			n.unregisterMetrics()
			return fmt.Errorf("metrics: %w", err)
		}
		n.collectors = append(n.collectors, c)
	}
	return nil
}

// unregisterMetrics takes the node's own collectors off its registry.
func (n *Node) unregisterMetrics() {
	for _, c := range n.collectors {
		n.cfg.Metrics.Unregister(c)
	}
	n.collectors = nil
}

// guardCollector exposes the Guard's counters (liars and stallers, per
// protocol) and the store's quarantine count to Prometheus. It reads them
// at scrape time, so nothing is counted twice.
type guardCollector struct {
	n *Node

	badBlocks, badBytes, stalls, bans, banned, quarantined *prometheus.Desc
}

func newGuardCollector(n *Node) *guardCollector {
	proto := []string{"protocol"}
	return &guardCollector{
		n: n,
		badBlocks: prometheus.NewDesc("allmende_guard_bad_blocks_total",
			"Blocks received that were corrupt or asked for by no want; none is stored.", proto, nil),
		badBytes: prometheus.NewDesc("allmende_guard_bad_bytes_total",
			"Bytes of the bad blocks received.", proto, nil),
		stalls: prometheus.NewDesc("allmende_guard_stalls_total",
			"Times a peer promised blocks, sent none while others could, and was set aside for the fetch.", proto, nil),
		bans: prometheus.NewDesc("allmende_guard_peers_banned_total",
			"Peers disconnected and banned for sending bad blocks or false sha256 answers.", nil, nil),
		banned: prometheus.NewDesc("allmende_guard_banned_peers",
			"Peers on the ban list now.", nil, nil),
		quarantined: prometheus.NewDesc("allmende_store_blocks_quarantined_total",
			"Blocks found corrupt on this node's disk and moved to quarantine.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.badBlocks, c.badBytes, c.stalls, c.bans, c.banned, c.quarantined} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.guard.Stats()
	for _, p := range []struct {
		name  string
		stats protocol.GuardProtoStats
	}{{protocol.GuardBitswap, st.Bitswap}, {protocol.GuardBulk, st.Bulk}, {protocol.GuardResolve, st.Resolve}} {
		ch <- prometheus.MustNewConstMetric(c.badBlocks, prometheus.CounterValue, float64(p.stats.BadBlocks), p.name)
		ch <- prometheus.MustNewConstMetric(c.badBytes, prometheus.CounterValue, float64(p.stats.BadBytes), p.name)
		ch <- prometheus.MustNewConstMetric(c.stalls, prometheus.CounterValue, float64(p.stats.Stalls), p.name)
	}
	ch <- prometheus.MustNewConstMetric(c.bans, prometheus.CounterValue, float64(st.Bans))
	ch <- prometheus.MustNewConstMetric(c.banned, prometheus.GaugeValue, float64(st.Banned))
	ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.CounterValue, float64(c.n.store.Quarantined()))
}

// metrics are the node's collectors: transfer counters, connected peers,
// the store's size, the Guard's counters of lying and stalling peers and
// the policy's refusals (allmende_refusals_total).
func (n *Node) metrics() []prometheus.Collector {
	stat := func(f func(api.Stats) uint64) func() float64 {
		return func() float64 {
			s, err := n.Stats(context.Background())
			if err != nil {
				return 0
			}
			return float64(f(s))
		}
	}
	return []prometheus.Collector{
		newGuardCollector(n),
		n.gate.Refusals(),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_received_bytes_total", Help: "Block bytes received from peers."},
			stat(func(s api.Stats) uint64 { return s.BytesReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_sent_bytes_total", Help: "Block bytes sent to peers."},
			stat(func(s api.Stats) uint64 { return s.BytesSent })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_received_blocks_total", Help: "Blocks received from peers."},
			stat(func(s api.Stats) uint64 { return s.BlocksReceived })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allmende_sent_blocks_total", Help: "Blocks sent to peers."},
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
	}
}
