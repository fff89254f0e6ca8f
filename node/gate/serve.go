package gate

import (
	"context"
	"net/http"
	"strings"

	"github.com/allmende/allmende/policy"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Serving wraps the block store a protocol serves peers from (bitswap,
// bulk) so that a refused block is one this node does not have: bitswap
// answers DONT_HAVE, the bulk protocol "not found". Each refusal is counted
// on where.
func (g *Gate) Serving(bs blockstore.Blockstore, where policy.Surface) blockstore.Blockstore {
	if g == nil {
		return bs
	}
	return &servingBlockstore{Blockstore: bs, g: g, where: where}
}

type servingBlockstore struct {
	blockstore.Blockstore
	g     *Gate
	where policy.Surface
}

func (s *servingBlockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if s.g.CID(c, s.where) != nil {
		return false, nil
	}
	return s.Blockstore.Has(ctx, c)
}

func (s *servingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if s.g.CID(c, s.where) != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return s.Blockstore.Get(ctx, c)
}

func (s *servingBlockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if s.g.CID(c, s.where) != nil {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return s.Blockstore.GetSize(ctx, c)
}

// Gateway answers 410 Gone, as Kubo's gateway does, to a request for an
// /ipfs/ or /ipns/ content path a list blocks (the path, its root CID, or
// a held model's block the lists reach), and passes the rest to next.
func (g *Gate) Gateway(next http.Handler) http.Handler {
	if g == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.contentPath(r.URL.Path); err != nil {
			http.Error(w, "410 Gone: "+err.Error(), http.StatusGone)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// contentPath refuses a gateway content path /ipfs/<cid>[/<path>] or
// /ipns/<name>[/<path>].
func (g *Gate) contentPath(p string) error {
	if g.cfg.Blocker != nil {
		if m := g.cfg.Blocker.ContentPath(p); m.Blocked() {
			return g.refuse(m.Reason, policy.SurfaceGateway, m.Err(p))
		}
	}
	rest, ok := strings.CutPrefix(p, "/ipfs/")
	if !ok {
		return nil
	}
	first, _, _ := strings.Cut(rest, "/")
	c, err := cid.Decode(first)
	if err != nil {
		return nil // the gateway refuses it anyway
	}
	return g.CID(c, policy.SurfaceGateway)
}
