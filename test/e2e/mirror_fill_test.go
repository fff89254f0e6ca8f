package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/test/harness"
)

// Mirror fill test parameters.
const (
	// fakeCommit is the commit id the fake upstream answers with.
	fakeCommit = "0123456789abcdef0123456789abcdef01234567"
	// fakeChunk is how many bytes the fake upstream writes at a time.
	fakeChunk = 64 << 10
	// fillStall is mirror.stall_timeout in the stall test.
	fillStall = 2 * time.Second
	// stallSlack is how much later than fillStall a stalled client may
	// hear of it (the reader's wake-up, the test's own polling).
	stallSlack   = 3 * time.Second
	fastFillSize = 8<<20 + 77
	slowFillSize = 64<<20 + 77
)

// fakeFile is one file of the fake upstream's repository.
type fakeFile struct {
	path string
	data []byte
	lfs  bool
}

// gateFunc decides, before the fake upstream writes the bytes of path from
// off on, whether to go on; it may block. ctx ends with the request.
type gateFunc func(ctx context.Context, path string, off int64)

// fakeUpstream is a Hugging Face-compatible server in the test process,
// on 127.0.0.1, whose downloads a test can slow, hold and stall.
type fakeUpstream struct {
	*httptest.Server
	name  string
	files []fakeFile

	mu   sync.Mutex
	gate gateFunc

	// sent counts file bytes written; resolves counts file requests.
	sent, resolves atomic.Int64
}

func newFakeUpstream(t *testing.T, name string, files ...fakeFile) *fakeUpstream {
	u := &fakeUpstream{name: name, files: files}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/models/"+name+"/revision/{rev}", u.info)
	mux.HandleFunc("GET /"+name+"/resolve/{rev}/{path...}", u.resolve)
	u.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		u.setGate(nil)
		u.CloseClientConnections()
		u.Close()
	})
	return u
}

func (u *fakeUpstream) setGate(g gateFunc) {
	u.mu.Lock()
	u.gate = g
	u.mu.Unlock()
}

func (u *fakeUpstream) pass(ctx context.Context, path string, off int64) {
	u.mu.Lock()
	g := u.gate
	u.mu.Unlock()
	if g != nil {
		g(ctx, path, off)
	}
}

func (f fakeFile) sha256() string {
	sum := sha256.Sum256(f.data)
	return hex.EncodeToString(sum[:])
}

func (u *fakeUpstream) info(w http.ResponseWriter, r *http.Request) {
	type lfs struct {
		SHA256 string `json:"sha256"`
		Size   int    `json:"size"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		Size      int    `json:"size"`
		BlobID    string `json:"blobId"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	var sib []sibling
	for _, f := range u.files {
		s := sibling{RFilename: f.path, Size: len(f.data), BlobID: manifest.GitBlobSHA1(f.data)}
		if f.lfs {
			s.LFS = &lfs{SHA256: f.sha256(), Size: len(f.data)}
		}
		sib = append(sib, s)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"sha": fakeCommit, "id": u.name, "siblings": sib})
}

