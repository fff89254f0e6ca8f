package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	homedir "github.com/allmende/allmende/node/home"

	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// fakeQuotaStore is a store for the quota: pinned entries, unpinned bytes
// and a disk of a given size.
type fakeQuotaStore struct {
	mu        sync.Mutex
	pinned    map[string]uint64 // cache key → bytes it holds
	unpinned  uint64
	disk      uint64 // 0: unbounded
	protect   map[string]bool
	dropped   []string
	collected int
	// asked, if set, gets a value (if it has room) at each usage call.
	asked chan struct{}
}

func newFakeQuotaStore() *fakeQuotaStore {
	return &fakeQuotaStore{pinned: map[string]uint64{}, protect: map[string]bool{}}
}

func (f *fakeQuotaStore) usage(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked != nil {
		select {
		case f.asked <- struct{}{}:
		default:
		}
	}
	return f.usageLocked(), nil
}

func (f *fakeQuotaStore) usageLocked() uint64 {
	total := f.unpinned
	for _, n := range f.pinned {
		total += n
	}
	return total
}

func (f *fakeQuotaStore) room(need uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disk > 0 && f.usageLocked()+need > f.disk {
		return fmt.Errorf("%w: fake disk", store.ErrNoSpace)
	}
	return nil
}

func (f *fakeQuotaStore) protected(e keyedEntry) bool { return f.protect[e.key] }

func (f *fakeQuotaStore) drop(_ context.Context, e keyedEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unpinned += f.pinned[e.key]
	delete(f.pinned, e.key)
	f.dropped = append(f.dropped, e.key)
	return nil
}

func (f *fakeQuotaStore) collect(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	freed := f.unpinned
	f.unpinned = 0
	f.collected++
	return freed, nil
}

// keep records key as kept (pinned, in the cache) with n bytes.
func (f *fakeQuotaStore) keep(t *testing.T, c *mirrorCache, key string, n uint64) {
	t.Helper()
	settle, err := c.add(key, cacheEntry{Kind: cachedFile, Name: "org/" + key, Size: n})
	if err != nil {
		t.Error(err)
		return
	}
	defer settle()
	f.mu.Lock()
	f.pinned[key] = n
	f.mu.Unlock()
}

func newTestQuota(t *testing.T, limit int64) (*mirrorQuota, *fakeQuotaStore, *mirrorCache) {
	t.Helper()
	c, err := openMirrorCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeQuotaStore()
	return newMirrorQuota(limit, c, f, slog.New(slog.DiscardHandler)), f, c
}

// TestQuotaEvicts: a reservation that does not fit evicts least recently
// used entries, never protected ones, and fails when nothing more can go.
func TestQuotaEvicts(t *testing.T) {
	tests := []struct {
		name      string
		kept      []string // oldest first, 10 bytes each
		protected []string
		unpinned  uint64
		need      uint64
		ok        bool
		dropped   []string
	}{
		{"fits without evicting", []string{"a", "b"}, nil, 0, 20, true, nil},
		{"evicts the least recently used first, no more than needed", []string{"a", "b", "c"}, nil, 0, 15, true, []string{"a"}},
		{"skips what mirror.pins names", []string{"a", "b", "c"}, []string{"a"}, 0, 15, true, []string{"b"}},
		{"unpinned blocks go before any entry", []string{"a", "b"}, nil, 15, 20, true, nil},
		{"nothing evictable left: refused", []string{"a", "b"}, []string{"a", "b"}, 0, 25, false, nil},
		{"more than the whole quota: refused at once", []string{"a"}, nil, 0, 41, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, f, c := newTestQuota(t, 40)
			for i, k := range tt.kept {
				f.keep(t, c, k, 10)
				c.mu.Lock() // distinct, ordered stamps
				e := c.ents[k]
				e.Used = int64(100 + i)
				c.ents[k] = e
				c.latest = e.Used
				c.mu.Unlock()
			}
			for _, k := range tt.protected {
				f.protect[k] = true
			}
			f.unpinned = tt.unpinned
			r, err := q.reserve(context.Background(), tt.need, 0, 0)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, store.ErrNoSpace) {
				t.Errorf("err = %v, want store.ErrNoSpace", err)
			}
			if fmt.Sprint(f.dropped) != fmt.Sprint(tt.dropped) && !(len(f.dropped) == 0 && len(tt.dropped) == 0) {
				t.Errorf("evicted %v, want %v", f.dropped, tt.dropped)
			}
			used, _ := f.usage(context.Background())
			if used+q.held() > 40 {
				t.Errorf("store %d + reserved %d passes the quota of 40", used, q.held())
			}
			r.release()
			if q.held() != 0 {
				t.Errorf("%d bytes still reserved after release", q.held())
			}
		})
	}
}

