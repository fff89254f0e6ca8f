// Package ocifill is the mirror's backend for the OCI distribution API
// (node/mirror/oci): it serves manifests per repository and tag, and blobs
// by sha256, from what the node holds, else from other allmende nodes, else
// from an upstream registry (mirror.registry_upstream, e.g.
// https://registry.ollama.ai), keeping what it fills within the mirror's
// quota and announcing it to the swarm.
//
// A tag's manifest comes from the upstream, asked at most once per
// Config.TTL for all clients (a failed lookup falls back to what the node
// holds), else from a model this node holds under that name, else from a
// signed name record in the swarm. Blobs come from the store, else from
// peers by sha256 (as `allmende fetch sha256:` finds them), else from the
// upstream; each is checked against its digest and size before it is kept,
// and clients asking for one blob at once share one transfer. Once every
// blob of a tag's image manifest is kept, the tag becomes an allmende model
// (store/ollama's record layout), indexed and announced like any other.
package ocifill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/gate"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/mirror/oci"
	"github.com/allmende/allmende/node/mirror/upstreamhttp"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ollama"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"
)

// Limits of what the backend remembers.
const (
	// MaxTags bounds the repository:tag answers of the upstream kept.
	MaxTags = 1024
	// MaxCachedManifests bounds the manifests kept in memory by digest.
	MaxCachedManifests = 256
	// maxCachedManifestBytes: larger manifests are not kept in memory
	// (at most MaxCachedManifests × this, 64 MiB, in all).
	maxCachedManifestBytes = 256 << 10
	// MaxKnownBlobs bounds the blob sizes learnt from manifests.
	MaxKnownBlobs = 1 << 16
	// MaxPending bounds the tags waiting for their blobs to become a model.
	MaxPending = 256
	// failureTTL is how long a failed upstream lookup is remembered at
	// most, so a mirror whose upstream is down answers from what it holds
	// without asking again for every request.
	failureTTL = 30 * time.Second
	// swarmLookupTimeout bounds asking peers for a blob by sha256 before
	// going to the upstream.
	swarmLookupTimeout = 3 * time.Second
	// DefaultTTL is Config.TTL's default.
	DefaultTTL = 10 * time.Minute
	// DefaultStallTimeout is Config.StallTimeout's default.
	DefaultStallTimeout = 30 * time.Second
)

// Keeper is what the mirror keeps blobs and models with: its quota, its
// cache of what it keeps for clients, and its per-client fill slots.
type Keeper interface {
	// Reserve holds room for a blob of size bytes under mirror.quota and
	// on the disk; an error wraps store.ErrNoSpace when there is none.
	// release gives it back (once the blob is kept, or failed).
	Reserve(ctx context.Context, size uint64) (release func(), err error)
	// Acquire takes one of the requesting client's fill slots; it fails
	// with oci.ErrTooManyRequests when the client has all of them going.
	Acquire(ctx context.Context) (release func(), err error)
	// KeepFile pins file root c as path, recorded in the mirror's cache
	// (name is the repository it was filled for) so the quota may evict
	// it. The caller holds the store's pin lock.
	KeepFile(ctx context.Context, c cid.Cid, name, path string, size uint64) error
	// KeepModel stores, pins and indexes m as a model kept in the
	// mirror's cache, and returns its manifest's CID. The caller holds
	// the store's pin lock.
	KeepModel(ctx context.Context, m *manifest.Manifest) (cid.Cid, error)
	// Touch records a use of what the cache holds under key (a CID).
	Touch(key string)
	// Announce starts providing root to the swarm now.
	Announce(ctx context.Context, root cid.Cid)
}

