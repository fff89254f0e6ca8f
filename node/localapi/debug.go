package localapi

import (
	"net/http"
	"net/http/pprof"
)

// routeDebug is the prefix of the Go runtime profiles (net/http/pprof) on
// the local API. They sit behind the API's guard like every route (token,
// loopback Host, no browser requests), so only the owner can profile the
// daemon, e.g.
//
//	curl -H "Authorization: Bearer $(cat ~/.allmende/api.token)" \
//	    -o cpu.pprof 'http://127.0.0.1:5080/debug/pprof/profile?seconds=10'
//	go tool pprof cpu.pprof
//
// net/http/pprof extends the write deadline of a profile or trace by its
// length itself.
const routeDebug = "/debug/pprof/"

// registerDebug adds the pprof handlers to mux.
func registerDebug(mux *http.ServeMux) {
	mux.HandleFunc("GET "+routeDebug, pprof.Index)
	mux.HandleFunc("GET "+routeDebug+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+routeDebug+"profile", pprof.Profile)
	mux.HandleFunc("GET "+routeDebug+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+routeDebug+"trace", pprof.Trace)
}
