// Package pace paces bytes through rate limiters shared by everything that
// moves them one way: blocks this node serves to peers (bitswap and bulk)
// and HTTP answers of the mirror (bandwidth.up), blocks a fetch receives
// (bandwidth.down). A nil limiter means no limit.
package pace

import (
	"context"
	"io"
	"net/http"

	"github.com/allmende/allmende/protocol"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/time/rate"
)

// rateBurst is the most bytes a limiter lets through at once; writes are
// split to fit it.
const rateBurst = 1 << 20

// NewLimiter returns a limiter for bytesPerSecond, or nil for no limit.
func NewLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), rateBurst)
}

// Wait blocks until lim allows n bytes (in burst-sized steps). A nil
// limiter never waits.
func Wait(ctx context.Context, lim *rate.Limiter, n int) error {
	for lim != nil && n > 0 {
		step := min(n, rateBurst)
		if err := lim.WaitN(ctx, step); err != nil {
			return err
		}
		n -= step
	}
	return nil
}

// pacedBlockstore paces the blocks read from it through lim: handed to the
// bitswap and bulk servers, it caps what this node sends to peers.
type pacedBlockstore struct {
	blockstore.Blockstore
	lim *rate.Limiter
}

// Reads wraps bs so reads wait for lim; a nil lim returns bs itself.
func Reads(bs blockstore.Blockstore, lim *rate.Limiter) blockstore.Blockstore {
	if lim == nil {
		return bs
	}
	return &pacedBlockstore{Blockstore: bs, lim: lim}
}

// Get implements blockstore.Blockstore.
func (p *pacedBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := p.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := Wait(ctx, p.lim, len(b.RawData())); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadBlock implements protocol.BlockReader, paced like Get.
func (p *pacedBlockstore) ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	var data []byte
	if r, ok := p.Blockstore.(protocol.BlockReader); ok {
		var err error
		if data, err = r.ReadBlock(ctx, c, buf); err != nil {
			return nil, err
		}
	} else {
		b, err := p.Blockstore.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		data = b.RawData()
	}
	if err := Wait(ctx, p.lim, len(data)); err != nil {
		return nil, err
	}
	return data, nil
}

// Uploads shares lim among all responses of next.
func Uploads(lim *rate.Limiter, next http.Handler) http.Handler {
	if lim == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&limitedResponse{ResponseWriter: w, ctx: r.Context(), lim: lim}, r)
	})
}

// limitedResponse paces a response's body through a limiter.
type limitedResponse struct {
	http.ResponseWriter
	ctx context.Context
	lim *rate.Limiter
}

func (l *limitedResponse) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), rateBurst)]
		if err := Wait(l.ctx, l.lim, len(chunk)); err != nil {
			return written, err
		}
		n, err := l.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[len(chunk):]
	}
	return written, nil
}

// ReadFrom keeps io.Copy from bypassing Write.
func (l *limitedResponse) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{l}, r)
}

// Flush passes flushes on, for streamed answers.
func (l *limitedResponse) Flush() {
	if f, ok := l.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