// Config is what the backend needs.
type Config struct {
	// Upstream is the registry to fill from (scheme and host), "" for
	// none.
	Upstream string
	// Home is the node's home directory (blob fills land in its fills
	// folder).
	Home string
	// TTL is how long the upstream's answer about a tag is reused.
	TTL time.Duration
	// StallTimeout aborts a blob fill that delivered no byte for this
	// long.
	StallTimeout time.Duration
	// Store is the node's store.
	Store *store.Store
	// Models is the node's model registry: sha256 lookups among peers,
	// names, the index.
	Models *models.Registry
	// Net reads blocks not held from peers (the mirror's block service,
	// which keeps them within the quota).
	Net ipld.DAGService
	// Keeper keeps what is filled.
	Keeper Keeper
	// Gate is the node's policy: a repository name or a blob the
	// denylists (or the licence policy, for a held blob) refuse is
	// oci.ErrRefused (451). Nil refuses nothing.
	Gate *gate.Gate
	// Log receives the backend's logs; it must not be nil.
	Log *slog.Logger
}

// Backend implements oci.Backend for the mirror. New makes one.
type Backend struct {
	cfg    Config
	ctx    context.Context
	log    *slog.Logger
	client *oci.Client // nil without an upstream
	source string      // the upstream's host, for models' Source

	tags      *lru.Cache[string, tagAnswer]
	manifests *lru.Cache[digest.Digest, *oci.Manifest]
	sizes     *lru.Cache[digest.Digest, int64]
	pending   *lru.Cache[string, pendingTag]
	lookups   singleflight.Group
	dir       string // where blob fills land

	mu   sync.Mutex
	kept map[string]cid.Cid // sha256 hex → file root pinned as sha256:<hex>
	jobs map[digest.Digest]*blobJob

	// Counters for the mirror's metrics.
	UpstreamLookups, UpstreamBlobs, SwarmBlobs atomic.Uint64
}

// tagAnswer is a remembered upstream answer about a tag.
type tagAnswer struct {
	d     digest.Digest
	err   error
	until time.Time
}

// pendingTag is a tag served whose blobs are not all kept yet.
type pendingTag struct {
	name, tag, source string
	m                 *oci.Manifest
}

var _ oci.Backend = (*Backend)(nil)

// New returns the backend; work that outlives a request (fills, lookups)
// runs under ctx. It learns the blobs kept before from the store's pins.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	b := &Backend{cfg: cfg, ctx: ctx, log: cfg.Log, dir: home.Dir(cfg.Home).Fills(),
		kept: map[string]cid.Cid{}, jobs: map[digest.Digest]*blobJob{}}
	b.tags, _ = lru.New[string, tagAnswer](MaxTags) // fails only for a size <= 0
	b.manifests, _ = lru.New[digest.Digest, *oci.Manifest](MaxCachedManifests)
	b.sizes, _ = lru.New[digest.Digest, int64](MaxKnownBlobs)
	b.pending, _ = lru.New[string, pendingTag](MaxPending)
	if cfg.Upstream != "" {
		rules, err := upstreamhttp.Parse(cfg.Upstream)
		if err != nil {
			return nil, fmt.Errorf("mirror.registry_upstream: %w", err)
		}
		if b.client, err = oci.NewClient(cfg.Upstream, rules.Client(), cfg.Log); err != nil {
			return nil, fmt.Errorf("mirror.registry_upstream: %w", err)
		}
		b.source = rules.Base().Host
	}
	b.removeParts()
	b.loadKept(ctx)
	return b, nil
}

// Tags implements oci.Backend: the tags of the models this node holds
// under name, and the upstream's are not asked for.
func (b *Backend) Tags(ctx context.Context, name string) ([]string, error) {
	if err := b.cfg.Gate.Name(name, policy.SurfaceOCI); err != nil {
		return nil, refused(err)
	}
	var tags []string
	for _, c := range b.cfg.Models.Index().Revisions(name) {
		if m, err := models.ReadManifest(ctx, b.cfg.Store.LocalDAG(), c); err == nil && ollama.IsRecord(m) && m.Name == name {
			tags = append(tags, m.Revision)
		}
	}
	if len(tags) == 0 {
		return nil, oci.ErrNameUnknown
	}
	return tags, nil
}

