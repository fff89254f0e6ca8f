package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/allmende/allmende/store"
)

// API is what the CLI can ask of a node. *Node implements it in-process and
// *Client over the daemon's HTTP API, so every command works either way.
type API interface {
	ID(ctx context.Context) (IDInfo, error)
	Connect(ctx context.Context, addr string) error
	Peers(ctx context.Context) ([]PeerInfo, error)
	Add(ctx context.Context, path string, progress ProgressFunc) (AddResult, error)
	Fetch(ctx context.Context, req FetchRequest, progress ProgressFunc) (FetchResult, error)
	List(ctx context.Context) ([]PinInfo, error)
	Remove(ctx context.Context, ref string) error
	GC(ctx context.Context) (store.GCResult, error)
	Stats(ctx context.Context) (Stats, error)
	Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error)
}

var _ API = (*Node)(nil)

// API routes, relative to the base URL in HOME/api.
const (
	routeID      = "/api/v0/id"
	routeConnect = "/api/v0/connect"
	routePeers   = "/api/v0/peers"
	routeAdd     = "/api/v0/add"
	routeFetch   = "/api/v0/fetch"
	routeList    = "/api/v0/ls"
	routeRemove  = "/api/v0/rm"
	routeGC      = "/api/v0/gc"
	routeStats   = "/api/v0/stats"
	routeVerify  = "/api/v0/verify"
)

// progressInterval is the most often a stream reports progress.
const progressInterval = 100 * time.Millisecond

// maxRequestBody bounds an API request body.
const maxRequestBody = 1 << 20

type request struct {
	Addr string `json:"addr,omitempty"`
	Path string `json:"path,omitempty"`
	Ref  string `json:"ref,omitempty"`
	Out  string `json:"out,omitempty"`
	// Timeout is a fetch's stall timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Repair asks verify to fetch damaged content again.
	Repair bool `json:"repair,omitempty"`
}

// streamLine is one line of a streamed (NDJSON) answer: progress reports,
// then a result or an error.
type streamLine struct {
	Progress *Progress       `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *apiError       `json:"error,omitempty"`
}

// apiError is an error as it crosses the HTTP API.
type apiError struct {
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// Is lets errors.Is see the error kinds through the API.
func (e *apiError) Is(target error) bool {
	return (target == ErrBadInput && e.Kind == "bad_input") || (target == ErrNotFound && e.Kind == "not_found") ||
		(target == ErrNoSpace && e.Kind == "no_space") || (target == ErrUnauthorized && e.Kind == kindUnauthorized)
}

func toAPIError(err error) *apiError {
	e := &apiError{Message: err.Error()}
	switch {
	case errors.Is(err, ErrBadInput):
		e.Kind = "bad_input"
	case errors.Is(err, ErrNotFound):
		e.Kind = "not_found"
	case errors.Is(err, ErrNoSpace):
		e.Kind = "no_space"
	}
	return e
}

func statusOf(e *apiError) int {
	switch e.Kind {
	case "bad_input":
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "no_space":
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// NewAPIHandler serves api over HTTP. It checks no token or origin:
// ServeAPI puts an APIGuard in front of it.
func NewAPIHandler(api API, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	plainHandler := func(f func(r *http.Request, req request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			req, err := decodeRequest(r)
			var v any
			if err == nil {
				v, err = f(r, req)
			}
			if err != nil {
				e := toAPIError(err)
				writeJSON(w, statusOf(e), map[string]*apiError{"error": e})
				return
			}
			writeJSON(w, http.StatusOK, v)
		}
	}
	// plain answers within writeTimeout; long may take as long as the
	// work does (writeDeadlines).
	plain := func(route string, f func(r *http.Request, req request) (any, error)) {
		mux.Handle(route, plainHandler(f))
	}
	long := func(route string, f func(r *http.Request, req request) (any, error)) {
		mux.Handle(route, writeDeadlines(plainHandler(f)))
	}
	plain("GET "+routeID, func(r *http.Request, _ request) (any, error) { return api.ID(r.Context()) })
	plain("POST "+routeConnect, func(r *http.Request, q request) (any, error) {
		return struct{}{}, api.Connect(r.Context(), q.Addr)
	})
	plain("GET "+routePeers, func(r *http.Request, _ request) (any, error) { return api.Peers(r.Context()) })
	plain("GET "+routeList, func(r *http.Request, _ request) (any, error) { return api.List(r.Context()) })
	plain("POST "+routeRemove, func(r *http.Request, q request) (any, error) {
		return struct{}{}, api.Remove(r.Context(), q.Ref)
	})
	long("POST "+routeGC, func(r *http.Request, _ request) (any, error) { return api.GC(r.Context()) })
	plain("GET "+routeStats, func(r *http.Request, _ request) (any, error) { return api.Stats(r.Context()) })
	registerRouting(mux, api)
	long("POST "+routeVerify, func(r *http.Request, q request) (any, error) {
		return api.Verify(r.Context(), VerifyRequest{Repair: q.Repair})
	})
	mux.Handle("POST "+routeAdd, streamed(log, func(ctx context.Context, q request, p ProgressFunc) (any, error) {
		return api.Add(ctx, q.Path, p)
	}))
	mux.Handle("POST "+routeFetch, streamed(log, func(ctx context.Context, q request, p ProgressFunc) (any, error) {
		return api.Fetch(ctx, FetchRequest{Ref: q.Ref, Out: q.Out, Timeout: q.Timeout}, p)
	}))
	registerDebug(mux)
	registerModelRoutes(mux, api, log)
	return mux
}

func decodeRequest(r *http.Request) (request, error) {
	var q request
	if r.Method != http.MethodPost {
		return q, nil
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody)).Decode(&q); err != nil {
		return q, fmt.Errorf("%w: request body: %v", ErrBadInput, err)
	}
	return q, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// streamed answers with NDJSON: progress lines, then the result or error.
// When the client goes away, the request context ends the operation.
func streamed(log *slog.Logger, f func(context.Context, request, ProgressFunc) (any, error)) http.Handler {
	return streamedJSON(log, f)
}

// ServeAPI serves api on ln until ctx ends, then shuts the server down.
// guard sees every request before any handler (the routes, /debug/pprof).
func ServeAPI(ctx context.Context, ln net.Listener, api API, log *slog.Logger, guard *APIGuard) error {
	if err := serveHTTP(ctx, ln, guard.Handler(NewAPIHandler(api, log))); err != nil {
		return fmt.Errorf("api server: %w", err)
	}
	return nil
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully.
// Requests run under ctx, so they end when the server does. Every server
// has all its timeouts (see httplimits.go); answers that may run longer
// than writeTimeout go through writeDeadlines.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	return nil
}
