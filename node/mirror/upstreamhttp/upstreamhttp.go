// Package upstreamhttp owns where a mirror's requests to an upstream may
// go: the HTTP client the Hugging Face fills (node/mirror/hfapi) and the
// OCI registry fills (node/mirror/oci) send their requests through, with
// bounded connect, TLS and header waits, and these rules:
//
//   - A redirect is followed to https, or to the upstream's own scheme and
//     host, at most MaxRedirects times, never to a URL with credentials.
//   - Loopback, link-local, private and other non-public addresses are
//     dialled only for the upstream's own host, or when the upstream itself
//     has such an address (another mirror on the LAN, a test registry on
//     127.0.0.1). The check runs on the address actually dialled, after
//     DNS, so a name cannot smuggle a private address past it. Through an
//     HTTP proxy (HTTPS_PROXY and friends) the proxy resolves names; then
//     only redirects to address literals are checked.
package upstreamhttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxRedirects bounds the redirects one upstream request follows.
const MaxRedirects = 5

// Timeouts of the client's HTTP transport. There is no overall timeout,
// since a download of many gigabytes may rightly take hours; callers bound
// a transfer that stops making progress themselves (the mirror's
// mirror.stall_timeout).
const (
	// DialTimeout bounds a TCP connect to the upstream.
	DialTimeout = 30 * time.Second
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout = 15 * time.Second
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is sent.
	ResponseHeaderTimeout = time.Minute
	// IdleConnTimeout closes pooled connections unused for this long.
	IdleConnTimeout = 90 * time.Second
	// keepAlive is the TCP keep-alive period of upstream connections.
	keepAlive = 30 * time.Second
	// maxIdleConns bounds the pooled connections.
	maxIdleConns = 100
)

// Errors of the rules.
var (
	// ErrRedirectRefused: the upstream redirected where the rules do not
	// allow.
	ErrRedirectRefused = errors.New("upstream redirect refused")
	// ErrAddressRefused: a connection would have gone to a non-public
	// address the rules do not allow.
	ErrAddressRefused = errors.New("upstream address refused")
)

// nonPublic are address ranges net/netip's predicates do not cover that are
// not on the public internet either.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking (RFC 2544)
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// IsPublicAddr reports whether a is a unicast address on the public
// internet: not loopback, link-local, private (RFC 1918, fc00::/7),
// multicast, unspecified or one of the other reserved ranges.
func IsPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Rules hold what the rules need to know of one upstream.
type Rules struct {
	// base is the endpoint without a trailing slash.
	base *url.URL
	// hostname is the endpoint's host without the port, lower-case.
	hostname string
	// proxy is the host name of the HTTP proxy the environment names for
	// the endpoint, if any: the transport dials it instead.
	proxy string
	// private is set once the upstream is known to have a non-public
	// address: an address literal, or a name that resolved to one.
	private atomic.Bool
}

// Parse checks an upstream endpoint: an http or https URL with a host and
// nothing but an optional path.
func Parse(endpoint string) (*Rules, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: want http(s)://host[:port][/path]", endpoint)
	}
	r := &Rules{base: u, hostname: strings.ToLower(u.Hostname())}
	if a, err := netip.ParseAddr(r.hostname); err == nil && !IsPublicAddr(a) {
		r.private.Store(true)
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p != nil {
		r.proxy = strings.ToLower(p.Hostname())
	}
	return r, nil
}

// Base is the endpoint, without a trailing slash.
func (r *Rules) Base() *url.URL {
	u := *r.base
	return &u
}

// Client returns an HTTP client that follows these rules, with the
// connect, TLS and response header timeouts above and the environment's
// proxy settings.
func (r *Rules) Client() *http.Client {
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: keepAlive}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           r.DialContext(d),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConns,
		IdleConnTimeout:       IdleConnTimeout,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, CheckRedirect: r.CheckRedirect}
}

// sameOrigin reports whether u has the endpoint's scheme and host.
func (r *Rules) sameOrigin(u *url.URL) bool {
	return u.Scheme == r.base.Scheme && strings.EqualFold(u.Host, r.base.Host)
}

// CheckRedirect is the http.Client's CheckRedirect.
func (r *Rules) CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, MaxRedirects)
	}
	u := req.URL
	if r.sameOrigin(u) {
		return nil
	}
	// A token goes to the upstream only, not to its CDN: Go's client
	// keeps it for a subdomain.
	req.Header.Del("Authorization")
	if u.Scheme != "https" {
		return fmt.Errorf("%w: to %s://%s, neither https nor the upstream's own host", ErrRedirectRefused, u.Scheme, u.Host)
	}
	if u.User != nil {
		return fmt.Errorf("%w: to a URL with credentials", ErrRedirectRefused)
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !IsPublicAddr(a) && !r.private.Load() {
		return fmt.Errorf("%w: to the non-public address %s", ErrRedirectRefused, a)
	}
	return nil
}

// DialContext dials addr with d, refusing a non-public address unless addr
// names the upstream itself (or the proxy), or the upstream is non-public
// too.
func (r *Rules) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		host = strings.ToLower(host)
		own := host == r.hostname || (r.proxy != "" && host == r.proxy)
		dd := *d
		dd.Control = func(_, address string, _ syscall.RawConn) error {
			return r.checkDial(own, address)
		}
		return dd.DialContext(ctx, network, addr)
	}
}

// checkDial decides on one resolved address; own means it belongs to the
// upstream's host (or the proxy).
func (r *Rules) checkDial(own bool, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrAddressRefused, address)
	}
	switch {
	case IsPublicAddr(ap.Addr()):
		return nil
	case own:
		r.private.Store(true)
		return nil
	case r.private.Load():
		return nil
	}
	return fmt.Errorf("%w: %s is not a public address, and neither is the upstream", ErrAddressRefused, ap.Addr())
}
