// Package localapi is the daemon's local HTTP API: the handler that serves
// an api.API (JSON, with NDJSON progress streams for long operations), the
// Guard in front of it that answers only its owner (loopback Host, no
// browser requests, a token on every request), the token file, and the
// Client the CLI uses, which implements api.API over HTTP.
//
// The API's error kinds (api.ErrBadInput, ...) cross it as a "kind" field
// and come out of the Client as errors that errors.Is still recognises.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/httpserve"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// API routes, relative to the base URL in HOME/api.
const (
	routeID         = "/api/v0/id"
	routeConnect    = "/api/v0/connect"
	routePeers      = "/api/v0/peers"
	routeAdd        = "/api/v0/add"
	routeFetch      = "/api/v0/fetch"
	routeList       = "/api/v0/ls"
	routeRemove     = "/api/v0/rm"
	routeGC         = "/api/v0/gc"
	routeStats      = "/api/v0/stats"
	routeVerify     = "/api/v0/verify"
	routeImport     = "/api/v0/models/import"
	routePublish    = "/api/v0/models/publish"
	routeFetchModel = "/api/v0/models/fetch"
	routeInspect    = "/api/v0/models/inspect"
	routeExportCAR  = "/api/v0/car/export"
	routeImportCAR  = "/api/v0/car/import"
	// routeProviders lists the peers the DHT names as providers of ?cid=,
	// for diagnostics and tests.
	routeProviders = "/api/v0/routing/providers"
)

// progressInterval is the most often a stream reports progress.
const progressInterval = 100 * time.Millisecond

// maxRequestBody bounds an API request body.
const maxRequestBody = 1 << 20

// request is the body of the plain POST routes.
type request struct {
	Addr string `json:"addr,omitempty"`
	Path string `json:"path,omitempty"`
	// Ref is what a request names (for verify: the model whose
	// provenance is checked).
	Ref string `json:"ref,omitempty"`
	Out string `json:"out,omitempty"`
	// Timeout is a fetch's stall timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Repair asks verify to fetch damaged content again.
	Repair bool `json:"repair,omitempty"`
	// Denied asks gc to unpin the roots the policy refuses first.
	Denied bool `json:"denied,omitempty"`
}

