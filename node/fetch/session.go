package fetch

import (
	"context"
	"sync/atomic"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Session reads nodes through the network DAG for one piece of work (a
// manifest, a header), in one bitswap session, and counts the bytes of the
// blocks that came from peers: those the store did not hold when asked
// for. It implements ipld.NodeGetter.
type Session struct {
	ng       ipld.NodeGetter
	local    blockstore.Blockstore
	received atomic.Uint64
}

var _ ipld.NodeGetter = (*Session)(nil)

// NewSession starts a session that lives as long as ctx.
func (e *Engine) NewSession(ctx context.Context) *Session {
	return &Session{ng: merkledag.NewSession(ctx, e.cfg.Net), local: e.cfg.Store.Blockstore()}
}

// Received is the bytes of the blocks this session got from peers.
func (s *Session) Received() uint64 { return s.received.Load() }

// Get implements ipld.NodeGetter.
func (s *Session) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	held, _ := s.local.Has(ctx, c)
	nd, err := s.ng.Get(ctx, c)
	if err == nil && !held {
		s.received.Add(uint64(len(nd.RawData())))
	}
	return nd, err
}

// GetMany implements ipld.NodeGetter.
func (s *Session) GetMany(ctx context.Context, cids []cid.Cid) <-chan *ipld.NodeOption {
	held := make(map[cid.Cid]bool, len(cids))
	for _, c := range cids {
		held[c], _ = s.local.Has(ctx, c)
	}
	in := s.ng.GetMany(ctx, cids)
	out := make(chan *ipld.NodeOption, len(cids))
	go func() {
		defer close(out)
		for opt := range in {
			if opt.Err == nil && !held[opt.Node.Cid()] {
				s.received.Add(uint64(len(opt.Node.RawData())))
			}
			out <- opt
		}
	}()
	return out
}

// getCounted gets c through the network DAG, adding its bytes to received
// if it was not held.
func (e *Engine) getCounted(ctx context.Context, c cid.Cid, received *atomic.Uint64) (ipld.Node, error) {
	held, _ := e.cfg.Store.Blockstore().Has(ctx, c)
	nd, err := e.cfg.Net.Get(ctx, c)
	if err == nil && !held {
		received.Add(uint64(len(nd.RawData())))
	}
	return nd, err
}
