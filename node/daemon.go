package node

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// RunDaemon runs a node with its HTTP API until ctx ends. Once the API
// listens it writes HOME/api (replacing a stale one) and calls ready with
// the base URL; on the way out it removes HOME/api.
func RunDaemon(ctx context.Context, cfg Config, ready func(apiURL string)) (err error) {
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
	if err := WriteAPIFile(cfg.Home, url); err != nil {
		ln.Close()
		return err
	}
	defer func() { err = errors.Join(err, RemoveAPIFile(cfg.Home)) }()
	n.log.Info("api listening", "addr", url)
	if ready != nil {
		ready(url)
	}
	return ServeAPI(ctx, ln, n, n.log)
}
