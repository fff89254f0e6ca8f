package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// newHost builds the libp2p host: TCP and QUIC (TCP dialled first on a
// LAN, see tcpFirstOnLAN), Noise and TLS, yamux, a resource manager with explicit limits and a connection manager. With a
// swarm key it is a private network on TCP only; with cfg.NAT it maps
// ports, runs AutoNAT v2, punches holes and uses relays found by relays.
// Offline it has no transport at all. libp2p's metrics go to cfg.Metrics.
func newHost(cfg Config, sk crypto.PrivKey, relays *relayFinder) (host.Host, error) {
	cfg.Metrics = cfg.registerer()
	rm, err := newResourceManager(cfg)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnsLow, cfg.ConnsHigh)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	psk, err := loadSwarmKey(cfg.SwarmKey)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.PrometheusRegisterer(cfg.Metrics),
	}
	if cfg.Offline {
		h, err := libp2p.New(append(opts, libp2p.NoTransports, libp2p.NoListenAddrs, libp2p.DisableRelay())...)
		if err != nil {
			return nil, fmt.Errorf("start offline libp2p host: %w", err)
		}
		return h, nil
	}
	opts = append(opts,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirstOnLAN)),
	)
	listen := cfg.Listen
	if psk != nil {
		var dropped []string
		listen, dropped = withoutQUIC(listen)
		cfg.Logger.Info("private network (swarm.key): TCP only, QUIC refuses a pre-shared key", "path", cfg.SwarmKey, "dropped", dropped)
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	nat, err := natOptions(cfg, relays)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(append(opts, nat...)...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return h, nil
}

// newResourceManager scales libp2p's default limits to cfg.MaxMemory and
// caps connections at cfg.MaxConns. Peers on cfg.AllowNets are exempt from
// libp2p's per-address limits but held to the Allowed* limits instead (see
// rcmgr.go), and get libp2p's allowlisted system and transient
// scopes (finite, scaled like the others) once the ordinary ones are full.
func newResourceManager(cfg Config) (network.ResourceManager, error) {
	scaled := rcmgr.DefaultLimits.Scale(cfg.MaxMemory, 4096)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:  rcmgr.LimitVal(cfg.MaxConns),
			Memory: rcmgr.LimitVal64(cfg.MaxMemory),
		},
	}.Build(scaled)
	var allow []ma.Multiaddr
	for _, s := range cfg.AllowNets {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("allow list entry %q: %w", s, err)
		}
		allow = append(allow, a)
	}
	allowed, err := allowedPrefixes(allow)
	if err != nil {
		return nil, err
	}
	// The resource manager reports to Prometheus through its trace.
	rcmgr.MustRegisterWith(cfg.registerer())
	stats, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, fmt.Errorf("resource manager metrics: %w", err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithAllowlistedMultiaddrs(allow),
		rcmgr.WithConnRateLimiters(newConnRateLimiter(allowed)), rcmgr.WithTraceReporter(stats))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	if len(allowed) == 0 {
		return rm, nil
	}
	return newAllowedNetGate(rm, allowed), nil
}

// registerer is cfg.Metrics, or a registry of its own when that is nil.
func (cfg Config) registerer() prometheus.Registerer {
	if cfg.Metrics == nil {
		return prometheus.NewRegistry()
	}
	return cfg.Metrics
}
