package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/allmende/allmende/store"
)

// Client talks to a running daemon's HTTP API.
type Client struct {
	base  string
	http  *http.Client
	token Secret
}

var _ API = (*Client)(nil)

// maxStreamLine bounds one line of a streamed answer.
const maxStreamLine = 1 << 20

// NewClient returns a client for the API at base (e.g. http://127.0.0.1:5080).
func NewClient(base string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{}}
}

// SetToken makes the client send token with every request: the daemon
// requires it (HOME/api.token, or api.token if configured).
func (c *Client) SetToken(token Secret) { c.token = token }

// ID implements API.
func (c *Client) ID(ctx context.Context) (IDInfo, error) {
	var v IDInfo
	return v, c.call(ctx, http.MethodGet, routeID, nil, &v)
}

// Connect implements API.
func (c *Client) Connect(ctx context.Context, addr string) error {
	return c.call(ctx, http.MethodPost, routeConnect, request{Addr: addr}, nil)
}

// Peers implements API.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var v []PeerInfo
	return v, c.call(ctx, http.MethodGet, routePeers, nil, &v)
}

// Add implements API. path must be absolute on the daemon's machine.
func (c *Client) Add(ctx context.Context, path string, progress ProgressFunc) (AddResult, error) {
	var v AddResult
	return v, c.stream(ctx, routeAdd, request{Path: path}, progress, &v)
}

// Fetch implements API. out must be absolute on the daemon's machine.
func (c *Client) Fetch(ctx context.Context, req FetchRequest, progress ProgressFunc) (FetchResult, error) {
	var v FetchResult
	return v, c.stream(ctx, routeFetch, request{Ref: req.Ref, Out: req.Out, Timeout: req.Timeout}, progress, &v)
}

// List implements API.
func (c *Client) List(ctx context.Context) ([]PinInfo, error) {
	var v []PinInfo
	return v, c.call(ctx, http.MethodGet, routeList, nil, &v)
}

// Remove implements API.
func (c *Client) Remove(ctx context.Context, ref string) error {
	return c.call(ctx, http.MethodPost, routeRemove, request{Ref: ref}, nil)
}

// GC implements API.
func (c *Client) GC(ctx context.Context) (store.GCResult, error) {
	var v store.GCResult
	return v, c.call(ctx, http.MethodPost, routeGC, request{}, &v)
}

// Stats implements API.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var v Stats
	return v, c.call(ctx, http.MethodGet, routeStats, nil, &v)
}

// Verify implements API.
func (c *Client) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	var v VerifyResult
	return v, c.call(ctx, http.MethodPost, routeVerify, request{Repair: req.Repair}, &v)
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

func (c *Client) stream(ctx context.Context, route string, body any, progress ProgressFunc, out any) error {
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
