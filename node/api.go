package node

import (
	"context"
	"errors"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
)

var _ api.API = (*Node)(nil)

// apiError marks the errors of the packages below the API with the API's
// kinds where they reach it: a full disk (store.ErrNoSpace) is
// api.ErrNoSpace. The message stays as it is.
func apiError(err error) error {
	if errors.Is(err, store.ErrNoSpace) {
		return api.Mark(err, api.ErrNoSpace)
	}
	return err
}

// Add implements api.API: it imports the file or directory at path
// (absolute, on this machine), pins it and announces it.
func (n *Node) Add(ctx context.Context, path string, progress api.ProgressFunc) (api.AddResult, error) {
	res, err := n.addPath(ctx, path, progress)
	return res, apiError(err)
}

// Fetch implements api.API.
func (n *Node) Fetch(ctx context.Context, req api.FetchRequest, progress api.ProgressFunc) (api.FetchResult, error) {
	res, err := n.fetch.Fetch(ctx, req, progress)
	return res, apiError(err)
}

// Import implements api.API.
func (n *Node) Import(ctx context.Context, req api.ImportRequest, progress api.ProgressFunc) (api.ImportResult, error) {
	res, err := n.models.Import(ctx, req, progress)
	return res, apiError(err)
}

// FetchModel implements api.API.
func (n *Node) FetchModel(ctx context.Context, req api.ModelFetchRequest, progress api.ProgressFunc) (api.ModelFetchResult, error) {
	res, err := n.models.FetchModel(ctx, req, progress)
	return res, apiError(err)
}

// Verify implements api.API.
func (n *Node) Verify(ctx context.Context, req api.VerifyRequest) (api.VerifyResult, error) {
	res, err := n.verify(ctx, req)
	return res, apiError(err)
}

// ID implements api.API.
func (n *Node) ID(context.Context) (api.IDInfo, error) { return n.net.ID() }

// Connect implements api.API.
func (n *Node) Connect(ctx context.Context, addr string) error { return n.net.Connect(ctx, addr) }

// Peers implements api.API.
func (n *Node) Peers(context.Context) ([]api.PeerInfo, error) { return n.net.Peers(), nil }

// FindProviders implements api.API.
func (n *Node) FindProviders(ctx context.Context, ref string) ([]string, error) {
	return n.net.FindProviders(ctx, ref)
}

// Publish implements api.API.
func (n *Node) Publish(ctx context.Context, req api.PublishRequest) (api.PublishResult, error) {
	return n.models.Publish(ctx, req)
}

// Inspect implements api.API.
func (n *Node) Inspect(ctx context.Context, req api.InspectRequest) (api.InspectResult, error) {
	return n.models.Inspect(ctx, req)
}

// ExportCAR implements api.API.
func (n *Node) ExportCAR(ctx context.Context, req api.ExportRequest, progress api.ProgressFunc) (api.ExportResult, error) {
	res, err := n.models.ExportCAR(ctx, req, progress)
	return res, apiError(err)
}

// ImportCAR implements api.API: it also announces the roots it pinned.
func (n *Node) ImportCAR(ctx context.Context, req api.CARImportRequest, progress api.ProgressFunc) (api.CARImportResult, error) {
	res, err := n.models.ImportCAR(ctx, req, progress)
	if err != nil {
		return res, apiError(err)
	}
	for _, s := range res.Pinned {
		if c, err := cid.Decode(s); err == nil {
			n.routing.Announce(ctx, c)
		}
	}
	return res, nil
}