// streamLine is one line of a streamed (NDJSON) answer: progress reports,
// then a result or an error.
type streamLine struct {
	Progress *api.Progress   `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *apiError       `json:"error,omitempty"`
}

// Error kinds as they cross the API.
const (
	kindBadInput     = "bad_input"
	kindNotFound     = "not_found"
	kindNoSpace      = "no_space"
	kindForbidden    = "forbidden"
	kindUnauthorized = "unauthorized"
	kindMediaType    = "unsupported_media_type"
)

// kinds maps the API's error kinds to their names on the wire and their
// HTTP status.
var kinds = []struct {
	err    error
	name   string
	status int
}{
	{api.ErrBadInput, kindBadInput, http.StatusBadRequest},
	{api.ErrNotFound, kindNotFound, http.StatusNotFound},
	{api.ErrNoSpace, kindNoSpace, http.StatusInsufficientStorage},
	{api.ErrUnauthorized, kindUnauthorized, http.StatusUnauthorized},
}

// apiError is an error as it crosses the HTTP API.
type apiError struct {
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// Is lets errors.Is see the error kinds through the API.
func (e *apiError) Is(target error) bool {
	for _, k := range kinds {
		if target == k.err {
			return e.Kind == k.name
		}
	}
	return false
}

func toAPIError(err error) *apiError {
	e := &apiError{Message: err.Error()}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			e.Kind = k.name
			break
		}
	}
	return e
}

func statusOf(e *apiError) int {
	for _, k := range kinds {
		if e.Kind == k.name {
			return k.status
		}
	}
	return http.StatusInternalServerError
}

// NewHandler serves a over HTTP, every route and the Go profiles under
// /debug/pprof/. It checks no token or origin: Serve puts a Guard in front
// of it.
func NewHandler(a api.API, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	plainHandler := func(f func(r *http.Request, req request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			req, err := decodeRequest(r)
			var v any
			if err == nil {
				v, err = f(r, req)
			}
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		}
	}
	// plain answers within the server's write timeout; long may take as
	// long as the work does (httpserve.WriteDeadlines).
	plain := func(route string, f func(r *http.Request, req request) (any, error)) {
		mux.Handle(route, plainHandler(f))
	}
	long := func(route string, f func(r *http.Request, req request) (any, error)) {
		mux.Handle(route, httpserve.WriteDeadlines(plainHandler(f)))
	}
	plain("GET "+routeID, func(r *http.Request, _ request) (any, error) { return a.ID(r.Context()) })
	plain("POST "+routeConnect, func(r *http.Request, q request) (any, error) {
		return struct{}{}, a.Connect(r.Context(), q.Addr)
	})
	plain("GET "+routePeers, func(r *http.Request, _ request) (any, error) { return a.Peers(r.Context()) })
	plain("GET "+routeList, func(r *http.Request, _ request) (any, error) { return a.List(r.Context()) })
	plain("POST "+routeRemove, func(r *http.Request, q request) (any, error) {
		return struct{}{}, a.Remove(r.Context(), q.Ref)
	})
	long("POST "+routeGC, func(r *http.Request, q request) (any, error) {
		return a.GC(r.Context(), api.GCRequest{Denied: q.Denied})
	})
	plain("GET "+routeStats, func(r *http.Request, _ request) (any, error) { return a.Stats(r.Context()) })
	plain("GET "+routeProviders, func(r *http.Request, _ request) (any, error) {
		return a.FindProviders(r.Context(), r.URL.Query().Get("cid"))
	})
	long("POST "+routeVerify, func(r *http.Request, q request) (any, error) {
		return a.Verify(r.Context(), api.VerifyRequest{Repair: q.Repair, Provenance: q.Ref})
	})
	mux.Handle("POST "+routeAdd, streamed(log, func(ctx context.Context, q request, p api.ProgressFunc) (api.AddResult, error) {
		return a.Add(ctx, q.Path, p)
	}))
	mux.Handle("POST "+routeFetch, streamed(log, func(ctx context.Context, q request, p api.ProgressFunc) (api.FetchResult, error) {
		return a.Fetch(ctx, api.FetchRequest{Ref: q.Ref, Out: q.Out, Timeout: q.Timeout}, p)
	}))
	mux.Handle("POST "+routeImport, streamed(log, a.Import))
	mux.Handle("POST "+routeFetchModel, streamed(log, a.FetchModel))
	mux.Handle("POST "+routePublish, streamed(log, func(ctx context.Context, q api.PublishRequest, _ api.ProgressFunc) (api.PublishResult, error) {
		return a.Publish(ctx, q)
	}))
	mux.Handle("POST "+routeInspect, streamed(log, func(ctx context.Context, q api.InspectRequest, _ api.ProgressFunc) (api.InspectResult, error) {
		return a.Inspect(ctx, q)
	}))
	mux.Handle("POST "+routeExportCAR, streamed(log, a.ExportCAR))
	mux.Handle("POST "+routeImportCAR, streamed(log, a.ImportCAR))
	registerDebug(mux)
	return mux
}

func decodeRequest(r *http.Request) (request, error) {
	var q request
	if r.Method != http.MethodPost {
		return q, nil
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody)).Decode(&q); err != nil {
		return q, fmt.Errorf("%w: request body: %v", api.ErrBadInput, err)
	}
	return q, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers err with its kind's status.
func writeError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	writeJSON(w, statusOf(e), map[string]*apiError{"error": e})
}

// streamed answers with NDJSON: progress lines, then the result or the
// error. A stream runs as long as its work does, each write under its own
// deadline (httpserve.WriteDeadlines); when the client goes away, the
// request context ends the operation.
func streamed[Req, Res any](log *slog.Logger, f func(context.Context, Req, api.ProgressFunc) (Res, error)) http.Handler {
	return httpserve.WriteDeadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q Req
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&q); err != nil {
			writeError(w, fmt.Errorf("%w: request body: %v", api.ErrBadInput, err))
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		var mu sync.Mutex
		enc := json.NewEncoder(w)
		flusher, _ := w.(http.Flusher)
		send := func(l streamLine) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(l)
			if flusher != nil {
				flusher.Flush()
			}
		}
		var last time.Time
		progress := func(p api.Progress) {
			if now := time.Now(); now.Sub(last) >= progressInterval || p.Done == p.Total {
				last = now
				send(streamLine{Progress: &p})
			}
		}
		v, err := f(r.Context(), q, progress)
		if err == nil {
			var raw []byte
			if raw, err = json.Marshal(v); err == nil {
				send(streamLine{Result: raw})
				return
			}
		}
		log.Debug("api request failed", "path", r.URL.Path, "err", err)
		send(streamLine{Error: toAPIError(err)})
	}))
}

// routeMetrics serves the node's Prometheus metrics on the API, behind its
// guard like every route (scrape with the API token as bearer token).
const routeMetrics = "/metrics"

// Serve serves a on ln until ctx ends, then shuts the server down, with
// metrics (if not nil) at /metrics. guard sees every request before any
// handler (the routes, /metrics, /debug/pprof).
func Serve(ctx context.Context, ln net.Listener, a api.API, log *slog.Logger, guard *Guard, metrics prometheus.Gatherer) error {
	h := NewHandler(a, log)
	if metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET "+routeMetrics, promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
		mux.Handle("/", h)
		h = mux
	}
	if err := httpserve.Serve(ctx, ln, guard.Handler(h)); err != nil {
		return fmt.Errorf("api server: %w", err)
	}
	return nil
}
