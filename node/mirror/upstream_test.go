package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allmende/allmende/node/mirror/hfapi"
)

// fakeRepoSource answers revision lookups with a commit a test can move,
// holding each answer until release is closed.
type fakeRepoSource struct {
	commit  atomic.Value // string
	release chan struct{}
	asked   atomic.Int64
}

func (f *fakeRepoSource) fetch(ctx context.Context, kind hfapi.Kind, name, rev, _ string) (*hfapi.Repo, error) {
	f.asked.Add(1)
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if name == "org/missing" {
		return nil, hfapi.ErrRepoNotFound
	}
	return &hfapi.Repo{Kind: kind, Name: name, Revision: rev, Commit: f.commit.Load().(string)}, nil
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRepoCacheSharesLookups: clients asking at once for one revision
// share one upstream lookup.
func TestRepoCacheSharesLookups(t *testing.T) {
	const clients = 16
	src := &fakeRepoSource{release: make(chan struct{})}
	src.commit.Store("a")
	c := newRepoCache(context.Background(), time.Hour, src.fetch)
	var wg sync.WaitGroup
	got := make(chan string, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.get(context.Background(), hfapi.Model, "org/m", "main", "")
			if err != nil {
				got <- err.Error()
				return
			}
			got <- r.Commit
		}()
	}
	waitFor(t, "every client waiting on the lookup", func() bool { return c.waiting.Load() == clients })
	close(src.release)
	wg.Wait()
	close(got)
	for commit := range got {
		if commit != "a" {
			t.Errorf("a client got %q", commit)
		}
	}
	if n := src.asked.Load(); n != 1 {
		t.Errorf("%d clients at once made %d upstream lookups, want 1", clients, n)
	}
}

// TestRepoCacheExpires: an answer is reused until its time to live ends,
// then asked again, so a moved branch is followed; a failure is kept for
// a short while only.
func TestRepoCacheExpires(t *testing.T) {
	const ttl = 50 * time.Millisecond
	src := &fakeRepoSource{release: make(chan struct{})}
	close(src.release)
	src.commit.Store("a")
	c := newRepoCache(context.Background(), ttl, src.fetch)
	ctx := context.Background()
	get := func() string {
		r, err := c.get(ctx, hfapi.Model, "org/m", "main", "")
		if err != nil {
			t.Fatal(err)
		}
		return r.Commit
	}
	if get() != "a" || get() != "a" || src.asked.Load() != 1 {
		t.Fatalf("a fresh answer was not reused: %d lookups", src.asked.Load())
	}
	src.commit.Store("b")
	waitFor(t, "main to follow the upstream", func() bool { return get() == "b" })
	if _, err := c.get(ctx, hfapi.Model, "org/missing", "main", ""); !errors.Is(err, hfapi.ErrRepoNotFound) {
		t.Errorf("missing repo: %v", err)
	}
	before := src.asked.Load()
	c.get(ctx, hfapi.Model, "org/missing", "main", "")
	if src.asked.Load() != before {
		t.Error("a not-found answer was asked again at once")
	}
}

// TestRepoCacheBounded: the cache holds at most MaxUpstreamRepos answers.
func TestRepoCacheBounded(t *testing.T) {
	src := &fakeRepoSource{release: make(chan struct{})}
	close(src.release)
	src.commit.Store("a")
	c := newRepoCache(context.Background(), time.Hour, src.fetch)
	for i := range MaxUpstreamRepos + 10 {
		if _, err := c.get(context.Background(), hfapi.Model, fmt.Sprintf("org/m%d", i), "main", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.lru.Len(); n != MaxUpstreamRepos {
		t.Errorf("%d answers kept, want %d", n, MaxUpstreamRepos)
	}
}