// TestQuotaKeepsUnsettledEntries: an entry whose pins are being made is
// not evicted, or the pin made next would be lost to the quota.
func TestQuotaKeepsUnsettledEntries(t *testing.T) {
	q, f, c := newTestQuota(t, 40)
	settle, err := c.add("new", cacheEntry{Kind: cachedFile, Size: 30})
	if err != nil {
		t.Fatal(err)
	}
	f.pinned["new"] = 30
	if _, err := q.reserve(context.Background(), 20, 0, 0); !errors.Is(err, store.ErrNoSpace) {
		t.Errorf("err = %v, want store.ErrNoSpace", err)
	}
	if len(f.dropped) != 0 {
		t.Errorf("evicted %v while it was being pinned", f.dropped)
	}
	settle()
	r, err := q.reserve(context.Background(), 20, 0, 0)
	if err != nil || fmt.Sprint(f.dropped) != "[new]" {
		t.Errorf("once settled: err %v, evicted %v", err, f.dropped)
	}
	r.release()
}

// TestQuotaWaitsForSettlingEntries: a fill right after another one, while
// the entry of the first is still being pinned and nothing else holds
// room, waits for it to settle and evicts it, rather than failing at once.
func TestQuotaWaitsForSettlingEntries(t *testing.T) {
	q, f, c := newTestQuota(t, 40)
	settle, err := c.add("first", cacheEntry{Kind: cachedFile, Size: 30})
	if err != nil {
		t.Fatal(err)
	}
	f.pinned["first"] = 30
	f.mu.Lock()
	f.asked = make(chan struct{}, 1)
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		r, err := q.reserve(context.Background(), 30, 0, time.Minute)
		r.release()
		done <- err
	}()
	<-f.asked // the fill tried, and found nothing it may evict
	settle()
	if err := <-done; err != nil {
		t.Errorf("the next fill got %v once the first settled", err)
	}
	if fmt.Sprint(f.dropped) != "[first]" {
		t.Errorf("evicted %v, want [first]", f.dropped)
	}
}

// TestQuotaParallelFillsNeverOvershoot: many fills at once, each
// reserving, importing and becoming an evictable entry, never make the
// store hold more than the quota.
func TestQuotaParallelFillsNeverOvershoot(t *testing.T) {
	const limit, size, fills = 100, 30, 24
	q, f, c := newTestQuota(t, limit)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		most uint64
		errs []error
	)
	for i := range fills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := q.reserve(context.Background(), size, 0, 10*time.Second)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			f.keep(t, c, fmt.Sprintf("f%d", i), size) // the import lands
			used, _ := f.usage(context.Background())
			mu.Lock()
			most = max(most, used)
			mu.Unlock()
			r.release()
		}()
	}
	wg.Wait()
	t.Logf("%d fills of %d bytes under a quota of %d: the store held at most %d bytes", fills, size, limit, most)
	if len(errs) > 0 {
		t.Errorf("%d fills refused, first: %v", len(errs), errs[0])
	}
	if most > limit {
		t.Errorf("the store held %d bytes, over the quota of %d", most, limit)
	}
}

