package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// Quota test sizes.
const (
	// quotaRepoSize is the weights file of each repository.
	quotaRepoSize = 3 << 20
	// quotaRepos is how many repositories the classroom downloads from.
	quotaRepos = 8
	// quotaGatewaySize is the file a peer holds, pulled through /ipfs/.
	quotaGatewaySize = 4 << 20
	// quotaAddSize is a file added to the mirror by hand (kept as a copy
	// in the store).
	quotaAddSize = 2 << 20
	// quotaLimit is mirror.quota: a pinned model and an added file (5 MiB,
	// never evicted; a model imported in place holds no bytes in the
	// store) and room for about three repositories more.
	quotaLimit = 16 << 20
	// sampleEvery is how often the sampler measures the store.
	sampleEvery = 2 * time.Millisecond
)

// storeSampler measures a node's store in the background and keeps the
// largest figure seen.
type storeSampler struct {
	most, mostFill atomic.Int64
	stop           chan struct{}
	done           sync.WaitGroup
}

func sampleStore(n *harness.Node) *storeSampler {
	s := &storeSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			st, fill := n.StoreTotal(), n.FillBytes()
			if st > s.most.Load() {
				s.most.Store(st)
			}
			if fill > s.mostFill.Load() {
				s.mostFill.Store(fill)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *storeSampler) end() (most, mostFill int64) {
	close(s.stop)
	s.done.Wait()
	return s.most.Load(), s.mostFill.Load()
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestMirrorQuotaHolds: LAN clients download single files from eight
// repositories through a mirror whose quota holds about three of them,
// and pull a file of a peer through the gateway. The store stays within
// mirror.quota after every download and at every moment in between; what
// is evicted goes least recently used first; the imported model, the
// added file and the model in mirror.pins stay.
func TestMirrorQuotaHolds(t *testing.T) {
	hub := newFakeHub(t)
	repos := make([][]fakeFile, quotaRepos)
	for i := range repos {
		repos[i] = modelFiles(t, quotaRepoSize, uint64(100+i))
		hub.push(fmt.Sprintf("class/m%d", i), repos[i]...)
	}
	pinned := modelFiles(t, quotaRepoSize, 99)
	hub.push("class/pinned", pinned...)

	peer := harness.NewNode(t)
	peer.Start()
	gwFile := filepath.Join(t.TempDir(), "dataset.bin")
	harness.WriteRandomFile(t, gwFile, quotaGatewaySize, 7)
	gwCID := peer.Add(gwFile)

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+hub.URL,
		"ALLMENDE_MIRROR_PINS=class/pinned", fmt.Sprintf("ALLMENDE_MIRROR_QUOTA=%d", quotaLimit),
		"ALLMENDE_MIRROR_INTERVAL=300ms", "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)
	own := filepath.Join(t.TempDir(), "own")
	harness.WriteRandomFile(t, filepath.Join(own, "model.bin"), quotaRepoSize, 98)
	m.MustRun("import", own, "--name", "school/own")
	added := filepath.Join(t.TempDir(), "notes.bin")
	harness.WriteRandomFile(t, added, quotaAddSize, 97)
	addedCID := m.Add(added)
	waitPage(t, base, "class/pinned", true)
	m.MustRun("connect", peer.TCPAddr())

	sampler := sampleStore(m)
	check := func(what string) {
		t.Helper()
		st, fill := m.StoreTotal(), m.FillBytes()
		t.Logf("after %-40s the store holds %8d bytes (quota %d), fill downloads %d bytes", what+":", st, quotaLimit, fill)
		if st > quotaLimit {
			t.Errorf("after %s the store holds %d bytes, over the quota of %d", what, st, quotaLimit)
		}
	}
	check("the import, the added file and the pinned model")
	for i, files := range repos {
		name := fmt.Sprintf("class/m%d", i)
		code, _, body := harness.MustGet(t, base+"/"+name+"/resolve/main/model.bin")
		if code != http.StatusOK || sum256(body) != files[1].sha256() {
			t.Fatalf("%s: status %d, %d bytes", name, code, len(body))
		}
		if i%2 == 0 { // every other revision is completed, a model
			if code, _, body := harness.MustGet(t, base+"/"+name+"/resolve/main/config.json"); code != http.StatusOK || !bytes.Equal(body, files[0].data) {
				t.Fatalf("%s config.json: status %d", name, code)
			}
		}
		check(name + "/model.bin")
		if i == 2 || i == 5 {
			req, _ := http.NewRequest(http.MethodGet, base+"/ipfs/"+gwCID+"?format=car", nil)
			resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var car bytes.Buffer
			car.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || car.Len() < quotaGatewaySize {
				t.Fatalf("gateway: status %d, %d bytes", resp.StatusCode, car.Len())
			}
			check(fmt.Sprintf("a %d-byte CAR through the gateway", car.Len()))
		}
	}
	most, mostFill := sampler.end()
	t.Logf("sampled every %s: the store held at most %d bytes (quota %d); fill downloads at most %d bytes", sampleEvery, most, quotaLimit, mostFill)
	if most > quotaLimit {
		t.Errorf("the store held %d bytes at some moment, over the quota of %d", most, quotaLimit)
	}
	// Each repository was asked for once, in order: least recently used
	// means in that order.
	evicted := evictedRepos(m.Log())
	t.Logf("evicted, in order: %v", evicted)
	if len(evicted) == 0 {
		t.Error("nothing was evicted: the test did not exercise the quota")
	}
	for i := 1; i < len(evicted); i++ {
		if evicted[i] <= evicted[i-1] {
			t.Errorf("class/m%d was evicted after class/m%d, which was used later", evicted[i], evicted[i-1])
		}
	}

	// What the mirror must keep is still there and served.
	waitPage(t, base, "school/own", true)
	waitPage(t, base, "class/pinned", true)
	if code, _, body := harness.MustGet(t, base+"/school/own/resolve/main/model.bin"); code != http.StatusOK || len(body) != quotaRepoSize {
		t.Errorf("the imported model: status %d, %d bytes", code, len(body))
	}
	if code, _, body := harness.MustGet(t, base+"/class/pinned/resolve/main/model.bin"); code != http.StatusOK || sum256(body) != pinned[1].sha256() {
		t.Errorf("the pinned model: status %d, %d bytes", code, len(body))
	}
	if strings.Contains(m.Log(), "evicted least recently used model\" name=school/own") || strings.Contains(m.Log(), "evicted least recently used model\" name=class/pinned") {
		t.Errorf("a kept model was evicted:\n%s", m.Log())
	}
	if code, _, body := harness.MustGet(t, base+"/ipfs/"+addedCID+"?format=car"); code != http.StatusOK || len(body) < quotaAddSize {
		t.Errorf("the added file: status %d, %d bytes", code, len(body))
	}
	if !slices.Contains(pinnedRoots(t, m), addedCID) {
		t.Error("the added file is no longer pinned")
	}
	if _, err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	assertVerifies(t, m)
}

// TestMirrorParallelFillsQuota: fills started at once that together need
// more than mirror.quota do not make the store pass it: each waits for
// room, evicting what the others finished, and all get their file. A file
// bigger than the whole quota gets 507 at once.
func TestMirrorParallelFillsQuota(t *testing.T) {
	const (
		repos = 6
		size  = 4 << 20
		limit = 14 << 20 // three fills at a time
	)
	hub := newFakeHub(t)
	files := make([][]fakeFile, repos)
	for i := range files {
		files[i] = modelFiles(t, size, uint64(200+i))
		hub.push(fmt.Sprintf("class/p%d", i), files[i]...)
	}
	hub.push("class/huge", modelFiles(t, limit+1, 299)...)
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+hub.URL,
		fmt.Sprintf("ALLMENDE_MIRROR_QUOTA=%d", limit), "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)

	sampler := sampleStore(m)
	var wg sync.WaitGroup
	type answer struct {
		code int
		sum  string
		err  error
	}
	answers := make([]answer, repos)
	for i := range repos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := harness.Get(fmt.Sprintf("%s/class/p%d/resolve/main/model.bin", base, i), "", harness.DownloadTimeout)
			answers[i] = answer{code, sum256(body), err}
		}()
	}
	wg.Wait()
	most, mostFill := sampler.end()
	st := m.StoreTotal()
	t.Logf("%d fills of %d bytes at once under a quota of %d: the store held at most %d bytes (%d at the end); fill downloads at most %d bytes",
		repos, size, limit, most, st, mostFill)
	for i, a := range answers {
		if a.code != http.StatusOK || a.err != nil || a.sum != files[i][1].sha256() {
			t.Errorf("fill %d: status %d, err %v, right bytes %v", i, a.code, a.err, a.sum == files[i][1].sha256())
		}
	}
	if most > limit {
		t.Errorf("the store held %d bytes, over the quota of %d", most, limit)
	}

	code, hdr, body := harness.MustGet(t, base+"/class/huge/resolve/main/model.bin")
	t.Logf("a file bigger than the quota: %d %s", code, bytes.TrimSpace(body))
	if code != http.StatusInsufficientStorage || !strings.Contains(string(body), "mirror.quota") || hdr.Get("X-Repo-Commit") == "" {
		t.Errorf("status %d, X-Repo-Commit %q: %s; want 507 naming mirror.quota", code, hdr.Get("X-Repo-Commit"), body)
	}
	if n := hub.count(hub.resolves, "class/huge"); n != 0 {
		t.Errorf("the upstream was asked for it %d times", n)
	}
}

