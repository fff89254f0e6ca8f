package p2p

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// LAN discovery constants.
const (
	// mdnsConnectTimeout bounds one dial to a peer found by mDNS.
	mdnsConnectTimeout = 10 * time.Second
	// mdnsDialAttempts is how often a peer found by mDNS is dialled before
	// giving up until mDNS reports it again; mdnsRetryBase is the first
	// pause between attempts, doubled each time. A first dial can fail when
	// both peers dial each other at once as they start.
	mdnsDialAttempts = 5
	mdnsRetryBase    = 500 * time.Millisecond
	// mdnsYield is how long the peer with the greater ID waits for the
	// other to dial before it dials itself. When two peers find each other
	// at once and both dial, the crossing handshakes fail ("noise: message
	// is too short") and the dial backoff then delays the retries by 5 s
	// or more.
	mdnsYield = 2 * time.Second
	// lanPeerTag marks peers found on the LAN in the connection manager,
	// so they are the last to be trimmed: LAN peers are preferred.
	lanPeerTag = "allmende-lan"
	// lanPeerWeight is the connection manager score of a LAN peer.
	lanPeerWeight = 100
)

// mdnsNotifee connects to every peer mDNS finds on the local network.
type mdnsNotifee struct {
	ctx context.Context
	h   host.Host
	log *slog.Logger
}

// HandlePeerFound dials the peer in the background (mDNS calls it from its
// resolver loop, which must not block).
func (m *mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == m.h.ID() {
		return
	}
	go m.connect(pi)
}

// connect dials pi, retrying with backoff, and marks it as a LAN peer. Of
// two peers the one with the lower ID dials; the other waits mdnsYield
// for that and dials only if no connection came.
func (m *mdnsNotifee) connect(pi peer.AddrInfo) {
	if m.h.ID() > pi.ID {
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(mdnsYield):
		}
	}
	pause := mdnsRetryBase
	for attempt := 1; ; attempt++ {
		err := error(nil)
		if m.h.Network().Connectedness(pi.ID) != network.Connected {
			ctx, cancel := context.WithTimeout(m.ctx, mdnsConnectTimeout)
			err = m.h.Connect(ctx, pi)
			cancel()
		}
		if err == nil {
			m.h.ConnManager().TagPeer(pi.ID, lanPeerTag, lanPeerWeight)
			m.log.Info("lan peer connected", "peer", pi.ID.String())
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		m.log.Debug("lan peer unreachable", "peer", pi.ID.String(), "attempt", attempt, "err", err)
		if attempt == mdnsDialAttempts {
			return
		}
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// startMDNS announces this node on the LAN and connects to the peers it
// finds there until ctx ends. The returned function stops it.
func startMDNS(ctx context.Context, h host.Host, log *slog.Logger) (func() error, error) {
	n := &mdnsNotifee{ctx: ctx, h: h, log: log.With("component", "mdns")}
	svc := mdns.NewMdnsService(h, mdns.ServiceName, n)
	if err := svc.Start(); err != nil {
		return nil, err
	}
	return svc.Close, nil
}

// Start starts mDNS (if enabled) and, in the background, dials the
// bootstrap peers and bootstraps the DHT. Everything stops with ctx or
// StopDiscovery.
func (n *Network) Start(ctx context.Context) {
	if n.cfg.MDNS {
		stop, err := startMDNS(ctx, n.Host, n.log)
		if err != nil {
			n.log.Warn("mdns off: cannot start LAN discovery", "err", err)
		}
		n.stopMDNS = stop
	}
	if len(n.bootstrap) > 0 || n.Routing != nil {
		go n.connectBootstrap(ctx, n.bootstrap)
	}
}
