package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// How the mirror keeps within mirror.quota.
//
// The quota bounds the bytes the store holds (blocks and copies, as
// store.DiskUsage counts them). Everything the mirror keeps for its clients
// is an entry of the mirror cache and can be evicted least recently used
// first: revisions filled or seeded on demand, single files a fill kept for
// a revision not (yet) complete, and the blocks held unpinned (pulled
// through the gateway, read from peers for a client). Imports, adds and
// mirror.pins are never evicted; they count against the quota all the same.
// The unpinned blocks are one entry: any eviction's garbage collection
// frees them all.
//
// Work that will make the store hold more reserves the bytes first: a fill
// its file's size as the upstream announces it, a seed its model's size, a
// block its length. A reservation counts as held until released, so
// parallel fills cannot together pass the quota. When the bytes do not fit
// even after evicting, a fill waits (at most reserveWait) for fills in
// progress to finish and for entries being pinned to settle (so that a
// fill right after another one can evict it), then fails with an error wrapping store.ErrNoSpace
// (507 Insufficient Storage); a block is passed on without being kept.
// Reservations also count against the free disk space (fsutil.CheckRoom),
// with the fill's download file, quota or not. Evicting runs a garbage
// collection, which waits for running imports and fetches (their pin
// lock); reservations wait with it.

// Quota limits.
const (
	// reserveWait bounds how long a fill waits for fills in progress to
	// make room under the quota or on the disk.
	reserveWait = 30 * time.Second
	// maxBlockHeadroom bounds the room an eviction for a block makes
	// beyond the block, so that a stream of gateway blocks against a full
	// quota runs one garbage collection per batch, not per block.
	maxBlockHeadroom = 64 << 20
	// blockHeadroomShare: the headroom is at most this fraction of the
	// quota (1/16).
	blockHeadroomShare = 16
	// dagOverheadShare: a fill reserves its file's size plus 1/1024 of it
	// for the DAG's inner nodes (about 1/25000 with 1 MiB leaves) ...
	dagOverheadShare = 1024
	// dagOverheadMin ... and at least this.
	dagOverheadMin = 4 << 10
)

// errQuotaFull is the end of a reservation that did not fit. It is a
// store.ErrNoSpace (507 to hub clients) that says which limit it is.
var errQuotaFull error = quotaFullError{}

type quotaFullError struct{}

func (quotaFullError) Error() string { return "mirror.quota is full" }

// Is makes errors.Is(err, store.ErrNoSpace) hold.
func (quotaFullError) Is(target error) bool { return target == store.ErrNoSpace }

// storeBytes is what importing a file of size bytes adds to the store at
// most.
func storeBytes(size uint64) uint64 {
	return size + max(size/dagOverheadShare, dagOverheadMin)
}

// quotaBackend is what the quota needs of the node; tests give a fake.
type quotaBackend interface {
	// usage is the bytes the store holds.
	usage(ctx context.Context) (uint64, error)
	// room fails with store.ErrNoSpace when the disk lacks need bytes.
	room(need uint64) error
	// protected reports whether mirror.pins names what e holds.
	protected(e keyedEntry) bool
	// drop unpins what e holds; the next collect frees it.
	drop(ctx context.Context, e keyedEntry) error
	// collect frees every block no pin holds and says how many bytes.
	collect(ctx context.Context) (uint64, error)
}

// mirrorQuota keeps the store within mirror.quota (see above).
type mirrorQuota struct {
	// limit is mirror.quota in bytes; 0 means no quota (the disk still
	// bounds reservations).
	limit uint64
	cache *mirrorCache
	be    quotaBackend
	log   *slog.Logger

	mu sync.Mutex
	// reserved and diskReserved are the bytes reservations hold against
	// the quota and the disk.
	reserved, diskReserved uint64
	// freed is closed, and replaced, whenever a reservation is released.
	freed chan struct{}
}

func newMirrorQuota(limit int64, cache *mirrorCache, be quotaBackend, log *slog.Logger) *mirrorQuota {
	return &mirrorQuota{limit: uint64(max(limit, 0)), cache: cache, be: be, log: log, freed: make(chan struct{})}
}

// reservation is room held for work in progress.
type reservation struct {
	q           *mirrorQuota
	mu          sync.Mutex
	quota, disk uint64
}

// releaseQuota gives back the quota part, once what it was for is in the
// store (where usage counts it) or failed. Nil-safe.
func (r *reservation) releaseQuota() {
	if r == nil {
		return
	}
	r.mu.Lock()
	n := r.quota
	r.quota = 0
	r.mu.Unlock()
	r.q.give(n, 0)
}

