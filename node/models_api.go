package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// ModelAPI is what the CLI can ask of a node about named models. *Node
// implements it in-process and *Client over the daemon's HTTP API.
type ModelAPI interface {
	Import(ctx context.Context, req ImportRequest, progress ProgressFunc) (ImportResult, error)
	Publish(ctx context.Context, req PublishRequest) (PublishResult, error)
	FetchModel(ctx context.Context, req ModelFetchRequest, progress ProgressFunc) (ModelFetchResult, error)
	Inspect(ctx context.Context, req InspectRequest) (InspectResult, error)
}

var (
	_ ModelAPI = (*Node)(nil)
	_ ModelAPI = (*Client)(nil)
)

// Model API routes.
const (
	routeImport     = "/api/v0/models/import"
	routePublish    = "/api/v0/models/publish"
	routeFetchModel = "/api/v0/models/fetch"
	routeInspect    = "/api/v0/models/inspect"
)

// registerModelRoutes adds the ModelAPI routes to mux if api has them.
func registerModelRoutes(mux *http.ServeMux, api API, log *slog.Logger) {
	m, ok := api.(ModelAPI)
	if !ok {
		return
	}
	mux.Handle("POST "+routeImport, streamedJSON(log, m.Import))
	mux.Handle("POST "+routeFetchModel, streamedJSON(log, m.FetchModel))
	mux.Handle("POST "+routePublish, streamedJSON(log, func(ctx context.Context, q PublishRequest, _ ProgressFunc) (PublishResult, error) {
		return m.Publish(ctx, q)
	}))
	mux.Handle("POST "+routeInspect, streamedJSON(log, func(ctx context.Context, q InspectRequest, _ ProgressFunc) (InspectResult, error) {
		return m.Inspect(ctx, q)
	}))
}

// streamedJSON is like streamed for handlers with their own request type:
// NDJSON progress lines, then the result or the error. A stream runs as
// long as its work does, each write under its own deadline
// (writeDeadlines).
func streamedJSON[Req, Res any](log *slog.Logger, f func(context.Context, Req, ProgressFunc) (Res, error)) http.Handler {
	return writeDeadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q Req
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&q); err != nil {
			e := toAPIError(fmt.Errorf("%w: request body: %v", ErrBadInput, err))
			writeJSON(w, statusOf(e), map[string]*apiError{"error": e})
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
		progress := func(p Progress) {
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

// Import implements ModelAPI. req.Path must be absolute on the daemon's
// machine.
func (c *Client) Import(ctx context.Context, req ImportRequest, progress ProgressFunc) (ImportResult, error) {
	var v ImportResult
	return v, c.stream(ctx, routeImport, req, progress, &v)
}

// Publish implements ModelAPI.
func (c *Client) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	var v PublishResult
	return v, c.stream(ctx, routePublish, req, nil, &v)
}

// FetchModel implements ModelAPI.
func (c *Client) FetchModel(ctx context.Context, req ModelFetchRequest, progress ProgressFunc) (ModelFetchResult, error) {
	var v ModelFetchResult
	return v, c.stream(ctx, routeFetchModel, req, progress, &v)
}

// Inspect implements ModelAPI.
func (c *Client) Inspect(ctx context.Context, req InspectRequest) (InspectResult, error) {
	var v InspectResult
	return v, c.stream(ctx, routeInspect, req, nil, &v)
}
