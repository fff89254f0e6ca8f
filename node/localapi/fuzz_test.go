package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/node/api"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// parsingAPI answers api.API calls by running the same input checks as a Node,
// without a store or network, so the handler and the parsers behind it can
// be fuzzed. Methods not listed here are not reached by the fuzzed routes.
type parsingAPI struct{ api.API }

func (parsingAPI) ID(context.Context) (api.IDInfo, error) { return api.IDInfo{ID: "self"}, nil }

func (parsingAPI) Connect(_ context.Context, addr string) error {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return api.ErrBadInput
	}
	if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
		return api.ErrBadInput
	}
	return nil
}

func (parsingAPI) Add(_ context.Context, path string, p api.ProgressFunc) (api.AddResult, error) {
	if !filepath.IsAbs(path) {
		return api.AddResult{}, api.ErrBadInput
	}
	p(api.Progress{Done: 1, Total: 1})
	return api.AddResult{Name: filepath.Base(path)}, nil
}

func (parsingAPI) Fetch(_ context.Context, req api.FetchRequest, _ api.ProgressFunc) (api.FetchResult, error) {
	c, err := api.ParseCID(req.Ref)
	if err != nil {
		return api.FetchResult{}, err
	}
	if !filepath.IsAbs(req.Out) {
		return api.FetchResult{}, api.ErrBadInput
	}
	return api.FetchResult{CID: c.String(), Out: req.Out}, nil
}

func (parsingAPI) Remove(_ context.Context, ref string) error {
	_, err := api.ParseCID(ref)
	return err
}

func (parsingAPI) GC(context.Context, api.GCRequest) (api.GCResult, error) {
	return api.GCResult{}, nil
}

func (parsingAPI) Verify(context.Context, api.VerifyRequest) (api.VerifyResult, error) {
	return api.VerifyResult{}, nil
}

// fuzzRoutes are the POST routes whose bodies the fuzzer writes.
var fuzzRoutes = []string{routeConnect, routeRemove, routeGC, routeVerify, routeAdd, routeFetch}

func FuzzAPIRequest(f *testing.F) {
	for i := range fuzzRoutes {
		for _, body := range []string{
			`{}`, `{"ref":"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am","out":"/tmp/x"}`,
			`{"addr":"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}`,
			`{"path":"relative"}`, `{"timeout":-1}`, `{"repair":true}`, `[`, `null`, `{"ref":1}`, "",
		} {
			f.Add(uint8(i), []byte(body))
		}
	}
	h := NewHandler(parsingAPI{}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := httptest.NewRequest(http.MethodPost, fuzzRoutes[int(route)%len(fuzzRoutes)], bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusInsufficientStorage, http.StatusInternalServerError:
		default:
			t.Fatalf("status %d for %q", w.Code, body)
		}
		sc := bufio.NewScanner(w.Body)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("answer line %q is not JSON", sc.Bytes())
			}
		}
	})
}

// bodyTransport answers every request with one status and body.
type bodyTransport struct {
	status int
	body   []byte
}

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: b.status, Status: http.StatusText(b.status), Request: r,
		Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b.body)),
	}, nil
}

// FuzzClientAnswer feeds the client arbitrary daemon answers: it must
// return an error or a result, never panic or hang.
func FuzzClientAnswer(f *testing.F) {
	for _, s := range []string{
		`{"progress":{"done":1,"total":2}}` + "\n" + `{"result":{"cid":"x"}}`,
		`{"error":{"message":"m","kind":"bad_input"}}`, `{"result":`, "\n\n\n", `{"progress":null}`,
		strings.Repeat("x", 1<<10),
	} {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	f.Fuzz(func(t *testing.T, ok bool, body []byte) {
		status := http.StatusOK
		if !ok {
			status = http.StatusBadRequest
		}
		c := NewClient("http://127.0.0.1:1")
		c.http = &http.Client{Transport: bodyTransport{status: status, body: body}}
		ctx := context.Background()
		c.Fetch(ctx, api.FetchRequest{Ref: "r", Out: "/o"}, func(api.Progress) {})
		c.List(ctx)
		c.Verify(ctx, api.VerifyRequest{})
	})
}

// A CID the fuzz seeds rely on must stay valid.
var _ = cid.MustParse("bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am")
