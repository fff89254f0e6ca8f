package localapi

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	const token = "guard-test-token-0123456789"
	const bearer = "Bearer " + token
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5080}
	lan := &net.TCPAddr{IP: net.IPv4(192, 168, 1, 10), Port: 5080}
	all := &net.TCPAddr{IP: net.IPv4zero, Port: 5080}
	type hdr = map[string]string
	tests := []struct {
		name   string
		listen net.Addr
		method string
		path   string
		host   string
		header hdr
		status int
	}{
		// Host: only loopback names and addresses (DNS rebinding).
		{"the CLI's request passes", loopback, "GET", routeID, "127.0.0.1:5080", hdr{"Authorization": bearer}, 200},
		{"localhost passes", loopback, "GET", routeID, "localhost:5080", hdr{"Authorization": bearer}, 200},
		{"localhost in capitals passes", loopback, "GET", routeID, "LOCALHOST", hdr{"Authorization": bearer}, 200},
		{"IPv6 loopback passes", loopback, "GET", routeID, "[::1]:5080", hdr{"Authorization": bearer}, 200},
		{"IPv6 loopback without a port passes", loopback, "GET", routeID, "[::1]", hdr{"Authorization": bearer}, 200},
		{"all of 127.0.0.0/8 passes", loopback, "GET", routeID, "127.0.0.2:5080", hdr{"Authorization": bearer}, 200},
		{"IPv4-mapped loopback passes", loopback, "GET", routeID, "[::ffff:127.0.0.1]:5080", hdr{"Authorization": bearer}, 200},
		{"a rebound hostname is refused even with the token", loopback, "GET", routeList, "evil.example:5080", hdr{"Authorization": bearer}, 403},
		{"a hostname under localhost is refused", loopback, "GET", routeList, "a.localhost:5080", hdr{"Authorization": bearer}, 403},
		{"a LAN address is refused on a loopback API", loopback, "GET", routeList, "192.168.1.10:5080", hdr{"Authorization": bearer}, 403},
		{"an empty Host is refused", loopback, "GET", routeList, "", hdr{"Authorization": bearer}, 403},
		{"pprof with a foreign Host is refused", loopback, "GET", routeDebug, "evil.example", hdr{"Authorization": bearer}, 403},
		{"a foreign Host is refused before the token is asked for", loopback, "GET", routeList, "evil.example", nil, 403},

		// Origin and Sec-Fetch-Site: no browser requests.
		{"a cross-origin text/plain POST is refused", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403},
		{"an Origin is refused even with the token and JSON", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Origin": "http://evil.example", "Authorization": bearer, "Content-Type": "application/json"}, 403},
		{"an Origin equal to the Host is refused too", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Origin": "http://127.0.0.1:5080", "Authorization": bearer, "Content-Type": "application/json"}, 403},
		{"an opaque Origin (sandboxed page) is refused", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Origin": "null", "Authorization": bearer, "Content-Type": "application/json"}, 403},
		{"an Origin on a GET is refused", loopback, "GET", routeList, "127.0.0.1:5080", hdr{"Origin": "http://evil.example", "Authorization": bearer}, 403},
		{"Sec-Fetch-Site cross-site is refused", loopback, "GET", routeDebug, "127.0.0.1:5080", hdr{"Sec-Fetch-Site": "cross-site", "Authorization": bearer}, 403},
		{"Sec-Fetch-Site same-site is refused", loopback, "GET", routeList, "127.0.0.1:5080", hdr{"Sec-Fetch-Site": "same-site", "Authorization": bearer}, 403},
		{"an unknown Sec-Fetch-Site on a POST is refused (CrossOriginProtection)", loopback, "POST", routeGC, "127.0.0.1:5080", hdr{"Sec-Fetch-Site": "bogus", "Authorization": bearer, "Content-Type": "application/json"}, 403},
		{"Sec-Fetch-Site none (typed by the user) passes", loopback, "GET", routeList, "127.0.0.1:5080", hdr{"Sec-Fetch-Site": "none", "Authorization": bearer}, 200},

		// Token, on every route.
		{"no token is refused", loopback, "GET", routeID, "127.0.0.1:5080", nil, 401},
		{"no token on pprof is refused", loopback, "GET", routeDebug + "cmdline", "127.0.0.1:5080", nil, 401},
		{"a wrong token is refused", loopback, "GET", routeID, "127.0.0.1:5080", hdr{"Authorization": "Bearer nope"}, 401},
		{"the token without Bearer is refused", loopback, "GET", routeID, "127.0.0.1:5080", hdr{"Authorization": token}, 401},
		{"a token prefix is refused", loopback, "GET", routeID, "127.0.0.1:5080", hdr{"Authorization": bearer[:12]}, 401},
		{"no token on CAR export is refused", loopback, "POST", routeExportCAR, "127.0.0.1:5080", hdr{"Content-Type": "application/json"}, 401},
		{"no token on CAR import is refused", loopback, "POST", routeImportCAR, "127.0.0.1:5080", hdr{"Content-Type": "application/json"}, 401},
		{"CAR import from a browser is refused", loopback, "POST", routeImportCAR, "127.0.0.1:5080", hdr{"Origin": "http://evil.example", "Authorization": bearer, "Content-Type": "application/json"}, 403},
		{"a token is asked for before the content type", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Content-Type": "text/plain"}, 401},

		// POST bodies are JSON.
		{"a text/plain POST is refused", loopback, "POST", routeAdd, "127.0.0.1:5080", hdr{"Authorization": bearer, "Content-Type": "text/plain"}, 415},
		{"a form POST is refused", loopback, "POST", routeFetch, "127.0.0.1:5080", hdr{"Authorization": bearer, "Content-Type": "application/x-www-form-urlencoded"}, 415},
		{"a multipart POST is refused", loopback, "POST", routeImport, "127.0.0.1:5080", hdr{"Authorization": bearer, "Content-Type": "multipart/form-data; boundary=x"}, 415},
		{"a POST without a content type is refused", loopback, "POST", routeGC, "127.0.0.1:5080", hdr{"Authorization": bearer}, 415},
		{"a JSON POST passes", loopback, "POST", routeGC, "127.0.0.1:5080", hdr{"Authorization": bearer, "Content-Type": "application/json"}, 200},
		{"a JSON POST with a charset passes", loopback, "POST", routeGC, "127.0.0.1:5080", hdr{"Authorization": bearer, "Content-Type": "Application/JSON; charset=utf-8"}, 200},

		// An API deliberately exposed (with a configured token).
		{"exposed: the listen address as Host passes", lan, "GET", routeID, "192.168.1.10:5080", hdr{"Authorization": bearer}, 200},
		{"exposed: loopback still passes", lan, "GET", routeID, "127.0.0.1:5080", hdr{"Authorization": bearer}, 200},
		{"exposed: another address is refused", lan, "GET", routeID, "192.168.1.11:5080", hdr{"Authorization": bearer}, 403},
		{"exposed: a hostname is refused", lan, "GET", routeID, "mybox.lan:5080", hdr{"Authorization": bearer}, 403},
		{"exposed on all interfaces: any IP literal passes", all, "GET", routeID, "10.0.0.5:5080", hdr{"Authorization": bearer}, 200},
		{"exposed on all interfaces: a hostname is refused", all, "GET", routeID, "mybox.lan", hdr{"Authorization": bearer}, 403},
		{"exposed: the token is still required", lan, "GET", routeID, "192.168.1.10:5080", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGuard(tt.listen, token, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			reached := false
			h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				reached = true
				w.WriteHeader(http.StatusOK)
			}))
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"path":"/etc/passwd"}`))
			r.Host = tt.host
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if reached != (tt.status == http.StatusOK) {
				t.Errorf("handler reached: %v, want %v", reached, tt.status == http.StatusOK)
			}
			if tt.status == http.StatusOK {
				return
			}
			var body struct {
				Error *apiError `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil || body.Error.Message == "" {
				t.Errorf("refusal is not a JSON error: %q (%v)", w.Body, err)
			}
			if strings.Contains(w.Body.String(), token) {
				t.Error("the answer contains the token")
			}
		})
	}
}

func TestNewGuardNeedsToken(t *testing.T) {
	if _, err := NewGuard(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a guard without a token was made")
	}
}
