package localapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/allmende/allmende/node/api"
)

// failingAPI fails every call it implements with err.
type failingAPI struct {
	api.API
	err error
}

func (f failingAPI) Fetch(context.Context, api.FetchRequest, api.ProgressFunc) (api.FetchResult, error) {
	return api.FetchResult{}, f.err
}

func (f failingAPI) Remove(context.Context, string) error { return f.err }

// TestErrorKindsCrossTheAPI: an error of each kind comes out of the client
// as an error errors.Is still sees as that kind, on plain and streamed
// routes, with its message.
func TestErrorKindsCrossTheAPI(t *testing.T) {
	for _, kind := range []error{api.ErrBadInput, api.ErrNotFound, api.ErrNoSpace} {
		err := api.Mark(fmt.Errorf("fetch x: it failed"), kind)
		srv := httptest.NewServer(NewHandler(failingAPI{err: err}, slog.New(slog.DiscardHandler)))
		c := NewClient(srv.URL)
		ctx := context.Background()
		_, ferr := c.Fetch(ctx, api.FetchRequest{Ref: "x", Out: "/x"}, nil)
		rerr := c.Remove(ctx, "x")
		srv.Close()
		for name, got := range map[string]error{"streamed": ferr, "plain": rerr} {
			if !errors.Is(got, kind) || got.Error() != err.Error() {
				t.Errorf("%v over a %s route: got %v", kind, name, got)
			}
			for _, other := range []error{api.ErrBadInput, api.ErrNotFound, api.ErrNoSpace} {
				if other != kind && errors.Is(got, other) {
					t.Errorf("%v over a %s route also counts as %v", kind, name, other)
				}
			}
		}
	}
}
