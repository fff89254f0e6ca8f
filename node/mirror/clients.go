package mirror

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/ipfs/go-cid"
)

// clientKey carries the address of the LAN client a request came from.
type clientKey struct{}

// withClient returns ctx carrying the client address addr.
func withClient(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientKey{}, addr)
}

// clientOf returns the client address ctx carries, if any: requests from
// the mirror's own housekeeping carry none.
func clientOf(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(clientKey{}).(netip.Addr)
	return a, ok
}

// clientFills bounds the fills (downloads from the upstream, reads of
// content not held from peers) each client address has going at once, so
// one client cannot make the mirror fetch everything at the same time.
type clientFills struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
	// refused counts requests answered 429.
	refused uint64
}

func newClientFills(max int) *clientFills {
	return &clientFills{max: max, n: map[netip.Addr]int{}}
}

// acquire takes one of the client's fill slots; it fails with
// hfapi.ErrBusy when the client has max running. A context without a
// client (the mirror's housekeeping) is not bounded. Call release once.
func (c *clientFills) acquire(ctx context.Context) (release func(), err error) {
	addr, ok := clientOf(ctx)
	if !ok {
		return func() {}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[addr] >= c.max {
		c.refused++
		return nil, fmt.Errorf("%w: %s has %d downloads being filled (mirror.fills_per_client)", hfapi.ErrBusy, addr, c.max)
	}
	c.n[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[addr]--; c.n[addr] <= 0 {
				delete(c.n, addr)
			}
		})
	}, nil
}

func (c *clientFills) refusals() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// busy answers 429 with Retry-After, which hub clients retry.
func busy(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", strconv.Itoa(int(hfapi.BusyRetryAfter/time.Second)))
	http.Error(w, "429 too many requests: "+err.Error(), http.StatusTooManyRequests)
}

// gatewayFills bounds, per client, the gateway requests for content whose
// root block is not held (holds says), which make the mirror fetch from
// peers.
func gatewayFills(fills *clientFills, holds func(*http.Request) bool, gw http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if holds(r) {
			gw.ServeHTTP(w, r)
			return
		}
		release, err := fills.acquire(r.Context())
		if err != nil {
			busy(w, err)
			return
		}
		defer release()
		gw.ServeHTTP(w, r)
	})
}

// holdsGatewayRoot reports whether the root block of an /ipfs/{cid}/...
// request is held (or the path has no CID, which the gateway refuses).
func (mr *Mirror) holdsGatewayRoot(r *http.Request) bool {
	rest := strings.TrimPrefix(r.URL.Path, "/ipfs/")
	first, _, _ := strings.Cut(rest, "/")
	c, err := cid.Decode(first)
	if err != nil {
		return true
	}
	has, err := mr.store.Blockstore().Has(r.Context(), c)
	return err == nil && has
}
