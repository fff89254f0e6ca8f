package ocifill

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/opencontainers/go-digest"
)

// loadKept learns the blobs kept before a restart: file roots pinned as
// sha256:<hex> (as blob fills and `allmende fetch sha256:` pin them).
func (b *Backend) loadKept(ctx context.Context) error {
	pins, err := b.cfg.Store.Pins(ctx)
	if err != nil {
		b.log.Warn("registry: pins unreadable; blobs kept before fill again", "err", err)
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range pins {
		if sum, ok := strings.CutPrefix(p.Name, api.SHA256Prefix); ok && manifest.IsSHA256(sum) {
			b.kept[sum] = p.CID
		}
	}
	return nil
}

// Blob implements oci.Backend: from the store, else filled (see fill).
// A blob whose size no manifest served here named is unknown: clients
// always ask for the manifest first.
func (b *Backend) Blob(ctx context.Context, name string, d digest.Digest) (io.ReadSeekCloser, error) {
	if r, err := b.openHeld(ctx, d); err == nil {
		return r, nil
	}
	size, ok := b.sizes.Get(d)
	if !ok {
		return nil, fmt.Errorf("%s@%s: %w (no manifest served here names it)", name, d, oci.ErrBlobUnknown)
	}
	release, err := b.cfg.Keeper.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ch := b.flights.DoChan(d.Encoded(), func() (any, error) {
		return nil, b.fill(name, d, size)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.openHeld(ctx, d)
}

// openHeld opens blob d if the store holds it: as a blob kept (pinned as
// sha256:<hex>), or as a file of a model held.
func (b *Backend) openHeld(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, error) {
	sum := d.Encoded()
	b.mu.Lock()
	c, ok := b.kept[sum]
	b.mu.Unlock()
	if ok {
		if pinned, err := b.cfg.Store.IsPinned(ctx, c); err != nil || !pinned {
			b.mu.Lock()
			delete(b.kept, sum)
			b.mu.Unlock()
			ok = false
		}
	}
	if !ok {
		f, found := b.cfg.Models.Index().BySHA256(sum)
		if !found {
			return nil, oci.ErrBlobUnknown
		}
		var err error
		if c, err = cid.Decode(f.CID); err != nil {
			return nil, err
		}
		if has, err := b.cfg.Store.Blockstore().Has(ctx, c); err != nil || !has {
			return nil, oci.ErrBlobUnknown
		}
	}
	b.cfg.Keeper.Touch(c.String())
	if f, err := b.cfg.Store.OpenWholeFile(ctx, c); err == nil {
		return f, nil
	}
	return ufs.Open(ctx, b.cfg.Net, c)
}

// fill gets blob d of size bytes for repository name (from peers by
// sha256, else the upstream), checks it, imports and pins it, then
// records the tags waiting for it. It runs under the backend's context,
// for every client waiting, and is aborted once no byte came for
// Config.StallTimeout.
func (b *Backend) fill(name string, d digest.Digest, size int64) error {
	if _, err := b.openHeld(b.ctx, d); err == nil {
		return nil // kept while this flight was being set up
	}
	release, err := b.cfg.Keeper.Reserve(b.ctx, uint64(size))
	if err != nil {
		return fmt.Errorf("fill %s: %w", d, err)
	}
	defer release()
	ctx, cancel := context.WithCancelCause(b.ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("blob %s: %w: no byte for %s (mirror.stall_timeout)", d, oci.ErrUpstreamTimeout, b.cfg.StallTimeout)
	watch := time.AfterFunc(b.cfg.StallTimeout, func() { cancel(stalled) })
	defer watch.Stop()
	src, err := b.openSource(ctx, name, d, size)
	if err != nil {
		return err
	}
	defer src.Close()
	c, err := b.keep(ctx, name, d, size, &progressReader{r: src, progress: func() { watch.Reset(b.cfg.StallTimeout) }})
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		b.log.Warn("registry: blob fill failed; the next request tries again", "name", name, "digest", d.String(), "err", err)
		return err
	}
	b.mu.Lock()
	b.kept[d.Encoded()] = c
	b.mu.Unlock()
	b.cfg.Keeper.Announce(b.ctx, c)
	b.complete(b.ctx)
	return nil
}

// openSource opens blob d's bytes, checked against its size and digest as
// they are read: from peers that hold a file with its sha256, else from
// the upstream.
func (b *Backend) openSource(ctx context.Context, name string, d digest.Digest, size int64) (io.ReadCloser, error) {
	findCtx, cancel := context.WithTimeout(ctx, swarmLookupTimeout)
	r, err := b.cfg.Models.OpenSHA256(findCtx, ctx, b.cfg.Net, d.Encoded(), uint64(size), oci.ErrMismatch)
	cancel()
	if err == nil {
		b.SwarmBlobs.Add(1)
		return r, nil
	}
	if b.client == nil {
		return nil, fmt.Errorf("%s@%s: %w: not found among peers", name, d, oci.ErrBlobUnknown)
	}
	b.UpstreamBlobs.Add(1)
	return b.client.Blob(ctx, name, d, size)
}

// keep imports a checked blob into the store and pins it as
// sha256:<hex>. The reader fails at EOF if the bytes are not the blob's:
// then nothing is pinned, and the blocks stored are freed by the next
// garbage collection.
func (b *Backend) keep(ctx context.Context, name string, d digest.Digest, size int64, r io.Reader) (cid.Cid, error) {
	unlock := b.cfg.Store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	nd, err := store.BuildFile(ctx, b.cfg.Store.LocalDAG(), r)
	if err != nil {
		return cid.Undef, fmt.Errorf("import blob %s: %w", d, err)
	}
	if got, ok := ufs.FileSize(nd); !ok || got != uint64(size) {
		return cid.Undef, fmt.Errorf("import blob %s: %w: %d bytes, want %d", d, oci.ErrMismatch, got, size)
	}
	if err := b.cfg.Keeper.KeepFile(ctx, nd.Cid(), name, api.SHA256Prefix+d.Encoded(), uint64(size)); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// progressReader calls progress after each read that brought bytes.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p *progressReader) Read(buf []byte) (int, error) {
	n, err := p.r.Read(buf)
	if n > 0 {
		p.progress()
	}
	return n, err
}

// readFile reads a small file of a model whole through dag and checks it
// against its size and sha256.
func readFile(ctx context.Context, dag ipld.DAGService, f manifest.File) ([]byte, error) {
	c, err := cid.Decode(f.CID)
	if err != nil {
		return nil, err
	}
	r, err := ufs.Open(ctx, dag, c)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, int64(f.Size)+1))
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) != f.Size || digest.SHA256.FromBytes(data).Encoded() != f.SHA256 {
		return nil, fmt.Errorf("%s: %w", f.Path, oci.ErrMismatch)
	}
	return data, nil
}
