// Package policy owns what a node refuses and why: the reasons a request
// can be refused for (a denylist entry, a licence), the surfaces it is
// refused on, and the counters of those refusals that /metrics shows. The
// rules live in its sub-packages: policy/denylist (IPIP-383 denylists),
// policy/license (licence ids and the licence policy) and, for what a node
// vouches for rather than refuses, policy/provenance (signed attestations).
package policy

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason is why something was refused.
type Reason string

// Reasons, as the "reason" label of allmende_refusals_total.
const (
	// ReasonDenyCID: a denylist rule by CID, CID path or double hash.
	ReasonDenyCID Reason = "denylist_cid"
	// ReasonDenySHA256: a denylist rule by whole-file sha256.
	ReasonDenySHA256 Reason = "denylist_sha256"
	// ReasonDenyName: a denylist rule by model or dataset name.
	ReasonDenyName Reason = "denylist_name"
	// ReasonLicense: the licence policy (policy.licenses).
	ReasonLicense Reason = "license"
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonDenyCID, ReasonDenySHA256, ReasonDenyName, ReasonLicense}

// Surface is where a refusal happened.
type Surface string

// Surfaces, as the "surface" label of allmende_refusals_total.
const (
	SurfaceFetch    Surface = "fetch"    // this node fetching for its user
	SurfaceBitswap  Surface = "bitswap"  // serving a peer's want
	SurfaceBulk     Surface = "bulk"     // serving the bulk protocol
	SurfaceAnnounce Surface = "announce" // providing a CID to the routing system
	SurfaceGateway  Surface = "gateway"  // the trustless gateway (/ipfs/)
	SurfaceHF       Surface = "hf"       // the mirror's Hugging Face API
	SurfaceOCI      Surface = "oci"      // the mirror's OCI API (/v2/)
	SurfaceFill     Surface = "fill"     // the mirror filling from its upstream
	SurfaceReseed   Surface = "reseed"   // re-seeding what this node holds
)

// Surfaces lists every Surface.
var Surfaces = []Surface{SurfaceFetch, SurfaceBitswap, SurfaceBulk, SurfaceAnnounce, SurfaceGateway,
	SurfaceHF, SurfaceOCI, SurfaceFill, SurfaceReseed}

// MetricName is the Prometheus name of the refusal counter.
const MetricName = "allmende_refusals_total"

type refusalKey struct {
	reason  Reason
	surface Surface
}

// Refusals counts refusals by reason and surface. It is a
// prometheus.Collector the node registers once; every known reason and
// surface is exported from the start (at 0), so a dashboard sees the
// series before the first refusal. The zero value is not usable: call
// NewRefusals. Safe for concurrent use.
type Refusals struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	n    map[refusalKey]uint64
}

// NewRefusals returns counters at zero.
func NewRefusals() *Refusals {
	return &Refusals{
		desc: prometheus.NewDesc(MetricName,
			"Requests refused by a denylist or the licence policy, by reason and by where they were refused.",
			[]string{"reason", "surface"}, nil),
		n: make(map[refusalKey]uint64),
	}
}

// Refused counts one refusal.
func (r *Refusals) Refused(reason Reason, where Surface) {
	r.mu.Lock()
	r.n[refusalKey{reason, where}]++
	r.mu.Unlock()
}

// Count is the number of refusals for reason on where so far.
func (r *Refusals) Count(reason Reason, where Surface) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[refusalKey{reason, where}]
}

// Describe implements prometheus.Collector.
func (r *Refusals) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector.
func (r *Refusals) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	counts := make(map[refusalKey]uint64, len(Reasons)*len(Surfaces)+len(r.n))
	for _, reason := range Reasons {
		for _, s := range Surfaces {
			counts[refusalKey{reason, s}] = 0
		}
	}
	for k, v := range r.n {
		counts[k] = v
	}
	r.mu.Unlock()
	keys := make([]refusalKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].reason != keys[j].reason {
			return keys[i].reason < keys[j].reason
		}
		return keys[i].surface < keys[j].surface
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(counts[k]), string(k.reason), string(k.surface))
	}
}
