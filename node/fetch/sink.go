package fetch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// errBadFileDAG means a file's DAG contradicts itself: a node's declared
// sizes do not add up, or data would land outside the file.
var errBadFileDAG = errors.New("inconsistent UnixFS file DAG")

// blockSink receives every block of a fetch once it has been verified
// against its CID. put is called from several goroutines at once, and after
// it returns the caller drops the block, so a fetch holds no block data.
type blockSink interface {
	put(nd ipld.Node) error
}

// span is where a node's content goes in the output file.
type span struct {
	off, size uint64
}

// fileSink writes the leaves of one UnixFS file straight into the fetch's
// partial output file at their offsets, as they arrive in any order. This
// spares a fetch the export pass (reading every block back, hashing it
// again and copying it) that would otherwise follow the transfer.
//
// Offsets come from the parents' block sizes. Each node's declared size is
// checked against what its parent declared for it, and each leaf's length
// against its span, so a file assembled here is byte for byte what reading
// the DAG in order gives.
//
// With a store (st), leaves that came over the bulk protocol are not copied
// into the block store: putHeld records them as held in the output file, so
// the fetched file's bytes are on disk once and the node seeds from it.
type fileSink struct {
	f    *os.File
	size uint64
	st   *store.Store

	// wmu serialises writes to f. The kernel serialises them anyway (the
	// inode lock); waiting here parks a goroutine where waiting there
	// spins a CPU (rwsem_spin_on_owner, 6% of a fetch's CPU).
	wmu sync.Mutex
	mu  sync.Mutex
	// pending holds the spans of nodes whose parent has arrived but which
	// have not been written. A CID may occur at several offsets.
	pending map[cid.Cid][]span
	written uint64
	// held are the leaves recorded as held in the file, to be pointed at
	// its final name when it is renamed.
	held []store.FileRef
	// check, if set, vets the complete file before it appears.
	check func(*os.File) error
	// reused is set when the partial file was left by an earlier fetch;
	// the store may record leaves as held in it besides those in held.
	reused bool
	// refsIn is the file the held leaves are recorded in: the partial
	// file, and its final name (or refsAt) once finish moved them.
	refsIn string
	// kick, if set, asks for the references recorded so far to be made
	// durable (refSyncer).
	kick func()
	// refsAt, if set, is where finish points the held leaves instead of
	// its destination: the final name of a file inside a directory that
	// is renamed whole afterwards (dirSink).
	refsAt string
}

// createFileSink opens the partial output file at path, sized for a file of
// size bytes whose DAG starts at root. A partial file an interrupted fetch
// left there is reused, since the store may record leaves as held in it;
// every byte is written again anyway. st, if not nil, is the store putHeld
// records leaves in.
func createFileSink(path string, root cid.Cid, size uint64, st *store.Store) (*fileSink, error) {
	fi, err := os.Lstat(path)
	if err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(path); err != nil {
			return nil, fmt.Errorf("remove stale partial output: %w", err)
		}
	}
	reused := err == nil && fi.Mode().IsRegular()
	need := size
	if reused {
		need -= min(need, allocated(fi))
	}
	if err := fsutil.CheckRoom(filepath.Dir(path), need); err != nil {
		return nil, err
	}
	// O_NOFOLLOW: a symlink planted here since the Lstat above must not
	// redirect the write.
	f, err := fsutil.OpenNoFollow(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := preallocate(f, int64(size)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("reserve %d bytes for the output: %w", size, err)
	}
	return &fileSink{f: f, size: size, st: st, reused: reused, refsIn: path, pending: map[cid.Cid][]span{root: {{0, size}}}}, nil
}

// fileParts splits a file node into its inline data and its children's
// declared sizes.
func fileParts(nd ipld.Node) (data []byte, sizes []uint64, err error) {
	switch n := nd.(type) {
	case *merkledag.RawNode:
		return n.RawData(), nil, nil
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(n.Data())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w: %v", nd.Cid(), errBadFileDAG, err)
		}
		if fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw {
			return nil, nil, fmt.Errorf("%s: %w: a %s node inside a file", nd.Cid(), errBadFileDAG, fsn.Type())
		}
		sizes = fsn.BlockSizes()
		if len(sizes) != len(n.Links()) {
			return nil, nil, fmt.Errorf("%s: %w: %d links, %d block sizes", nd.Cid(), errBadFileDAG, len(n.Links()), len(sizes))
		}
		return fsn.Data(), sizes, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: not a UnixFS node", nd.Cid(), errBadFileDAG)
}

// holdsLeaves reports whether leaves are kept in the file alone.
func (s *fileSink) holdsLeaves() bool { return s.st != nil }

// put writes nd's inline data at every span its parents gave it and
// registers its children's spans.
func (s *fileSink) put(nd ipld.Node) error {
	_, err := s.write(nd)
	return err
}

