package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/mirror/hfapi"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Limits of the cache of upstream answers.
const (
	// MaxUpstreamRepos bounds the revisions whose upstream answer (commit
	// and file list, up to hfapi.MaxFiles files each) the mirror keeps.
	MaxUpstreamRepos = 256
	// upstreamFailureTTL is how long a failed lookup (not found, the
	// upstream down) is remembered at most, so that a mirror whose
	// upstream is down answers from what it holds without asking the
	// upstream again for every request.
	upstreamFailureTTL = 30 * time.Second
	// upstreamRecheck bounds how long a request for a revision the mirror
	// holds waits to learn whether the upstream moved it; past it, the
	// request gets what the mirror holds and the lookup goes on for the
	// next one.
	upstreamRecheck = 5 * time.Second
)

// repoAnswer is one remembered upstream answer.
type repoAnswer struct {
	repo  *hfapi.Repo
	err   error
	until time.Time
}

// repoCache remembers the upstream's answers about revisions (which commit
// a branch is, which files it has) for ttl, at most MaxUpstreamRepos of
// them, so that a branch such as main follows the upstream when it moves.
// Concurrent lookups of one revision share one upstream request.
type repoCache struct {
	// ctx bounds lookups: they run for every client waiting on them, not
	// under any one client's request.
	ctx   context.Context
	fetch func(ctx context.Context, kind hfapi.Kind, name, rev, token string) (*hfapi.Repo, error)
	ttl   time.Duration
	lru   *lru.Cache[string, repoAnswer]
	group singleflight.Group
	// waiting counts callers waiting on an upstream lookup; lookups counts
	// the lookups sent.
	waiting atomic.Int64
	lookups atomic.Uint64
}

func newRepoCache(ctx context.Context, ttl time.Duration, fetch func(context.Context, hfapi.Kind, string, string, string) (*hfapi.Repo, error)) *repoCache {
	c, _ := lru.New[string, repoAnswer](MaxUpstreamRepos) // fails only for a size <= 0
	return &repoCache{ctx: ctx, fetch: fetch, ttl: ttl, lru: c}
}

// fresh returns the remembered answer for key if it has not expired.
func (c *repoCache) fresh(key string) (repoAnswer, bool) {
	a, ok := c.lru.Get(key)
	if !ok || time.Now().After(a.until) {
		return repoAnswer{}, false
	}
	return a, true
}

// get returns the upstream's answer about kind name@rev, read with token
// ("" for the mirror's own), from memory while it is fresh. Answers read
// with a client's token are kept apart, under a hash of the token.
func (c *repoCache) get(ctx context.Context, kind hfapi.Kind, name, rev, token string) (*hfapi.Repo, error) {
	key := string(kind) + ":" + name + "@" + rev
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		key += "#" + hex.EncodeToString(sum[:])
	}
	if a, ok := c.fresh(key); ok {
		return a.repo, a.err
	}
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	ch := c.group.DoChan(key, func() (any, error) {
		if a, ok := c.fresh(key); ok { // answered between the check and now
			return a, nil
		}
		c.lookups.Add(1)
		r, err := c.fetch(c.ctx, kind, name, rev, token)
		a := repoAnswer{repo: r, err: err, until: time.Now().Add(c.ttl)}
		if err != nil {
			a.until = time.Now().Add(min(c.ttl, upstreamFailureTTL))
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, hfapi.ErrBadRequest) {
			c.lru.Add(key, a)
		}
		return a, nil
	})
	select {
	case res := <-ch:
		a := res.Val.(repoAnswer)
		return a.repo, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
