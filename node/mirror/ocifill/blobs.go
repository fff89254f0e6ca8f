package ocifill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/mirror/growing"
	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/opencontainers/go-digest"
)

// fillPrefix starts the names of blob fill files in the fills folder.
const fillPrefix = "oci-"

// loadKept learns the blobs kept before a restart: file roots pinned as
// sha256:<hex> (as blob fills and `allmende fetch sha256:` pin them).
func (b *Backend) loadKept(ctx context.Context) {
	pins, err := b.cfg.Store.Pins(ctx)
	if err != nil {
		b.log.Warn("registry: pins unreadable; blobs kept before fill again", "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range pins {
		if sum, ok := strings.CutPrefix(p.Name, api.SHA256Prefix); ok && manifest.IsSHA256(sum) {
			b.kept[sum] = p.CID
		}
	}
}

// Blob implements oci.Backend: from the store, else from its fill (see
// fill), read as it arrives: the request waits for the first byte only,
// so a fill that fails at once is an error status, and a large blob does
// not keep its client waiting for headers. A blob whose size no manifest
// served here named is unknown: clients ask for the manifest first.
// Waiting on a fill takes one of the client's fill slots.
func (b *Backend) Blob(ctx context.Context, name string, d digest.Digest) (io.ReadSeekCloser, error) {
	if err := b.cfg.Gate.Name(name, policy.SurfaceOCI); err != nil {
		return nil, refused(err)
	}
	if err := b.allowed(name, d); err != nil {
		return nil, err
	}
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
	job := b.join(name, d, size)
	if job == nil { // kept since openHeld looked
		if r, err := b.openHeld(ctx, d); err == nil {
			release()
			return r, nil
		}
		// Evicted again: openHeld forgot it, so this join starts a fill.
		job = b.join(name, d, size)
	}
	if job == nil {
		release()
		return nil, fmt.Errorf("%s@%s: %w: kept and evicted at once; try again", name, d, oci.ErrBlobUnknown)
	}
	if _, err := job.WaitFor(ctx, 0); err != nil {
		b.leave(job)
		release()
		return nil, err
	}
	return job.Reader(ctx, func() { b.leave(job); release() }), nil
}

// blobJob is one blob being filled, and how many readers it has.
type blobJob struct {
	*growing.File
	readers int // guarded by Backend.mu
}

// join returns the fill of blob d as one more reader of it, starting it if
// none runs; nil if the blob was kept meanwhile.
func (b *Backend) join(name string, d digest.Digest, size int64) *blobJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.kept[d.Encoded()]; ok {
		return nil
	}
	if job, ok := b.jobs[d]; ok {
		job.readers++
		return job
	}
	job := &blobJob{File: growing.New(d.String(), size, b.dir, fillPrefix+d.Encoded()+".*"+home.FillPartSuffix), readers: 1}
	b.jobs[d] = job
	go b.run(name, d, job)
	return job
}

// leave drops a reader; the last one out removes a finished fill's file.
func (b *Backend) leave(job *blobJob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	job.readers--
	if job.readers == 0 && job.Done() {
		job.Remove()
	}
}

// run fills one blob for everyone waiting on it, then records the tags
// waiting for it.
func (b *Backend) run(name string, d digest.Digest, job *blobJob) {
	err := b.fill(name, d, job)
	if err != nil {
		b.log.Warn("registry: blob fill failed; the next request tries again", "name", name, "digest", d.String(), "err", err)
	}
	b.mu.Lock()
	delete(b.jobs, d)
	job.Finish(err)
	if job.readers == 0 {
		job.Remove()
	}
	b.mu.Unlock()
	if err == nil {
		b.complete(b.ctx)
	}
}

// removeParts deletes the files of blob fills a crash or kill cut short;
// no fill runs yet when the backend starts.
func (b *Backend) removeParts() {
	parts, _ := filepath.Glob(filepath.Join(b.dir, fillPrefix+"*"+home.FillPartSuffix))
	for _, p := range parts {
		if err := os.Remove(p); err == nil {
			b.log.Info("registry: removed an unfinished blob fill", "path", p)
		}
	}
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

// fill gets blob d for repository name into job (from peers by sha256,
// else the upstream), then imports and pins it. It runs under the
// backend's context, for every client waiting, and is aborted once no
// byte came for Config.StallTimeout.
func (b *Backend) fill(name string, d digest.Digest, job *blobJob) error {
	size := job.Size()
	release, err := b.cfg.Keeper.Reserve(b.ctx, uint64(size))
	if err != nil {
		return fmt.Errorf("fill %s: %w", d, err)
	}
	defer release()
	ctx, cancel := context.WithCancelCause(b.ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("blob %s: %w: no byte for %s (mirror.stall_timeout)", d, oci.ErrUpstreamTimeout, b.cfg.StallTimeout)
	watch := time.AfterFunc(b.cfg.StallTimeout, func() { cancel(stalled) })
	src, err := b.openSource(ctx, name, d, size)
	if err == nil {
		err = job.Download(src, func() { watch.Reset(b.cfg.StallTimeout) }, nil)
	}
	watch.Stop()
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx) // the stall, or the daemon stopping
	}
	if err != nil {
		return err
	}
	c, err := b.keep(b.ctx, name, d, size, job.Path())
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.kept[d.Encoded()] = c
	b.mu.Unlock()
	b.cfg.Keeper.Announce(b.ctx, c)
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

// keep imports a downloaded, checked blob from the file at path into the
// store and pins it as sha256:<hex>, hashing it again as it is read (the
// file may have changed on disk since it was checked).
func (b *Backend) keep(ctx context.Context, name string, d digest.Digest, size int64, path string) (cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("import blob %s: %w", d, err)
	}
	defer f.Close()
	unlock := b.cfg.Store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	h := sha256.New()
	nd, err := store.BuildFile(ctx, b.cfg.Store.LocalDAG(), io.TeeReader(f, h))
	if err != nil {
		return cid.Undef, fmt.Errorf("import blob %s: %w", d, err)
	}
	if got, ok := ufs.FileSize(nd); !ok || got != uint64(size) || hex.EncodeToString(h.Sum(nil)) != d.Encoded() {
		return cid.Undef, fmt.Errorf("import blob %s: %w: the file changed on disk after it was checked", d, oci.ErrMismatch)
	}
	if err := b.cfg.Keeper.KeepFile(ctx, nd.Cid(), name, api.SHA256Prefix+d.Encoded(), uint64(size)); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
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