// TestQuotaWaitsForFillsInProgress: room held by a fill in progress is
// waited for (up to the wait), not refused at once.
func TestQuotaWaitsForFillsInProgress(t *testing.T) {
	q, _, _ := newTestQuota(t, 100)
	first, err := q.reserve(context.Background(), 80, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.reserve(context.Background(), 50, 0, 0); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("without waiting: err = %v, want store.ErrNoSpace", err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := q.reserve(context.Background(), 50, 0, time.Minute)
		r.release()
		done <- err
	}()
	first.release()
	if err := <-done; err != nil {
		t.Errorf("the waiting fill got %v after the first released its room", err)
	}
}

// TestQuotaDisk: reservations count against the free disk too, with or
// without a quota.
func TestQuotaDisk(t *testing.T) {
	q, f, _ := newTestQuota(t, 0)
	f.disk = 100
	r, err := q.reserve(context.Background(), 0, 60, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.reserve(context.Background(), 0, 60, 0); !errors.Is(err, store.ErrNoSpace) {
		t.Errorf("a second 60 bytes on a 100-byte disk: err = %v, want store.ErrNoSpace", err)
	}
	r.release()
	if _, err := q.reserve(context.Background(), 0, 60, 0); err != nil {
		t.Errorf("after release: %v", err)
	}
}

// TestQuotaBlockstore: a block fetched for a client is kept while it fits
// and passed on unkept when it does not.
func TestQuotaBlockstore(t *testing.T) {
	q, f, c := newTestQuota(t, 100)
	base := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	bs := &quotaBlockstore{Blockstore: base, q: q}
	ctx := context.Background()
	small := blocks.NewBlock(make([]byte, 40))
	if err := bs.Put(ctx, small); err != nil {
		t.Fatal(err)
	}
	if has, _ := base.Has(ctx, small.Cid()); !has {
		t.Error("a block that fits was not kept")
	}
	if _, ok := c.ents[blocksKey]; !ok {
		t.Error("kept blocks are not in the mirror cache")
	}
	f.keep(t, c, "pinned", 80)
	f.protect["pinned"] = true
	big := blocks.NewBlock(make([]byte, 41))
	if err := bs.Put(ctx, big); err != nil {
		t.Fatalf("a block that does not fit: %v, want it passed on", err)
	}
	if has, _ := base.Has(ctx, big.Cid()); has {
		t.Error("a block past the quota was kept")
	}
	if q.held() != 0 {
		t.Errorf("%d bytes left reserved", q.held())
	}
}

// TestMirrorCacheFormats: the first format (manifest CID → last use) is
// read as models; entries survive a reopen.
func TestMirrorCacheFormats(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(homedir.Dir(home).MirrorCache(), []byte(`{"bafyold":1700000000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openMirrorCache(home)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.ents["bafyold"]; e.Kind != cachedModel || e.Used != 1700000000*1000 {
		t.Fatalf("old entry read as %+v", e)
	}
	settle, err := c.add("bafyfile", cacheEntry{Kind: cachedFile, Name: "org/m", Path: "w.bin", Size: 7})
	if err != nil {
		t.Fatal(err)
	}
	settle()
	c2, err := openMirrorCache(home)
	if err != nil {
		t.Fatal(err)
	}
	order := c2.oldestFirst()
	if len(order) != 3 || order[0].key != blocksKey || order[1].key != "bafyold" || order[2].key != "bafyfile" || order[2].Path != "w.bin" {
		t.Errorf("reopened cache lists %+v", order)
	}
}

// TestClientFills: each client address gets its own bound; the mirror's
// own work is not bounded.
func TestClientFills(t *testing.T) {
	fills := newClientFills(2)
	a := withClient(context.Background(), netip.MustParseAddr("10.0.0.1"))
	b := withClient(context.Background(), netip.MustParseAddr("10.0.0.2"))
	r1, err1 := fills.acquire(a)
	_, err2 := fills.acquire(a)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := fills.acquire(a); !errors.Is(err, hfapi.ErrBusy) {
		t.Errorf("a third fill: err = %v, want hfapi.ErrBusy", err)
	}
	if _, err := fills.acquire(b); err != nil {
		t.Errorf("another client: %v", err)
	}
	r1()
	r1() // a second release changes nothing
	if _, err := fills.acquire(a); err != nil {
		t.Errorf("after a release: %v", err)
	}
	if _, err := fills.acquire(a); !errors.Is(err, hfapi.ErrBusy) {
		t.Errorf("a double release freed two slots: err = %v", err)
	}
	for range 10 {
		if _, err := fills.acquire(context.Background()); err != nil {
			t.Fatalf("housekeeping bounded: %v", err)
		}
	}
	if n := fills.refusals(); n != 2 {
		t.Errorf("%d refusals counted, want 2", n)
	}
}

// TestGatewayFills: a client's gateway requests for content not held
// count against its fills; content held does not.
func TestGatewayFills(t *testing.T) {
	fills := newClientFills(1)
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	gw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("block") != "" {
			entered <- struct{}{}
			<-release
		}
	})
	holds := func(r *http.Request) bool { return r.URL.Query().Get("held") != "" }
	h := gatewayFills(fills, holds, gw)
	serve := func(query string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/ipfs/x?"+query, nil)
		req = req.WithContext(withClient(req.Context(), netip.MustParseAddr("10.0.0.9")))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	done := make(chan int)
	go func() { done <- serve("block=1").Code }()
	<-entered
	if w := serve(""); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("a second fill: %d, Retry-After %q; want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if w := serve("held=1"); w.Code != http.StatusOK {
		t.Errorf("content held: %d", w.Code)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("the first fill: %d", code)
	}
	if w := serve(""); w.Code != http.StatusOK {
		t.Errorf("after the first ended: %d", w.Code)
	}
}