// Manifest implements oci.Backend. The policy applies to the name, and
// to the manifest's digest (a tag's once it is known).
func (b *Backend) Manifest(ctx context.Context, name string, ref oci.Reference) (*oci.Manifest, error) {
	if err := b.cfg.Gate.Name(name, policy.SurfaceOCI); err != nil {
		return nil, refused(err)
	}
	if ref.Digest != "" {
		if err := b.allowed(name, ref.Digest); err != nil {
			return nil, err
		}
		return b.byDigest(ctx, name, ref.Digest)
	}
	m, err := b.tagManifest(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	if err := b.allowed(name, m.Digest()); err != nil {
		return nil, err
	}
	return m, nil
}

// tagManifest finds the manifest of name:ref.Tag (see Manifest).
func (b *Backend) tagManifest(ctx context.Context, name string, ref oci.Reference) (*oci.Manifest, error) {
	if b.client != nil {
		m, err := b.upstreamTag(ctx, name, ref.Tag)
		if err == nil {
			b.learn(name, ref.Tag, b.upstreamSource(name, ref.Tag), m)
			return m, nil
		}
		if held, herr := b.heldTag(ctx, name, ref.Tag); herr == nil {
			b.log.Info("registry: upstream not reached; serving the tag held", "name", name, "tag", ref.Tag, "err", err)
			return held, nil
		}
		return nil, err
	}
	if m, err := b.heldTag(ctx, name, ref.Tag); err == nil {
		return m, nil
	}
	return b.swarmTag(ctx, name, ref.Tag)
}

// upstreamTag asks the upstream for name:tag's manifest, at most once per
// TTL (failures for at most failureTTL) for all clients asking.
func (b *Backend) upstreamTag(ctx context.Context, name, tag string) (*oci.Manifest, error) {
	key := name + ":" + tag
	if a, ok := b.tags.Get(key); ok && time.Now().Before(a.until) {
		if a.err != nil {
			return nil, a.err
		}
		if m, err := b.byDigest(ctx, name, a.d); err == nil {
			return m, nil
		}
	}
	ch := b.lookups.DoChan(key, func() (any, error) {
		b.UpstreamLookups.Add(1)
		m, err := b.client.Manifest(b.ctx, name, oci.Reference{Tag: tag})
		a := tagAnswer{err: err, until: time.Now().Add(b.cfg.TTL)}
		if err != nil {
			a.until = time.Now().Add(min(b.cfg.TTL, failureTTL))
		} else {
			a.d = m.Digest()
			b.remember(m)
		}
		if !errors.Is(err, context.Canceled) {
			b.tags.Add(key, a)
		}
		return m, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*oci.Manifest), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// remember keeps a manifest in memory by digest, if it is small.
func (b *Backend) remember(m *oci.Manifest) {
	if len(m.Data) <= maxCachedManifestBytes {
		b.manifests.Add(m.Digest(), m)
	}
}

// byDigest finds a manifest by digest: in memory, among the files this
// node holds, at the upstream.
func (b *Backend) byDigest(ctx context.Context, name string, d digest.Digest) (*oci.Manifest, error) {
	if m, ok := b.manifests.Get(d); ok {
		return m, nil
	}
	if f, ok := b.cfg.Models.Index().BySHA256(d.Encoded()); ok && f.Size <= oci.MaxManifestBytes {
		if m, err := b.readManifest(ctx, b.cfg.Store.LocalDAG(), f); err == nil {
			b.remember(m)
			return m, nil
		}
	}
	if b.client == nil {
		return nil, fmt.Errorf("%s@%s: %w", name, d, oci.ErrManifestUnknown)
	}
	m, err := b.client.Manifest(ctx, name, oci.Reference{Digest: d})
	if err != nil {
		return nil, err
	}
	b.remember(m)
	return m, nil
}

// readManifest reads a manifest file (of at most oci.MaxManifestBytes)
// through dag and checks it against its sha256.
func (b *Backend) readManifest(ctx context.Context, dag ipld.DAGService, f manifest.File) (*oci.Manifest, error) {
	if f.Size > oci.MaxManifestBytes {
		return nil, fmt.Errorf("%w manifest: %d bytes", oci.ErrInvalid, f.Size)
	}
	data, err := readFile(ctx, dag, f)
	if err != nil {
		return nil, err
	}
	p, err := oci.ParseManifest("", data)
	if err != nil {
		return nil, err
	}
	return &oci.Manifest{MediaType: p.MediaType, Data: data}, nil
}

// heldTag returns the manifest of the model this node holds as name:tag.
func (b *Backend) heldTag(ctx context.Context, name, tag string) (*oci.Manifest, error) {
	c, ok := b.cfg.Models.Index().ByName(name, tag)
	if !ok {
		return nil, fmt.Errorf("%s:%s: %w", name, tag, oci.ErrManifestUnknown)
	}
	rec, err := models.ReadManifest(ctx, b.cfg.Store.LocalDAG(), c)
	if err != nil {
		return nil, err
	}
	m, err := b.recordManifest(ctx, b.cfg.Store.LocalDAG(), rec)
	if err != nil {
		return nil, err
	}
	b.cfg.Keeper.Touch(c.String())
	b.learn(name, tag, "", m)
	return m, nil
}

// swarmTag resolves name:tag through a signed name record among peers
// (a publisher this node trusts), reads the OCI manifest from them and
// serves it; its blobs follow by sha256 as clients ask.
func (b *Backend) swarmTag(ctx context.Context, name, tag string) (*oci.Manifest, error) {
	if _, _, err := ollama.RecordRef(name, tag); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", name, tag, oci.ErrManifestUnknown)
	}
	rec, _, err := b.cfg.Models.ResolveManifest(ctx, name+"@"+tag, false, 0, new(atomic.Uint64))
	if err != nil {
		b.log.Debug("registry: tag not in the swarm", "name", name, "tag", tag, "err", err)
		return nil, fmt.Errorf("%s:%s: %w", name, tag, oci.ErrManifestUnknown)
	}
	m, err := b.recordManifest(ctx, b.cfg.Net, rec)
	if err != nil {
		return nil, err
	}
	b.remember(m)
	b.learn(name, tag, rec.Source, m)
	return m, nil
}

// recordManifest reads the OCI manifest of a model kept in the record
// layout.
func (b *Backend) recordManifest(ctx context.Context, dag ipld.DAGService, rec *manifest.Manifest) (*oci.Manifest, error) {
	f, ok := rec.Lookup(ollama.RecordManifest)
	if !ollama.IsRecord(rec) || !ok {
		return nil, fmt.Errorf("%s@%s is no OCI model: %w", rec.Name, rec.Revision, oci.ErrManifestUnknown)
	}
	return b.readManifest(ctx, dag, f)
}

// learn notes the sizes of a manifest's blobs (clients ask for blobs by
// digest only) and, for an image manifest whose tag can be a model, waits
// for its blobs to be kept to record it (see complete).
func (b *Backend) learn(name, tag, source string, m *oci.Manifest) {
	p, err := oci.ParseManifest(m.MediaType, m.Data)
	if err != nil {
		return
	}
	for _, d := range p.Blobs() {
		b.sizes.Add(d.Digest, d.Size)
	}
	if p.Config == nil {
		return
	}
	if _, _, err := ollama.RecordRef(name, tag); err != nil {
		return
	}
	if source == "" {
		return // held already
	}
	key := name + ":" + tag
	if old, ok := b.pending.Get(key); ok && old.m.Digest() == m.Digest() {
		return
	}
	b.pending.Add(key, pendingTag{name: name, tag: tag, source: source, m: m})
	go b.complete(b.ctx)
}

// upstreamSource is the source of a model filled from the upstream.
func (b *Backend) upstreamSource(name, tag string) string {
	return ollama.OCISourcePrefix + b.source + "/" + name + ":" + tag
}

// allowed refuses the content d of repository name if the policy refuses
// its sha256 or, when it is held, its file root (a cid: rule, or the
// licence of a model it belongs to).
func (b *Backend) allowed(name string, d digest.Digest) error {
	g := b.cfg.Gate
	if err := g.SHA256(d.Encoded(), name+"@"+d.String(), policy.SurfaceOCI); err != nil {
		return refused(err)
	}
	if c := b.heldCID(d.Encoded()); c.Defined() {
		if err := g.CID(c, policy.SurfaceOCI); err != nil {
			return refused(err)
		}
	}
	return nil
}

// refused marks a refusal of the node's policy as the OCI API's 451.
func refused(err error) error { return fmt.Errorf("%w: %w", oci.ErrRefused, err) }
