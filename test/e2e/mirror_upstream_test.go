package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// upstreamTTL is mirror.upstream_ttl in the upstream rules test.
const upstreamTTL = time.Second

// TestMirrorUpstreamRules: what clients send is checked before anything
// reaches the upstream; the upstream's redirects are followed only to its
// own host (or https), never to another loopback address; its error
// answers stay in the mirror's log; its answers about main expire after
// mirror.upstream_ttl; and clients asking at once share one lookup.
func TestMirrorUpstreamRules(t *testing.T) {
	hub := newFakeHub(t)
	movingA := modelFiles(t, 64<<10, 1)
	hub.push("class/moving", movingA...)
	ownFiles := modelFiles(t, 64<<10, 2)
	ownCommit := hub.push("class/own", ownFiles...)
	hub.push("class/away", modelFiles(t, 64<<10, 3)...)
	hub.push("class/broken", modelFiles(t, 64<<10, 4)...)
	hub.push("class/crowd", modelFiles(t, 64<<10, 5)...)

	// A server on another loopback address the upstream points to.
	var elsewhereHits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	elsewhere := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhereHits.Add(1)
		w.Write(ownFiles[1].data)
	}))
	elsewhere.Listener.Close()
	elsewhere.Listener = ln
	elsewhere.Start()
	t.Cleanup(elsewhere.Close)

	hub.mu.Lock()
	hub.redirect["class/away"] = elsewhere.URL + "/x"
	hub.redirect["class/own"] = hub.URL + "/cdn/class/own/" + ownCommit
	const secret = "SECRET-UPSTREAM-DETAIL"
	hub.fail["class/broken"] = secret + strings.Repeat(" and more", 1000)
	hub.mu.Unlock()

	m := harness.NewNode(t, "ALLMENDE_MIRROR_ADDR=127.0.0.1:0", "ALLMENDE_MIRROR_UPSTREAM="+hub.URL,
		"ALLMENDE_MIRROR_UPSTREAM_TTL="+upstreamTTL.String(), "ALLMENDE_FETCH_TIMEOUT=5s")
	m.Start()
	base := m.MirrorURL(t)

	t.Run("names, revisions and paths that break the rules never reach the upstream", func(t *testing.T) {
		before := hub.requests.Load()
		for _, p := range []string{
			"/api/models/class/..%2F..%2Fetc/revision/main",
			"/api/models/class/moving/revision/..%2F..%2Fmain",
			"/api/models/class/mov%0Aing/revision/main",
			"/api/models/class/" + strings.Repeat("m", 200) + "/revision/main",
			"/api/models/class/moving/revision/" + strings.Repeat("r", 200),
			"/class/moving/resolve/main%2F..%2F..%2Fx/model.bin",
			"/class/mo%1Bving/resolve/main/model.bin",
		} {
			code, _, body := harness.MustGet(t, base+p)
			t.Logf("%s: %d %s", p, code, bytes.TrimSpace(body))
			if code != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", p, code)
			}
		}
		for _, p := range []string{"/class/moving/resolve/main/..%2F..%2Fsecret", "/class/moving/resolve/main/a%0Ab", "/class/moving/resolve/ma%00in/model.bin"} {
			if code, _, _ := harness.MustGet(t, base+p); code != http.StatusNotFound {
				t.Errorf("%s: status %d, want 404", p, code)
			}
		}
		if n := hub.requests.Load() - before; n != 0 {
			t.Errorf("the upstream got %d requests", n)
		}
	})

	t.Run("a redirect to another loopback address over http is not followed", func(t *testing.T) {
		code, hdr, body := harness.MustGet(t, base+"/class/away/resolve/main/model.bin")
		t.Logf("status %d: %s", code, bytes.TrimSpace(body))
		if code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", code)
		}
		if n := elsewhereHits.Load(); n != 0 {
			t.Errorf("the server on 127.0.0.2 got %d requests", n)
		}
		if strings.Contains(string(body)+hdr.Get("X-Error-Message"), "127.0.0.2") {
			t.Error("the client was told where the upstream redirected")
		}
	})

	t.Run("a redirect to the upstream's own host is followed", func(t *testing.T) {
		code, hdr, body := harness.MustGet(t, base+"/class/own/resolve/main/model.bin")
		if code != http.StatusOK || !bytes.Equal(body, ownFiles[1].data) || hdr.Get("X-Repo-Commit") != ownCommit {
			t.Errorf("status %d, %d bytes, commit %q", code, len(body), hdr.Get("X-Repo-Commit"))
		}
	})

	t.Run("upstream error answers stay in the mirror's log", func(t *testing.T) {
		code, hdr, body := harness.MustGet(t, base+"/api/models/class/broken/revision/main")
		t.Logf("status %d: %s", code, bytes.TrimSpace(body))
		if code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", code)
		}
		if strings.Contains(string(body), secret) || strings.Contains(hdr.Get("X-Error-Message"), secret) {
			t.Error("the upstream's error body reached the client")
		}
		harness.WaitUntil(t, "the error body in the mirror's log", 10*time.Second, pollEvery, func() bool { return strings.Contains(m.Log(), secret) })
		for _, line := range strings.Split(m.Log(), "\n") {
			if strings.Contains(line, secret) && len(line) > 4<<10 {
				t.Errorf("a log line of %d bytes: the body is not bounded", len(line))
			}
		}
	})

	t.Run("main follows the upstream once mirror.upstream_ttl passes", func(t *testing.T) {
		commitA := hubCommit(t, base, "class/moving")
		code, _, body := harness.MustGet(t, base+"/class/moving/resolve/main/model.bin")
		if code != http.StatusOK || !bytes.Equal(body, movingA[1].data) {
			t.Fatalf("before the move: status %d, %d bytes", code, len(body))
		}
		harness.MustGet(t, base+"/class/moving/resolve/main/config.json") // the revision is complete, a model now
		movingB := modelFiles(t, 64<<10, 6)
		commitB := hub.push("class/moving", movingB...)
		start := time.Now()
		harness.WaitUntil(t, "the mirror to serve the moved main", 30*time.Second, pollEvery, func() bool { return hubCommit(t, base, "class/moving") == commitB })
		t.Logf("main moved from %.8s to %.8s; the mirror served it %s later (ttl %s)", commitA, commitB, time.Since(start).Round(10*time.Millisecond), upstreamTTL)
		code, hdr, body := harness.MustGet(t, base+"/class/moving/resolve/main/model.bin")
		if code != http.StatusOK || !bytes.Equal(body, movingB[1].data) || hdr.Get("X-Repo-Commit") != commitB {
			t.Errorf("after the move: status %d, commit %q, new bytes %v", code, hdr.Get("X-Repo-Commit"), bytes.Equal(body, movingB[1].data))
		}
		code, _, body = harness.MustGet(t, base+"/class/moving/resolve/"+commitA+"/model.bin")
		if code != http.StatusOK || !bytes.Equal(body, movingA[1].data) {
			t.Errorf("the old commit by id: status %d", code)
		}
	})

	t.Run("clients asking at once share one upstream lookup", func(t *testing.T) {
		const clients = 16
		release := make(chan struct{})
		hub.mu.Lock()
		hub.hold["class/crowd"] = release
		hub.mu.Unlock()
		var wg sync.WaitGroup
		commits := make(chan string, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				commits <- hubCommitNoFail(base, "class/crowd")
			}()
		}
		harness.WaitUntil(t, "every client waiting on the lookup", 30*time.Second, pollEvery, func() bool {
			return harness.Metric(t, base, "allmende_mirror_upstream_lookups_waiting") == clients
		})
		hub.mu.Lock()
		close(release)
		delete(hub.hold, "class/crowd")
		hub.mu.Unlock()
		wg.Wait()
		close(commits)
		for c := range commits {
			if len(c) != 40 {
				t.Errorf("a client got %q", c)
			}
		}
		if n := hub.count(hub.info, "class/crowd"); n != 1 {
			t.Errorf("%d clients at once made %d upstream lookups, want 1", clients, n)
		}
	})
}

// hubCommit is the commit the mirror names for name's main.
func hubCommit(t *testing.T, base, name string) string {
	t.Helper()
	code, _, body := harness.MustGet(t, base+"/api/models/"+name+"/revision/main")
	var info struct {
		SHA string `json:"sha"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &info) != nil {
		t.Fatalf("info of %s: %d %s", name, code, body)
	}
	return info.SHA
}

// hubCommitNoFail is hubCommit for other goroutines: "" on failure.
func hubCommitNoFail(base, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/models/"+name+"/revision/main", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var info struct {
		SHA string `json:"sha"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
		return ""
	}
	return info.SHA
}