func (u *fakeUpstream) resolve(w http.ResponseWriter, r *http.Request) {
	u.resolves.Add(1)
	var f *fakeFile
	for i := range u.files {
		if u.files[i].path == r.PathValue("path") {
			f = &u.files[i]
		}
	}
	if f == nil {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	u.pass(r.Context(), f.path, -1) // before the response headers
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	w.Header().Set("X-Repo-Commit", fakeCommit)
	w.WriteHeader(http.StatusOK)
	for off := 0; off < len(f.data); off += fakeChunk {
		u.pass(r.Context(), f.path, int64(off))
		if r.Context().Err() != nil {
			return
		}
		end := min(off+fakeChunk, len(f.data))
		if _, err := w.Write(f.data[off:end]); err != nil {
			return
		}
		u.sent.Add(int64(end - off))
		w.(http.Flusher).Flush()
	}
}

// holdAt returns a gate that, for path, stops before byte at (a multiple
// of fakeChunk) until the request ends or release is closed. at < 0 holds
// before the response headers.
func holdAt(path string, at int64, release <-chan struct{}) gateFunc {
	return func(ctx context.Context, p string, off int64) {
		if p != path || off != at && !(at < 0 && off < 0) {
			return
		}
		select {
		case <-ctx.Done():
		case <-release:
		}
	}
}

// fillRepo is the fake repository both fill tests serve: a small git file
// and LFS weights of size bytes.
func fillRepo(t *testing.T, size int64) []fakeFile {
	dir := t.TempDir()
	harness.WriteRandomFile(t, filepath.Join(dir, "w"), size, 88)
	weights, err := os.ReadFile(filepath.Join(dir, "w"))
	if err != nil {
		t.Fatal(err)
	}
	return []fakeFile{
		{path: "config.json", data: []byte(`{"model_type":"llama","hidden_size":64}`)},
		{path: "model.bin", data: weights, lfs: true},
	}
}

// partBytes is the size of n's largest unfinished fill file.
func partBytes(n *harness.Node) int64 {
	var most int64
	for _, p := range n.FillParts() {
		if info, err := os.Stat(p); err == nil {
			most = max(most, info.Size())
		}
	}
	return most
}

// TestMirrorFillStall: an upstream that sends half a file and hangs, or
// hangs before its answer, is cut off after mirror.stall_timeout and asked
// again (with Range from where it stopped); when it stays silent for
// mirror.upstream_retries more attempts (1 here), clients waiting on the
// fill get an error (a cut-off body, or 504 before any byte), nothing is
// kept, and the next request fills again.
func TestMirrorFillStall(t *testing.T) {
	files := fillRepo(t, 4<<20)
	weights := files[1]
	up := newFakeUpstream(t, "school/stall", files...)
	release := make(chan struct{})
	half := int64(len(weights.data)/2) / fakeChunk * fakeChunk
	up.setGate(holdAt("model.bin", half, release))

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.URL,
		"ALLMENDE_MIRROR_STALL_TIMEOUT="+fillStall.String(), "ALLMENDE_MIRROR_UPSTREAM_RETRIES=1", "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	url := m.MirrorURL(t) + "/school/stall/resolve/main/model.bin"
	// The fill gives up after the first attempt's stall and one more.
	const givesUp = 2*fillStall + stallSlack

	type answer struct {
		code int
		body []byte
		err  error
		took time.Duration
	}
	first, late := make(chan answer, 1), make(chan answer, 1)
	go func() {
		start := time.Now()
		c, b, err := harness.Get(url, "", harness.DownloadTimeout)
		first <- answer{c, b, err, time.Since(start)}
	}()
	harness.WaitUntil(t, "half the file at the upstream", 30*time.Second, pollEvery, func() bool { return up.sent.Load() >= half })
	stalledAt := time.Now()
	// A second client joins the stalled fill, asking for bytes past the
	// half: it waits on the same download.
	go func() {
		start := time.Now()
		c, b, err := harness.Get(url, fmt.Sprintf("bytes=%d-", half+1000), harness.DownloadTimeout)
		d := time.Since(start)
		late <- answer{c, b, err, d}
	}()
	for _, w := range []struct {
		name string
		ch   chan answer
	}{{"first client", first}, {"client that joined the stall", late}} {
		a := <-w.ch
		since := time.Since(stalledAt)
		t.Logf("%s: status %d, %d bytes, err %v, %s after the upstream stalled", w.name, a.code, len(a.body), a.err, since.Round(time.Millisecond))
		if a.err == nil {
			t.Errorf("%s: a stalled fill ended without an error (status %d, %d bytes)", w.name, a.code, len(a.body))
		}
		if since > givesUp {
			t.Errorf("%s: heard of the stall after %s, want within %s", w.name, since, givesUp)
		}
	}

	// An upstream that hangs before it answers at all: 504 after the stall
	// timeout, before any byte.
	up.setGate(holdAt("config.json", -1, release))
	start := time.Now()
	code, body, _ := harness.Get(m.MirrorURL(t)+"/school/stall/resolve/main/config.json", "", harness.DownloadTimeout)
	t.Logf("upstream silent before its headers: status %d after %s: %s", code, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(body))
	if code != http.StatusGatewayTimeout || !bytes.Contains(body, []byte("stall")) {
		t.Errorf("status %d (%s), want 504 naming the stall", code, body)
	}
	if d := time.Since(start); d > givesUp {
		t.Errorf("504 after %s, want within %s", d, givesUp)
	}

	// The upstream recovers: the next requests fill again, whole and right.
	close(release)
	up.setGate(nil)
	for _, f := range files {
		code, body, err := harness.Get(m.MirrorURL(t)+"/school/stall/resolve/main/"+f.path, "", harness.DownloadTimeout)
		if code != http.StatusOK || err != nil || !bytes.Equal(body, f.data) {
			t.Errorf("%s after the upstream recovered: status %d, %d bytes, err %v", f.path, code, len(body), err)
		}
	}
	if !pageLists(t, m.MirrorURL(t), "school/stall", true) {
		t.Fatalf("the filled revision never became a model:\n%s", m.Log())
	}
	if p := m.FillParts(); len(p) != 0 {
		t.Errorf("unfinished fill files left: %v", p)
	}
	t.Logf("upstream file requests: %d", up.resolves.Load())
}

// fillKillPoint is where the crash test kills the mirror: the upstream
// holds the weights before byte at (a multiple of fakeChunk), and the
// mirror dies once it wrote that many bytes. With at = size nothing is
// held: the kill lands while the mirror syncs, imports and records the
// whole file, or just after, so the client may have got it all.
type fillKillPoint struct {
	name string
	at   func(size int64) int64
}

func (kp fillKillPoint) mayFinish(size int64) bool { return kp.at(size) >= size }

// fillKillPoints are the fast test's points; the slow one adds more.
func fillKillPoints() []fillKillPoint {
	points := []fillKillPoint{
		{"early", func(int64) int64 { return fakeChunk }},
		{"middle", func(size int64) int64 { return size / 2 / fakeChunk * fakeChunk }},
		{"just before the last chunk", func(size int64) int64 { return (size - 1) / fakeChunk * fakeChunk }},
		{"after the last byte", func(size int64) int64 { return size }},
	}
	if slowTests() {
		for _, frac := range []float64{0.1, 0.3, 0.7, 0.9} {
			points = append(points, fillKillPoint{fmt.Sprintf("%.0f%%", 100*frac), func(size int64) int64 {
				return int64(frac*float64(size)) / fakeChunk * fakeChunk
			}})
		}
	}
	return points
}

// TestCrashDuringMirrorFill kills a mirror with SIGKILL while it fills a
// file from its upstream. After the restart the store verifies, the cut
// fill is neither served nor kept, the next request fills again with the
// right bytes, a file kept before the crash is not downloaded again, and
// the revision becomes a model.
func TestCrashDuringMirrorFill(t *testing.T) {
	size := int64(fastFillSize)
	if slowTests() {
		size = slowFillSize
	}
	files := fillRepo(t, size)
	weights := files[1]
	want := weights.sha256()
	up := newFakeUpstream(t, "school/crash", files...)

	for _, kp := range fillKillPoints() {
		t.Run(kp.name, func(t *testing.T) {
			at := kp.at(size)
			release := make(chan struct{})
			up.setGate(holdAt("model.bin", at, release))
			m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+up.URL, "ALLMENDE_FETCH_TIMEOUT=5s")
			m.Start()
			base := m.MirrorURL(t)

			// config.json is filled and kept before the crash.
			if code, body, err := harness.Get(base+"/school/crash/resolve/main/config.json", "", harness.DownloadTimeout); code != http.StatusOK || err != nil || !bytes.Equal(body, files[0].data) {
				t.Fatalf("config.json: status %d, err %v", code, err)
			}
			harness.WaitUntil(t, "config.json in the kept-files index", 30*time.Second, pollEvery, func() bool {
				raw, _ := os.ReadFile(filepath.Join(m.Home, "fill", "kept.json"))
				return bytes.Contains(raw, []byte(manifest.GitBlobSHA1(files[0].data)))
			})

			type answer struct {
				code int
				n    int
				err  error
				sum  string
			}
			cut := make(chan answer, 1)
			go func() {
				code, body, err := harness.Get(base+"/school/crash/resolve/main/model.bin", "", harness.DownloadTimeout)
				sum := sha256.Sum256(body)
				cut <- answer{code, len(body), err, hex.EncodeToString(sum[:])}
			}()
			harness.WaitUntil(t, "the fill to reach the kill point", time.Minute, pollEvery, func() bool { return partBytes(m) >= at })
			m.Kill()
			a := <-cut
			t.Logf("kill -9 with %d of %d bytes filled; the client saw status %d, %d bytes, err %v", partBytes(m), size, a.code, a.n, a.err)
			switch {
			case a.err == nil && a.code == http.StatusOK && a.sum != want:
				t.Errorf("a client got %d wrong bytes as a clean 200", a.n)
			case kp.mayFinish(size):
			case a.err == nil && a.sum == want:
				t.Errorf("a client got the whole file from a fill killed before it ended")
			case a.err == nil && a.code == http.StatusOK:
				t.Errorf("a fill killed mid-way ended as a clean 200 with %d bytes", a.n)
			}
			close(release)
			up.setGate(nil)

			// The store opens without repair and verifies.
			assertVerifies(t, m)
			m.Start()
			if p := m.FillParts(); len(p) != 0 {
				t.Errorf("the cut fill is still on disk after the restart: %v", p)
			}
			base = m.MirrorURL(t)
			before := up.resolves.Load()
			code, body, err := harness.Get(base+"/school/crash/resolve/main/model.bin", "", harness.DownloadTimeout)
			sum := sha256.Sum256(body)
			if code != http.StatusOK || err != nil || hex.EncodeToString(sum[:]) != want {
				t.Fatalf("model.bin after the restart: status %d, %d bytes, err %v, sha256 %x, want %s", code, len(body), err, sum, want)
			}
			if !pageLists(t, base, "school/crash", true) {
				t.Fatalf("the filled revision never became a model:\n%s", m.Log())
			}
			n := up.resolves.Load() - before
			t.Logf("after the restart the upstream sent %d file(s)", n)
			if n > 1 || n == 0 && !kp.mayFinish(size) {
				t.Errorf("the upstream was asked for %d files after the restart, want 1 (config.json was kept)", n)
			}
			if code, body, _ := harness.Get(base+"/school/crash/resolve/main/config.json", "", harness.DownloadTimeout); code != http.StatusOK || !bytes.Equal(body, files[0].data) {
				t.Errorf("config.json from the model: status %d", code)
			}
			assertVerifies(t, m)
			if _, err := m.Stop(); err != nil {
				t.Error(err)
			}
			assertAllEvictable(t, m)
		})
	}
}

// assertAllEvictable restarts n, a mirror holding only what it filled for
// its clients, with a quota of one byte: the mirror's records must lead to
// every pin, so all of them go.
func assertAllEvictable(t *testing.T, n *harness.Node) {
	t.Helper()
	env := n.Env
	n.Env = append(append([]string{}, env...), "ALLMENDE_MIRROR_QUOTA=1", "ALLMENDE_MIRROR_INTERVAL=200ms")
	defer func() { n.Env = env }()
	n.Start()
	harness.WaitUntil(t, "every filled pin evicted under a one-byte quota", 30*time.Second, pollEvery, func() bool { return len(pinnedRoots(t, n)) == 0 })
	if _, err := n.Stop(); err != nil {
		t.Error(err)
	}
}
