package node

import (
	"github.com/allmende/allmende/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

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
