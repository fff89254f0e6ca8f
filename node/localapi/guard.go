package localapi

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Guard decides, before any handler runs, which requests the local API
// answers: only its owner's. The API reads and writes files on this
// machine, so a web page the owner opens must not be able to use it (with
// a form, a no-cors fetch, or DNS rebinding), nor anyone without the token.
//
// In order, a request is refused
//  1. with 403 if its Host is not a loopback name or address (localhost,
//     127.0.0.0/8, ::1). A page that rebinds its own hostname to 127.0.0.1
//     talks to the API as a same-origin page, but its requests carry that
//     hostname. When the API deliberately listens beyond loopback (which
//     needs a configured api.token, see CheckExposure), an IP-literal Host
//     equal to the listen address passes too (any IP literal when it
//     listens on all interfaces): rebinding needs a hostname.
//  2. with 403 if it carries an Origin header, a Sec-Fetch-Site of
//     cross-site or same-site, or fails http.CrossOriginProtection.
//  3. with 401 if it lacks "Authorization: Bearer <token>".
//  4. with 415 if it is a POST whose body is not application/json: HTML
//     forms and no-cors fetches can only send form or text/plain bodies.
//
// What this adds to http.CrossOriginProtection, which only refuses
// unsafe-method requests whose Sec-Fetch-Site or Origin names another
// origin: the Host allow-list (against DNS rebinding, where Origin and
// Host agree), checks on every method (GET /debug/pprof too), refusing
// any Origin at all (the API serves no page of its own, so no browser
// request is legitimate), the token, and the content type. Like Kubo's
// RPC API, only POST changes anything.
type Guard struct {
	// bearer is "Bearer <token>".
	bearer []byte
	// listen is the address the API listens on, if beyond loopback.
	listen netip.Addr
	// exposed is true when the API listens beyond loopback.
	exposed bool
	cop     *http.CrossOriginProtection
	log     *slog.Logger
}

// NewGuard returns the guard for an API listening on listen (the
// listener's address) that requires token; it logs refusals at debug
// level. The caller has checked the exposure (CheckExposure): a listen
// address beyond loopback widens the Host rule to that address.
func NewGuard(listen net.Addr, token Secret, log *slog.Logger) (*Guard, error) {
	if token == "" {
		return nil, fmt.Errorf("API guard: no token")
	}
	g := &Guard{bearer: []byte(bearerPrefix + string(token)), cop: http.NewCrossOriginProtection(), log: log}
	if ap, err := netip.ParseAddrPort(listen.String()); err == nil && !ap.Addr().Unmap().IsLoopback() {
		g.listen, g.exposed = ap.Addr().Unmap().WithZone(""), true
	}
	return g, nil
}

// Handler wraps h (the whole API mux) with the guard.
func (g *Guard) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, kind, msg := g.check(r); status != 0 {
			g.log.Debug("api request refused", "method", r.Method, "path", r.URL.Path, "host", r.Host, "status", status, "reason", msg)
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", "Bearer")
			}
			writeJSON(w, status, map[string]*apiError{"error": {Message: msg, Kind: kind}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// check returns the status, kind and message of a refusal, or status 0.
func (g *Guard) check(r *http.Request) (int, string, string) {
	if !g.hostAllowed(r.Host) {
		return http.StatusForbidden, kindForbidden, "the API answers only requests for a loopback host (localhost, 127.0.0.1, [::1])"
	}
	if r.Header.Get("Origin") != "" {
		return http.StatusForbidden, kindForbidden, "the API answers no browser requests (Origin header present)"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return http.StatusForbidden, kindForbidden, "the API answers no cross-site requests"
	}
	if err := g.cop.Check(r); err != nil {
		return http.StatusForbidden, kindForbidden, err.Error()
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), g.bearer) != 1 {
		return http.StatusUnauthorized, kindUnauthorized, "missing or wrong API token (send Authorization: Bearer <token>, the token is in HOME/api.token)"
	}
	if r.Method == http.MethodPost {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, kindMediaType, "POST bodies must be sent as Content-Type: application/json"
		}
	}
	return 0, "", ""
}

// hostAllowed reports whether a request's Host (host or host:port) names
// the API without a hostname an attacker could rebind.
func (g *Guard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.IsLoopback():
		return true
	case !g.exposed:
		return false
	}
	return g.listen.IsUnspecified() || ip == g.listen
}