// putHeld writes the raw leaf nd like put and records it as held in the
// file instead of storing a copy. A leaf the file has no place for (a
// repeat) goes to the block store. The sink must have a store.
func (s *fileSink) putHeld(ctx context.Context, nd ipld.Node) error {
	spans, err := s.write(nd)
	if err != nil {
		return err
	}
	if len(spans) == 0 || len(nd.Links()) > 0 {
		return s.st.Blockstore().Put(ctx, nd)
	}
	ref := store.FileRef{CID: nd.Cid(), Offset: spans[0].off, Size: len(nd.RawData()), Sum: store.Checksum(nd.RawData())}
	if err := s.st.PutFileRefs(ctx, s.f.Name(), []store.FileRef{ref}); err != nil {
		return err
	}
	if s.kick != nil {
		s.kick()
	}
	s.mu.Lock()
	s.held = append(s.held, ref)
	s.mu.Unlock()
	return nil
}

// write is put, returning the spans nd's data was written at.
func (s *fileSink) write(nd ipld.Node) ([]span, error) {
	data, sizes, err := fileParts(nd)
	if err != nil {
		return nil, err
	}
	total := uint64(len(data))
	for _, sz := range sizes {
		total += sz
	}
	s.mu.Lock()
	spans := s.pending[nd.Cid()]
	delete(s.pending, nd.Cid())
	for _, sp := range spans {
		if sp.size != total || sp.off+sp.size > s.size {
			s.mu.Unlock()
			return nil, fmt.Errorf("%s: %w: %d bytes where its parent declared %d", nd.Cid(), errBadFileDAG, total, sp.size)
		}
		off := sp.off + uint64(len(data))
		for i, l := range nd.Links() {
			s.pending[l.Cid] = append(s.pending[l.Cid], span{off, sizes[i]})
			off += sizes[i]
		}
		s.written += uint64(len(data))
	}
	s.mu.Unlock()
	if len(data) == 0 {
		return spans, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, sp := range spans {
		if _, err := s.f.WriteAt(data, int64(sp.off)); err != nil {
			return nil, fmt.Errorf("write output: %w", err)
		}
		startWriteback(s.f, int64(sp.off), len(data))
	}
	return spans, nil
}

// finish checks that every byte of the file was written, syncs it and
// renames it to dest.
func (s *fileSink) finish(ctx context.Context, dest string) error {
	s.mu.Lock()
	left, written := len(s.pending), s.written
	s.mu.Unlock()
	if left > 0 || written != s.size {
		return fmt.Errorf("%w: wrote %d of %d bytes, %d nodes missing", errBadFileDAG, written, s.size, left)
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if s.check != nil {
		if err := s.check(s.f); err != nil {
			return err
		}
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%w: %s", store.ErrExists, dest)
	}
	// Point the held leaves at the final name first: until the rename a
	// read of one fails cleanly (not found), while the other order could
	// leave them pointing at a name that is gone.
	to := cmp.Or(s.refsAt, dest)
	if err := s.moveRefs(ctx, to); err != nil {
		return err
	}
	s.refsIn = to
	if err := os.Rename(s.f.Name(), dest); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dest))
}

// moveRefs points the leaves held in the partial file at dest.
func (s *fileSink) moveRefs(ctx context.Context, dest string) error {
	switch {
	case s.st == nil:
		return nil
	case s.reused:
		// An earlier fetch may have recorded leaves this one only read.
		_, err := s.st.MoveFileRefs(ctx, s.f.Name(), dest)
		return err
	default:
		return s.st.PutFileRefs(ctx, dest, s.held)
	}
}

// abort closes the partial file. It removes it unless keep is set and the
// store may record leaves as held in it (this fetch put some there, or an
// earlier one did): then a later fetch resumes from it. A removed file's
// references go with it.
func (s *fileSink) abort(keep bool) {
	s.f.Close()
	if keep && (len(s.held) > 0 || s.reused) {
		return
	}
	os.Remove(s.f.Name())
	if s.st == nil || (len(s.held) == 0 && !s.reused) {
		return
	}
	var cids []cid.Cid // nil when reused: every reference to the file
	if !s.reused {
		for _, r := range s.held {
			cids = append(cids, r.CID)
		}
	}
	// A reference left behind reads as not found, and verify reports it.
	_ = s.st.ForgetFileRefs(context.Background(), s.refsIn, cids)
}

