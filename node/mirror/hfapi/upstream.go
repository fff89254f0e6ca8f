package hfapi

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

	"github.com/allmende/allmende/store/manifest"
)

// The rules for reaching an upstream: what Client sends, where it follows
// redirects and which addresses it dials.
//
//   - Repository names and revisions pass manifest.ValidName and
//     manifest.ValidRevision, file paths manifest.ValidatePath, before a
//     request is built; every path segment is escaped on its own.
//   - A redirect is followed to https, or to the upstream's own scheme and
//     host, at most MaxRedirects times; a token goes to the upstream's own
//     scheme and host only.
//   - Loopback, link-local, private and other non-public addresses are
//     dialled only for the upstream's own host, or when the upstream itself
//     has such an address (another mirror on the LAN). The check runs on the
//     address actually dialled, after DNS, so a name cannot smuggle a
//     private address past it. Through an HTTP proxy (HTTPS_PROXY and
//     friends) the proxy resolves names; then only redirects to address
//     literals are checked.

// MaxRedirects bounds the redirects one upstream request follows.
const MaxRedirects = 5

// Errors of the upstream rules.
var (
	// ErrBadRequest: a repository name, revision or file path breaks the
	// rules of manifest names (400 Bad Request). Nothing was sent upstream.
	ErrBadRequest = errors.New("bad request")
	// ErrRedirectRefused: the upstream redirected where the rules above do
	// not allow (a 502 to the client).
	ErrRedirectRefused = errors.New("upstream redirect refused")
	// ErrAddressRefused: a connection would have gone to a non-public
	// address the rules above do not allow.
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

// endpointRules hold what the rules need to know of one upstream.
type endpointRules struct {
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

// parseEndpoint checks an upstream endpoint: an http or https URL with a
// host and nothing but an optional path.
func parseEndpoint(endpoint string) (*endpointRules, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: want http(s)://host[:port][/path]", endpoint)
	}
	r := &endpointRules{base: u, hostname: strings.ToLower(u.Hostname())}
	if a, err := netip.ParseAddr(r.hostname); err == nil && !IsPublicAddr(a) {
		r.private.Store(true)
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p != nil {
		r.proxy = strings.ToLower(p.Hostname())
	}
	return r, nil
}

// sameOrigin reports whether u has the endpoint's scheme and host.
func (r *endpointRules) sameOrigin(u *url.URL) bool {
	return u.Scheme == r.base.Scheme && strings.EqualFold(u.Host, r.base.Host)
}

// checkRedirect is the http.Client's CheckRedirect.
func (r *endpointRules) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, MaxRedirects)
	}
	u := req.URL
	if r.sameOrigin(u) {
		return nil
	}
	// The upstream token goes to the upstream only, not to its CDN.
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

// dialContext dials addr, refusing a non-public address unless addr names
// the upstream itself (or the proxy), or the upstream is non-public too.
func (r *endpointRules) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
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
func (r *endpointRules) checkDial(own bool, address string) error {
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

// repoPath is the escaped /{org}/{name} of a valid repository name.
func repoPath(name string) (string, error) {
	if err := manifest.ValidName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	org, n, _ := strings.Cut(name, "/")
	return "/" + url.PathEscape(org) + "/" + url.PathEscape(n), nil
}

// ValidRef checks a repository name and revision as a request carries them
// (an empty revision or HEAD means main), with the rules of manifests. It
// returns the revision to use.
func ValidRef(name, rev string) (string, error) {
	if err := manifest.ValidName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	rev = normRev(rev)
	if err := manifest.ValidRevision(rev); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return rev, nil
}

// escapePath escapes each segment of a valid file path.
func escapePath(p string) (string, error) {
	if err := manifest.ValidatePath(p); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/"), nil
}
