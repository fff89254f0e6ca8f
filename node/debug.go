package node

import (
	"net/http"
	"net/http/pprof"
)

// routeDebug is the prefix of the Go runtime profiles (net/http/pprof) on
// the local API. The API listens on loopback (api.addr), so only this
// machine can profile the daemon, e.g.
// `go tool pprof http://127.0.0.1:PORT/debug/pprof/profile?seconds=10`.
const routeDebug = "/debug/pprof/"

// registerDebug adds the pprof handlers to mux.
func registerDebug(mux *http.ServeMux) {
	mux.HandleFunc("GET "+routeDebug, pprof.Index)
	mux.HandleFunc("GET "+routeDebug+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+routeDebug+"profile", pprof.Profile)
	mux.HandleFunc("GET "+routeDebug+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+routeDebug+"trace", pprof.Trace)
}
