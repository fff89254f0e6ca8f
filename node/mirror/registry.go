package mirror

import (
	"context"
	"errors"
	"fmt"

	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/node/mirror/ocifill"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// registryKeeper keeps what the OCI backend (node/mirror/ocifill) fills
// the way the hub fills are kept: within the quota, in the mirror cache,
// one fill slot per blob a client waits on.
type registryKeeper struct {
	mr  *Mirror
	hfb *hfBackend
}

var _ ocifill.Keeper = registryKeeper{}

func (k registryKeeper) Reserve(ctx context.Context, size uint64) (func(), error) {
	n := storeBytes(size)
	res, err := k.hfb.quota.reserve(ctx, n, n, reserveWait)
	if err != nil {
		return nil, err
	}
	return res.release, nil
}

func (k registryKeeper) Acquire(ctx context.Context) (func(), error) {
	release, err := k.hfb.fills.acquire(ctx)
	if errors.Is(err, hfapi.ErrBusy) {
		return nil, fmt.Errorf("%w: %w", oci.ErrTooManyRequests, err)
	}
	return release, err
}

func (k registryKeeper) KeepFile(ctx context.Context, c cid.Cid, name, path string, size uint64) error {
	settle, err := k.hfb.cache.add(c.String(), cacheEntry{Kind: cachedFile, Name: name, Path: path, Size: storeBytes(size)})
	if err != nil {
		return err
	}
	defer settle()
	return k.mr.store.Pin(ctx, c, path)
}

func (k registryKeeper) KeepModel(ctx context.Context, m *manifest.Manifest) (cid.Cid, error) {
	return k.mr.keepModel(ctx, m, k.hfb.cache)
}

func (k registryKeeper) Touch(key string) { k.hfb.cache.touch(key) }

func (k registryKeeper) Announce(ctx context.Context, root cid.Cid) {
	if k.mr.cfg.Announce != nil {
		k.mr.cfg.Announce(ctx, root)
	}
}

// newRegistry makes the backend of the OCI distribution API at /v2/.
func (mr *Mirror) newRegistry() (*ocifill.Backend, error) {
	return ocifill.New(mr.ctx, ocifill.Config{
		Upstream: mr.cfg.RegistryUpstream, TTL: mr.cfg.UpstreamTTL, StallTimeout: mr.cfg.StallTimeout,
		Home: mr.cfg.Home, Store: mr.store, Models: mr.models, Net: mr.hfb.dag, Keeper: registryKeeper{mr: mr, hfb: mr.hfb}, Gate: mr.cfg.Gate, Log: mr.log,
	})
}