// fetchInto fetches root's DAG, adding the bytes that came from peers to
// received. It writes the content to out while the blocks arrive, whole
// or not at all, and returns direct = true: a UnixFS file through a
// fileSink, a directory through a dirSink. A directory with more than
// maxDirSinkFiles files is fetched into the store and direct is false:
// the caller exports it. want, if not nil, is the file root must be
// (ErrHashMismatch otherwise).
func (e *Engine) fetchInto(ctx context.Context, root cid.Cid, out string, timeout time.Duration, progress api.ProgressFunc, want *FileWant, received *atomic.Uint64) (direct bool, err error) {
	var st *store.Store
	if !e.cfg.Copy {
		st = e.cfg.Store
	}
	var file *fileSink
	var dir *dirSink
	var kick func()
	if st != nil {
		syncer := startRefSyncer(ctx, st)
		kick = syncer.kick
		defer func() {
			if serr := syncer.stop(context.WithoutCancel(ctx)); err == nil && serr != nil {
				err = fmt.Errorf("fetch %s: %w", root, serr)
			}
		}()
	}
	sk := &sinks{file: func(rootNd ipld.Node) (blockSink, error) {
		size, ok := ufs.FileSize(rootNd)
		if want != nil && (!ok || size != want.Size) {
			return nil, fmt.Errorf("fetch %s: %w: not a file of %d bytes (is a file: %v, size %d)", root, ErrWrongSize, want.Size, ok, size)
		}
		if !ok {
			return nil, nil
		}
		s, err := createFileSink(store.PartialPath(out), root, size, st)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", root, err)
		}
		if want != nil {
			s.check = func(f *os.File) error { return checkSHA256(f, out, root, want.SHA256, want.Size) }
		}
		s.kick = kick
		file = s
		return s, nil
	}}
	if want == nil {
		sk.dir = func(ctx context.Context) (blockSink, error) {
			d, err := newDirSink(ctx, e.cfg.Store.LocalDAG(), st, root, out, kick)
			switch {
			case errors.Is(err, errTooManyFiles):
				return nil, nil
			case err != nil:
				return nil, fmt.Errorf("fetch %s: %w", root, err)
			}
			dir = d
			return d, nil
		}
	}
	err = e.fetchDAGInto(ctx, root, timeout, progress, sk, received)
	var sink interface {
		finish(ctx context.Context, dest string) error
		abort(keep bool)
	}
	switch {
	case file != nil:
		sink = file
	case dir != nil:
		sink = dir
	default:
		return false, err
	}
	if err == nil {
		if err = sink.finish(ctx, out); err != nil {
			err = fmt.Errorf("fetch %s: %w", root, err)
		}
	}
	if err != nil {
		// A fetch that ran out of peers or time resumes from the partial
		// output; one that met a bad DAG or a full disk starts afresh.
		sink.abort(!errors.Is(err, errBadFileDAG) && !errors.Is(err, store.ErrNoSpace) &&
			!errors.Is(err, store.ErrExists) && !errors.Is(err, ErrHashMismatch) && !errors.Is(err, store.ErrBadInput))
		return true, err
	}
	return true, nil
}

// checkSHA256 reads f from the start and checks its size and sha256, for
// the file that will be at dest with content c.
func checkSHA256(f *os.File, dest string, c cid.Cid, sum string, size uint64) error {
	h := sha256.New()
	written, err := io.Copy(h, io.NewSectionReader(f, 0, int64(size)+1))
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum || uint64(written) != size {
		return fmt.Errorf("write %s: %w: content of %s has sha256 %s (%d bytes), want %s (%d bytes)",
			dest, ErrHashMismatch, c, got, written, sum, size)
	}
	return nil
}

// refSyncGap is the least time between two syncs of one fetch's held
// references: a crash loses at most the leaves of about this long (8 MB
// at 400 MB/s), and a room of fetches on one disk syncs at most 50 times a
// second each.
const refSyncGap = 20 * time.Millisecond

// refSyncer makes the leaves a fetch records as held durable in the
// background (store.SyncFileRefs), one sync at a time, starting again
// whenever more were recorded meanwhile: the store's log keeps small
// writes in memory until a sync, so without it a daemon killed mid-fetch
// forgets what it had; with it a crash loses at most the leaves recorded
// during the last sync, and the fetch never waits for one.
type refSyncer struct {
	st    *store.Store
	kicks chan struct{}
	done  chan struct{}
}

// startRefSyncer starts syncing st's references when kicked.
func startRefSyncer(ctx context.Context, st *store.Store) *refSyncer {
	r := &refSyncer{st: st, kicks: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for range r.kicks {
			// A failed sync leaves the references as durable as before;
			// the next kick, or stop, tries again.
			_ = r.st.SyncFileRefs(ctx)
			time.Sleep(refSyncGap)
		}
	}()
	return r
}

// kick asks for a sync; it never blocks.
func (r *refSyncer) kick() {
	select {
	case r.kicks <- struct{}{}:
	default:
	}
}

// stop ends the syncer once no more kicks come, and syncs what was
// recorded last (the references under the output's final names).
func (r *refSyncer) stop(ctx context.Context) error {
	close(r.kicks)
	<-r.done
	return r.st.SyncFileRefs(ctx)
}