// TestMirrorFillsPerClient: one client address gets at most
// mirror.fills_per_client fills at once; one more is answered 429 with
// Retry-After, while other clients and, afterwards, the same client are
// served.
func TestMirrorFillsPerClient(t *testing.T) {
	hub := newFakeHub(t)
	var want [4][]fakeFile
	for i := range want {
		want[i] = modelFiles(t, 256<<10, uint64(300+i))
		hub.push(fmt.Sprintf("class/c%d", i), want[i]...)
	}
	release := make(chan struct{})
	var held atomic.Int64
	hub.mu.Lock()
	hub.gate = func(ctx context.Context, path string, off int64) {
		held.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	hub.mu.Unlock()
	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+hub.URL,
		"ALLMENDE_MIRROR_FILLS_PER_CLIENT=2", "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)
	url := func(i int) string { return fmt.Sprintf("%s/class/c%d/resolve/main/model.bin", base, i) }

	type answer struct {
		code int
		body []byte
	}
	running := make(chan answer, 3)
	for i := range 2 {
		go func() { c, b, _ := harness.Get(url(i), "", harness.DownloadTimeout); running <- answer{c, b} }()
	}
	harness.WaitUntil(t, "two fills held at the upstream", 30*time.Second, pollEvery, func() bool { return held.Load() == 2 })

	code, hdr, body := harness.MustGet(t, url(2))
	t.Logf("a third fill from the same client: %d, Retry-After %q: %s", code, hdr.Get("Retry-After"), bytes.TrimSpace(body))
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 429 with Retry-After", code, hdr.Get("Retry-After"))
	}
	if n := hub.count(hub.resolves, "class/c2"); n != 0 {
		t.Errorf("the refused fill reached the upstream %d times", n)
	}

	// Another client (127.0.0.2) is not held back by the first.
	other := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	go func() {
		resp, err := other.Get(url(3))
		if err != nil {
			running <- answer{}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		running <- answer{resp.StatusCode, b.Bytes()}
	}()
	harness.WaitUntil(t, "the other client's fill at the upstream", 30*time.Second, pollEvery, func() bool { return held.Load() == 3 })
	close(release)
	for range 3 {
		if a := <-running; a.code != http.StatusOK {
			t.Errorf("a fill within the bound: status %d", a.code)
		}
	}
	if code, _, body := harness.MustGet(t, url(2)); code != http.StatusOK || !bytes.Equal(body, want[2][1].data) {
		t.Errorf("the refused file once the client's fills ended: status %d", code)
	}
	if v := harness.Metric(t, base, "allmende_mirror_busy_total"); v != 1 {
		t.Errorf("allmende_mirror_busy_total = %v, want 1", v)
	}
}

// evictedRepos lists the class/m<i> the log says were evicted, in order.
func evictedRepos(log string) []int {
	var out []int
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, "evicted least recently used")
		if !ok {
			continue
		}
		var i int
		if _, after, ok := strings.Cut(rest, "name=class/m"); ok {
			if _, err := fmt.Sscanf(after, "%d", &i); err == nil {
				out = append(out, i)
			}
		}
	}
	return out
}
