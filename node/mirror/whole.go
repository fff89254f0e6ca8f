package mirror

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
)

// maxWholeFileVerifies is how many files the mirror re-verifies at once in
// the background (see wholeFiles); more requests for unverified files are
// served through the block store meanwhile and retried on a later request.
const maxWholeFileVerifies = 1

// wholeFiles finds, for the mirror, files held whole on disk (a no-copy
// import, a fetched file) so their bytes go out with sendfile, without
// passing through the block store. A file whose current state has not been
// verified (a fetched file, one touched since its import) is served through
// the block store, which re-hashes every leaf, and re-verified once in the
// background; once it matches, later requests get it whole.
type wholeFiles struct {
	mr *Mirror
	// served counts files handed out whole.
	served atomic.Uint64

	mu        sync.Mutex
	verifying map[cid.Cid]bool
}

func newWholeFiles(mr *Mirror) *wholeFiles {
	return &wholeFiles{mr: mr, verifying: map[cid.Cid]bool{}}
}

// open returns the file that holds root whole, of size bytes and unchanged
// since verified, or nil if root must be read through the block store.
func (w *wholeFiles) open(ctx context.Context, root cid.Cid, size uint64) *os.File {
	f, err := w.mr.store.OpenWholeFile(ctx, root)
	switch {
	case err == nil:
		if fi, err := f.Stat(); err == nil && uint64(fi.Size()) == size {
			w.served.Add(1)
			return f
		}
		f.Close()
	case errors.Is(err, store.ErrUnverified):
		w.verifyLater(root)
	case !errors.Is(err, store.ErrNotWhole):
		w.mr.log.Debug("mirror: cannot serve file whole", "cid", root.String(), "err", err)
	}
	return nil
}

// verifyLater re-verifies the file that holds root in the background,
// unless it is being verified or maxWholeFileVerifies are running.
func (w *wholeFiles) verifyLater(root cid.Cid) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.verifying[root] || len(w.verifying) >= maxWholeFileVerifies {
		return
	}
	w.verifying[root] = true
	go func() {
		defer func() {
			w.mu.Lock()
			delete(w.verifying, root)
			w.mu.Unlock()
		}()
		if err := w.mr.store.VerifyWholeFile(w.mr.ctx, root); err != nil {
			w.mr.log.Info("mirror: file not served whole; it goes through the block store", "cid", root.String(), "err", err)
			return
		}
		w.mr.log.Debug("mirror: file verified, served whole from now on", "cid", root.String())
	}()
}
