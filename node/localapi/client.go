package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/allmende/allmende/node/api"
)

// Client talks to a running daemon's HTTP API; it implements api.API.
type Client struct {
	base  string
	http  *http.Client
	token Secret
}

var _ api.API = (*Client)(nil)

// maxStreamLine bounds one line of a streamed answer.
const maxStreamLine = 1 << 20

// NewClient returns a client for the API at base (e.g. http://127.0.0.1:5080).
func NewClient(base string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{}}
}

// SetToken makes the client send token with every request: the daemon
// requires it (HOME/api.token, or api.token if configured).
func (c *Client) SetToken(token Secret) { c.token = token }

// ID implements api.API.
func (c *Client) ID(ctx context.Context) (api.IDInfo, error) {
	var v api.IDInfo
	return v, c.call(ctx, http.MethodGet, routeID, nil, &v)
}

// Connect implements api.API.
func (c *Client) Connect(ctx context.Context, addr string) error {
	return c.call(ctx, http.MethodPost, routeConnect, request{Addr: addr}, nil)
}

// Peers implements api.API.
func (c *Client) Peers(ctx context.Context) ([]api.PeerInfo, error) {
	var v []api.PeerInfo
	return v, c.call(ctx, http.MethodGet, routePeers, nil, &v)
}

// Add implements api.API. path must be absolute on the daemon's machine.
func (c *Client) Add(ctx context.Context, path string, progress api.ProgressFunc) (api.AddResult, error) {
	var v api.AddResult
	return v, c.stream(ctx, routeAdd, request{Path: path}, progress, &v)
}

// Fetch implements api.API. out must be absolute on the daemon's machine.
func (c *Client) Fetch(ctx context.Context, req api.FetchRequest, progress api.ProgressFunc) (api.FetchResult, error) {
	var v api.FetchResult
	return v, c.stream(ctx, routeFetch, request{Ref: req.Ref, Out: req.Out, Timeout: req.Timeout}, progress, &v)
}

// List implements api.API.
func (c *Client) List(ctx context.Context) ([]api.PinInfo, error) {
	var v []api.PinInfo
	return v, c.call(ctx, http.MethodGet, routeList, nil, &v)
}

// Remove implements api.API.
func (c *Client) Remove(ctx context.Context, ref string) error {
	return c.call(ctx, http.MethodPost, routeRemove, request{Ref: ref}, nil)
}

// GC implements api.API.
func (c *Client) GC(ctx context.Context, req api.GCRequest) (api.GCResult, error) {
	var v api.GCResult
	return v, c.call(ctx, http.MethodPost, routeGC, request{Denied: req.Denied}, &v)
}

// api.Stats implements API.
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var v api.Stats
	return v, c.call(ctx, http.MethodGet, routeStats, nil, &v)
}

// Verify implements api.API.
func (c *Client) Verify(ctx context.Context, req api.VerifyRequest) (api.VerifyResult, error) {
	var v api.VerifyResult
	return v, c.call(ctx, http.MethodPost, routeVerify, request{Repair: req.Repair, Ref: req.Provenance}, &v)
}

// FindProviders implements api.API.
func (c *Client) FindProviders(ctx context.Context, ref string) ([]string, error) {
	var v []string
	return v, c.call(ctx, http.MethodGet, routeProviders+"?cid="+url.QueryEscape(ref), nil, &v)
}

// Import implements api.API. req.Path must be absolute on the daemon's
// machine.
func (c *Client) Import(ctx context.Context, req api.ImportRequest, progress api.ProgressFunc) (api.ImportResult, error) {
	var v api.ImportResult
	return v, c.stream(ctx, routeImport, req, progress, &v)
}

// Publish implements api.API.
func (c *Client) Publish(ctx context.Context, req api.PublishRequest) (api.PublishResult, error) {
	var v api.PublishResult
	return v, c.stream(ctx, routePublish, req, nil, &v)
}

// FetchModel implements api.API.
func (c *Client) FetchModel(ctx context.Context, req api.ModelFetchRequest, progress api.ProgressFunc) (api.ModelFetchResult, error) {
	var v api.ModelFetchResult
	return v, c.stream(ctx, routeFetchModel, req, progress, &v)
}

// Inspect implements api.API.
func (c *Client) Inspect(ctx context.Context, req api.InspectRequest) (api.InspectResult, error) {
	var v api.InspectResult
	return v, c.stream(ctx, routeInspect, req, nil, &v)
}

// ExportCAR implements api.API. req.Out must be absolute on the daemon's
// machine: the daemon writes the file.
func (c *Client) ExportCAR(ctx context.Context, req api.ExportRequest, progress api.ProgressFunc) (api.ExportResult, error) {
	var v api.ExportResult
	return v, c.stream(ctx, routeExportCAR, req, progress, &v)
}

// ImportCAR implements api.API. req.Path must be absolute on the daemon's
// machine: the daemon reads the file.
func (c *Client) ImportCAR(ctx context.Context, req api.CARImportRequest, progress api.ProgressFunc) (api.CARImportResult, error) {
	var v api.CARImportResult
	return v, c.stream(ctx, routeImportCAR, req, progress, &v)
}

func (c *Client) do(ctx context.Context, method, route string, body any) (*http.Response, error) {
	var r io.Reader
	if body == nil && method == http.MethodPost {
		body = struct{}{} // the API takes only JSON bodies on POST
	}
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+route, r)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", bearerPrefix+string(c.token))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API at %s: %w", c.base, err)
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, route string, body, out any) error {
	resp, err := c.do(ctx, method, route, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon API %s: %w", route, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	var v struct {
		Error *apiError `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStreamLine)).Decode(&v); err != nil || v.Error == nil {
		return fmt.Errorf("daemon API: %s", resp.Status)
	}
	return v.Error
}

func (c *Client) stream(ctx context.Context, route string, body any, progress api.ProgressFunc, out any) error {
	resp, err := c.do(ctx, http.MethodPost, route, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxStreamLine)
	for sc.Scan() {
		var l streamLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("daemon API %s: %w", route, err)
		}
		switch {
		case l.Error != nil:
			return l.Error
		case l.Result != nil:
			return json.Unmarshal(l.Result, out)
		case l.Progress != nil && progress != nil:
			progress(*l.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("daemon API %s: %w", route, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("daemon API: the daemon closed the stream without a result (did it stop?)")
}
