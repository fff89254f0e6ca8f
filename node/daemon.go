package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/localapi"
	"github.com/allmende/allmende/node/mirror"
	"github.com/allmende/allmende/store/fsutil"
)

// RunDaemon runs a node with its HTTP API until ctx ends. Once the API
// listens it writes HOME/api.token (kept across restarts) and HOME/api
// (replacing a stale one) and calls ready with the base URL; on the way
// out it removes HOME/api.
func RunDaemon(ctx context.Context, cfg Config, ready func(apiURL string)) (err error) {
	if err := localapi.CheckExposure(cfg.APIAddr, cfg.APIToken); err != nil {
		return err
	}
	if err := localapi.CheckToken(cfg.APIToken); err != nil {
		return err
	}
	n, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, n.Close()) }()
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w (set api.addr to a free address)", n.cfg.APIAddr, err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The mirror starts (and clears what a killed fill left) before HOME/api
	// tells clients the daemon is ready.
	mirrorDone, err := n.startMirror(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	guard, err := n.apiGuard(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	if err := WriteAPIFile(cfg.Home, url); err != nil {
		ln.Close()
		return err
	}
	defer func() { err = errors.Join(err, RemoveAPIFile(cfg.Home)) }()
	n.log.Info("api listening", "addr", url)
	if ready != nil {
		ready(url)
	}
	err = localapi.Serve(ctx, ln, n, n.log, guard, n.cfg.Metrics)
	cancel()
	return errors.Join(err, <-mirrorDone)
}

// apiGuard makes sure HOME/api.token holds the token the API requires
// and returns the guard for an API listening on listen.
func (n *Node) apiGuard(listen net.Addr) (*localapi.Guard, error) {
	token, err := localapi.EnsureTokenFile(n.cfg.Home, n.cfg.APIToken)
	if err != nil {
		return nil, err
	}
	return localapi.NewGuard(listen, token, n.log.With("component", "api"))
}

// startMirror starts the mirror server if mirror.addr is set and records
// its URL in HOME/mirror. The returned channel yields its exit error.
func (n *Node) startMirror(ctx context.Context) (<-chan error, error) {
	done := make(chan error, 1)
	if n.cfg.MirrorAddr == "" {
		done <- nil
		return done, nil
	}
	allow, err := mirror.ParseNetworks(n.cfg.MirrorAllow)
	if err != nil {
		return nil, fmt.Errorf("mirror.allow: %w", err)
	}
	ln, err := net.Listen("tcp", n.cfg.MirrorAddr)
	if err != nil {
		return nil, fmt.Errorf("mirror listen on %s: %w (set mirror.addr to a free address)", n.cfg.MirrorAddr, err)
	}
	m, err := mirror.New(n.ctx, n.mirrorConfig(allow))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("mirror: %w", err)
	}
	url := "http://" + ln.Addr().String()
	urlFile := home.Dir(n.cfg.Home).MirrorFile()
	if err := fsutil.WriteFileAtomic(urlFile, []byte(url+"\n"), 0o644); err != nil {
		ln.Close()
		return nil, err
	}
	n.log.Info("mirror listening", "addr", url)
	go func() {
		err := m.Serve(ctx, ln)
		os.Remove(urlFile)
		done <- err
	}()
	return done, nil
}

// mirrorConfig is what the mirror needs of the node.
func (n *Node) mirrorConfig(allow []netip.Prefix) mirror.Config {
	return mirror.Config{
		Home: n.cfg.Home, Upstream: n.cfg.MirrorUpstream, RegistryUpstream: n.cfg.MirrorRegistryUpstream, Pins: n.cfg.MirrorPins, Quota: n.cfg.MirrorQuota,
		Interval: n.cfg.MirrorInterval, UpstreamTTL: n.cfg.MirrorUpstreamTTL, ClientFills: n.cfg.MirrorClientFills,
		StallTimeout: n.cfg.MirrorStallTimeout, Allow: allow, Up: n.upLimit,
		UpstreamToken: n.cfg.MirrorUpstreamToken, ServeGated: n.cfg.MirrorServeGated, Version: n.cfg.Version,
		UpstreamRetries: n.cfg.MirrorUpstreamRetries,
		Node:            n, Store: n.store, Models: n.models, Fetch: n.fetch, Net: n.netDAG, Exchange: n.bitswap,
		Announce: n.routing.Announce, Gate: n.gate, Metrics: n.cfg.Metrics, Log: n.log,
	}
}