// release gives back all of it. Nil-safe and idempotent.
func (r *reservation) release() {
	if r == nil {
		return
	}
	r.mu.Lock()
	n, d := r.quota, r.disk
	r.quota, r.disk = 0, 0
	r.mu.Unlock()
	r.q.give(n, d)
}

func (q *mirrorQuota) give(n, d uint64) {
	if n == 0 && d == 0 {
		return
	}
	q.mu.Lock()
	q.reserved -= n
	q.diskReserved -= d
	close(q.freed)
	q.freed = make(chan struct{})
	q.mu.Unlock()
}

// held reports the bytes reservations hold against the quota.
func (q *mirrorQuota) held() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reserved
}

// reserve holds quota bytes against mirror.quota and disk bytes against
// the free disk space, evicting least recently used entries to make room
// and waiting up to wait for reservations in progress to be released.
func (q *mirrorQuota) reserve(ctx context.Context, quota, disk uint64, wait time.Duration) (*reservation, error) {
	if q.limit > 0 && quota > q.limit {
		return nil, fmt.Errorf("%w: %s needed, more than all of it (%s)", errQuotaFull, units.HumanBytes(quota), units.HumanBytes(q.limit))
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// An entry being pinned (a fill just kept, a model being recorded)
		// is not evicted until it settles; then it may be. Asked before
		// trying, so that one settling meanwhile wakes the wait below.
		settling, settled := q.cache.unsettled()
		q.mu.Lock()
		err := q.fitLocked(ctx, quota, disk, 0)
		if err == nil {
			q.reserved += quota
			q.diskReserved += disk
			q.mu.Unlock()
			return &reservation{q: q, quota: quota, disk: disk}, nil
		}
		wake, busy := q.freed, q.reserved+q.diskReserved > 0
		q.mu.Unlock()
		if !errors.Is(err, store.ErrNoSpace) || !(busy || settling) {
			return nil, err
		}
		select {
		case <-wake:
		case <-settled:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (while waiting for fills in progress)", err)
		case <-timer.C:
			return nil, fmt.Errorf("%w (after %s waiting for fills in progress; try again)", err, wait)
		}
	}
}

// reserveBlock holds room for a block of n bytes if there is some, or can
// be made by evicting; nil means the block is not to be kept. While
// another reservation holds the quota (an eviction waits for running
// imports and fetches, whose pin lock a garbage collection waits for),
// the block is passed on unkept rather than waiting.
func (q *mirrorQuota) reserveBlock(ctx context.Context, n uint64) *reservation {
	headroom := min(uint64(maxBlockHeadroom), q.limit/blockHeadroomShare)
	if !q.mu.TryLock() {
		return nil
	}
	defer q.mu.Unlock()
	if q.fitLocked(ctx, n, n, headroom) != nil {
		return nil
	}
	q.reserved += n
	q.diskReserved += n
	return &reservation{q: q, quota: n, disk: n}
}

// fitLocked checks that quota more bytes fit under the quota and disk
// more on the disk, evicting (to headroom bytes more than needed) if the
// quota is short; q.mu is held.
func (q *mirrorQuota) fitLocked(ctx context.Context, quota, disk, headroom uint64) error {
	if disk > 0 {
		if err := q.be.room(disk + q.diskReserved); err != nil {
			return err
		}
	}
	if q.limit == 0 || quota == 0 {
		return nil
	}
	short, err := q.shortLocked(ctx, quota)
	if err != nil || short == 0 {
		return err
	}
	if err := q.evictLocked(ctx, quota+headroom); err != nil {
		return err
	}
	if short, err = q.shortLocked(ctx, quota); err != nil || short == 0 {
		return err
	}
	return fmt.Errorf("%w: %s more would pass it (%s) by %s, and nothing more can be evicted",
		errQuotaFull, units.HumanBytes(quota), units.HumanBytes(q.limit), units.HumanBytes(short))
}

// shortLocked is how many bytes the quota lacks for need more.
func (q *mirrorQuota) shortLocked(ctx context.Context, need uint64) (uint64, error) {
	used, err := q.be.usage(ctx)
	if err != nil {
		return 0, fmt.Errorf("mirror quota: %w", err)
	}
	if total := used + q.reserved + need; total > q.limit {
		return total - q.limit, nil
	}
	return 0, nil
}

// enforce evicts until the store fits the quota (imports, a crash or a
// smaller quota may have left it over).
func (q *mirrorQuota) enforce(ctx context.Context) error {
	if q.limit == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.evictLocked(ctx, 0)
}

