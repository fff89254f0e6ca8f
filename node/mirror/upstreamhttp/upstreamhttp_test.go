package upstreamhttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// TestRedirectRulesPublicUpstream: for an upstream on the internet, a
// redirect to a non-public address literal is refused even over https.
func TestRedirectRulesPublicUpstream(t *testing.T) {
	tests := []struct {
		endpoint, to string
		ok           bool
	}{
		{"https://hub.example", "https://cdn.example/x", true},
		{"https://hub.example", "https://hub.example/other", true},
		{"https://hub.example", "http://cdn.example/x", false},
		{"https://hub.example", "http://hub.example/x", false},
		{"https://hub.example", "https://10.0.0.1/x", false},
		{"https://hub.example", "https://[::1]:8443/x", false},
		{"https://hub.example", "https://169.254.169.254/latest", false},
		{"https://hub.example", "https://[fe80::1]/x", false},
		{"https://hub.example", "https://user:pw@cdn.example/x", false},
		{"http://10.0.0.5:8080", "http://10.0.0.5:8080/x", true},
		{"http://10.0.0.5:8080", "https://10.0.0.6/x", true},
		{"http://10.0.0.5:8080", "http://10.0.0.6/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+" to "+tt.to, func(t *testing.T) {
			r, err := Parse(tt.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, tt.to, nil)
			if err := r.CheckRedirect(req, nil); (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestDialRules: the address actually dialled is checked, so a host name
// that resolves to a private address is refused for a public upstream.
func TestDialRules(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		own      bool
		address  string
		ok       bool
	}{
		{"a public address", "https://hub.example", false, "93.184.216.34:443", true},
		{"loopback for a public upstream", "https://hub.example", false, "127.0.0.1:443", false},
		{"a private address for a public upstream", "https://hub.example", false, "192.168.1.1:443", false},
		{"cloud metadata for a public upstream", "https://hub.example", false, "169.254.169.254:80", false},
		{"carrier-grade NAT for a public upstream", "https://hub.example", false, "100.64.0.1:443", false},
		{"an IPv4-mapped loopback", "https://hub.example", false, "[::ffff:127.0.0.1]:443", false},
		{"IPv6 unique local", "https://hub.example", false, "[fd00::1]:443", false},
		{"the upstream's own host on the LAN", "http://mirror.lan:8080", true, "192.168.1.5:8080", true},
		{"anything private for an upstream on loopback", "http://127.0.0.1:8080", false, "10.1.2.3:443", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(tt.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.checkDial(tt.own, tt.address); (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}

	// End to end through DNS: "localhost" is a name, not an address, and
	// resolves to loopback; for a public upstream the dial is refused and
	// the server there never sees a connection.
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r, _ := Parse("https://hub.example")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err := r.DialContext(&net.Dialer{})(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if !errors.Is(err, ErrAddressRefused) {
		t.Errorf("dial localhost for a public upstream: err = %v, want ErrAddressRefused", err)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the loopback server saw %d connections", n)
	}
}

// TestRedirectDropsToken: the upstream token follows a redirect to the
// upstream's own scheme and host only, never to another host (a CDN).
func TestRedirectDropsToken(t *testing.T) {
	r, err := Parse("https://hub.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		to   string
		keep bool
	}{
		{"https://hub.example/org/m/resolve/x", true},
		{"https://cdn.example/blob", false},
		{"https://sub.hub.example/blob", false},
	} {
		u, _ := url.Parse(tt.to)
		req := &http.Request{URL: u, Header: http.Header{"Authorization": {"Bearer hf_secret"}}}
		if err := r.CheckRedirect(req, []*http.Request{{}}); err != nil {
			t.Fatalf("%s: %v", tt.to, err)
		}
		if kept := req.Header.Get("Authorization") != ""; kept != tt.keep {
			t.Errorf("redirect to %s: token kept %v, want %v", tt.to, kept, tt.keep)
		}
	}
}