// evictLocked evicts entries, least recently used first, until need more
// bytes fit. Entries are unpinned until about enough is unpinned, then
// one garbage collection frees them; q.mu is held.
func (q *mirrorQuota) evictLocked(ctx context.Context, need uint64) error {
	short, err := q.shortLocked(ctx, need)
	if err != nil || short == 0 {
		return err
	}
	var pending uint64 // bytes unpinned since the last collection
	dirty := false
	for _, e := range q.cache.oldestFirst() {
		if e.Kind != cachedBlocks {
			if q.be.protected(e) {
				continue
			}
			if err := q.be.drop(ctx, e); err != nil {
				return fmt.Errorf("evict %s: %w", e.key, err)
			}
			q.cache.remove(e.key)
			q.logEvicted(e)
			pending += e.Size
			dirty = true
		}
		if e.Kind == cachedBlocks || pending >= short {
			freed, err := q.be.collect(ctx)
			if err != nil {
				return fmt.Errorf("mirror quota: %w", err)
			}
			pending, dirty = 0, false
			if freed > 0 {
				q.log.Info("mirror: freed unpinned blocks", "bytes", freed)
			}
			if short, err = q.shortLocked(ctx, need); err != nil || short == 0 {
				return err
			}
		}
	}
	if dirty {
		freed, err := q.be.collect(ctx)
		if err != nil {
			return fmt.Errorf("mirror quota: %w", err)
		}
		q.log.Info("mirror: freed unpinned blocks", "bytes", freed)
	}
	return nil
}

func (q *mirrorQuota) logEvicted(e keyedEntry) {
	switch e.Kind {
	case cachedModel:
		q.log.Info("mirror: evicted least recently used model", "name", e.Name, "rev", e.Revision, "bytes", e.Size)
	case cachedFile:
		q.log.Info("mirror: evicted least recently used file", "name", e.Name, "rev", e.Revision, "path", e.Path, "bytes", e.Size)
	}
}

// storeQuota is the quota's view of a node.
type storeQuota struct{ mr *Mirror }

func (b storeQuota) usage(ctx context.Context) (uint64, error) { return b.mr.store.DiskUsage(ctx) }

func (b storeQuota) room(need uint64) error { return fsutil.CheckRoom(b.mr.store.Dir(), need) }

func (b storeQuota) protected(e keyedEntry) bool {
	return b.mr.isMirrorPinned(e.Name, e.Revision, e.Commit, e.Root)
}

func (b storeQuota) collect(ctx context.Context) (uint64, error) {
	res, err := b.mr.store.GC(ctx)
	return res.Freed, err
}

// drop unpins a model (manifest, root and files, and forgets its name) or
// a single file. What is not pinned (a crash came first) is skipped.
func (b storeQuota) drop(ctx context.Context, e keyedEntry) error {
	c, err := cid.Decode(e.key)
	if err != nil {
		return nil // not a CID: nothing of it can be pinned
	}
	unpin := []string{e.key}
	if e.Kind == cachedModel {
		unpin = append(unpin, e.Root)
		if m, err := models.ReadManifest(ctx, b.mr.store.LocalDAG(), c); err == nil {
			unpin = append(unpin, fileCIDs(m)...)
			if err := b.mr.models.Index().Forget(c, m); err != nil {
				return err
			}
		}
	}
	for _, s := range unpin {
		pc, err := cid.Decode(s)
		if err != nil {
			continue
		}
		if err := b.mr.store.Unpin(ctx, pc); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// quotaBlockstore is the store's block store as the mirror's gateway and
// its reads from peers see it: a block fetched for a client is kept only
// if room for it can be reserved, and is then one of the unpinned blocks
// the quota may evict.
type quotaBlockstore struct {
	blockstore.Blockstore
	q *mirrorQuota
}

// Put keeps b if there is room; otherwise it keeps nothing and the block
// is only passed on.
func (s *quotaBlockstore) Put(ctx context.Context, b blocks.Block) error {
	if has, err := s.Blockstore.Has(ctx, b.Cid()); err == nil && has {
		return nil
	}
	r := s.q.reserveBlock(ctx, uint64(len(b.RawData())))
	if r == nil {
		return nil
	}
	defer r.release()
	if err := s.Blockstore.Put(ctx, b); err != nil {
		return err
	}
	s.q.cache.touchBlocks()
	return nil
}

// PutMany puts each block as Put does.
func (s *quotaBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

var _ blockstore.Blockstore = (*quotaBlockstore)(nil)
