package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// hfBackend serves the Hugging Face-compatible API from the models this node
// holds, from names resolved in the swarm (read block by block as clients
// ask, then kept and seeded), and, if mirror.upstream is set, from an
// upstream Hugging Face-compatible endpoint (see fill.go).
type hfBackend struct {
	mr       *Mirror
	upstream *upstreamFiller // nil without mirror.upstream
	cache    *mirrorCache
	quota    *mirrorQuota
	fills    *clientFills
	whole    *wholeFiles
	// dag reads through the mirror's block service: blocks it fetches from
	// peers are kept only within the quota (see quotaBlockstore).
	dag ipld.DAGService

	mu      sync.Mutex
	seeding map[string]bool // manifest roots being made local
}

var _ hfapi.Backend = (*hfBackend)(nil)

// Repo implements hfapi.Backend. A revision the mirror holds is answered
// from the store; but a branch or tag filled from the upstream is the
// upstream's to move, so while the upstream answers with another commit
// (asked at most every mirror.upstream_ttl), that commit is served.
//
// The node's policy applies first: a name a denylist blocks, a model whose
// licence, CIDs or files it refuses, and a fill of a licence the policy
// does not pass on are hfapi.ErrRefused (451).
func (b *hfBackend) Repo(ctx context.Context, kind hfapi.Kind, name, rev string) (*hfapi.Repo, error) {
	g := b.mr.cfg.Gate
	if err := g.Name(name, policy.SurfaceHF); err != nil {
		return nil, refused(err)
	}
	if mc, m, err := b.localManifest(ctx, name, rev); err == nil {
		if r := b.moved(ctx, m, kind, rev); r != nil {
			if err := b.fillAllowed(r); err != nil {
				return nil, err
			}
			return r, nil
		}
		if err := g.Manifest(m, mc, policy.SurfaceHF); err != nil {
			return nil, refused(err)
		}
		b.cache.touch(mc.String())
		return repoOf(m, kind)
	}
	if m, rn, err := b.mr.models.ResolveManifest(ctx, name+"@"+rev, false, 0, new(atomic.Uint64)); err == nil {
		mc, _ := cid.Decode(rn.Record.Manifest)
		if err := g.Manifest(m, mc, policy.SurfaceHF); err != nil {
			return nil, refused(err)
		}
		b.seed(m)
		return repoOf(m, kind)
	} else {
		b.mr.log.Debug("mirror: not in the swarm", "name", name, "rev", rev, "err", err)
	}
	if b.upstream != nil {
		r, err := b.upstream.repo(ctx, kind, name, rev)
		if err == nil {
			err = b.fillAllowed(r)
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	if b.holdsRepo(ctx, kind, name) { // as the hub: clients then name the revision as what is wrong
		return nil, fmt.Errorf("%s@%s: %w", name, rev, hfapi.ErrRevisionNotFound)
	}
	return nil, fmt.Errorf("%s@%s: %w", name, rev, hfapi.ErrRepoNotFound)
}

// fillAllowed refuses filling r from the upstream if the policy refuses
// its licence or one of its files' sha256s.
func (b *hfBackend) fillAllowed(r *hfapi.Repo) error {
	g := b.mr.cfg.Gate
	if err := g.License(r.License, r.Name, policy.SurfaceFill); err != nil {
		return refused(err)
	}
	for _, f := range r.Files {
		if err := g.SHA256(f.SHA256, r.Name+"/"+f.Path, policy.SurfaceFill); err != nil {
			return refused(err)
		}
	}
	return nil
}

// refused marks a refusal of the node's policy as the hub API's 451.
func refused(err error) error { return fmt.Errorf("%w: %w", hfapi.ErrRefused, err) }

// holdsRepo reports whether this node holds some revision of the
// repository name of this kind.
func (b *hfBackend) holdsRepo(ctx context.Context, kind hfapi.Kind, name string) bool {
	for _, c := range b.mr.models.Index().Revisions(name) {
		if m, err := models.ReadManifest(ctx, b.mr.store.LocalDAG(), c); err == nil {
			if _, err := repoOf(m, kind); err == nil {
				return true
			}
		}
	}
	return false
}

// moved returns the upstream's revision rev if m, held locally, was filled
// from the upstream as rev and the upstream now names another commit; nil
// otherwise, also when the upstream does not answer within upstreamRecheck.
func (b *hfBackend) moved(ctx context.Context, m *manifest.Manifest, kind hfapi.Kind, rev string) *hfapi.Repo {
	if b.upstream == nil || m.Source != b.upstream.source || rev == m.Commit {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamRecheck)
	defer cancel()
	up, err := b.upstream.repo(ctx, kind, m.Name, rev)
	if err != nil {
		b.mr.log.Debug("mirror: upstream not asked whether it moved a revision", "name", m.Name, "rev", rev, "err", err)
		return nil
	}
	if up.Commit == m.Commit {
		return nil
	}
	if mc, held, err := b.localManifest(ctx, m.Name, up.Commit); err == nil {
		if r, err := repoOf(held, kind); err == nil {
			b.cache.touch(mc.String())
			return r
		}
	}
	return up
}

// errNotHeld: the mirror holds no manifest for a revision.
var errNotHeld = errors.New("revision not held")

// localManifest returns a manifest this node holds for name@rev (rev may
// also be the commit id), or errNotHeld.
func (b *hfBackend) localManifest(ctx context.Context, name, rev string) (cid.Cid, *manifest.Manifest, error) {
	c, ok := b.mr.models.Index().ByName(name, rev)
	if !ok {
		return cid.Undef, nil, errNotHeld
	}
	m, err := models.ReadManifest(ctx, b.mr.store.LocalDAG(), c)
	return c, m, err
}

// repoOf presents a manifest as a hub repository. A manifest of the other
// kind does not exist at this URL.
func repoOf(m *manifest.Manifest, kind hfapi.Kind) (*hfapi.Repo, error) {
	if m.Kind != "" && hfapi.Kind(m.Kind) != kind {
		return nil, fmt.Errorf("%s is a %s: %w", m.Name, m.Kind, hfapi.ErrRepoNotFound)
	}
	r := &hfapi.Repo{Kind: kind, Name: m.Name, Revision: m.Revision, Commit: m.Commit, License: m.License}
	for _, f := range m.Files {
		r.Files = append(r.Files, hfapi.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256, BlobSHA1: f.BlobSHA1, Ref: f.CID})
	}
	return r, nil
}

// seed fetches a manifest resolved from the swarm, and everything it names,
// in the background, then keeps it so this node seeds it too, within the
// quota: its size is reserved first, and without room it is not kept
// (clients are still served, block by block).
func (b *hfBackend) seed(m *manifest.Manifest) {
	b.mu.Lock()
	if b.seeding[m.Root] {
		b.mu.Unlock()
		return
	}
	b.seeding[m.Root] = true
	b.mu.Unlock()
	go func() {
		defer func() {
			b.mu.Lock()
			delete(b.seeding, m.Root)
			b.mu.Unlock()
		}()
		size := storeBytes(modelEntry(m).Size)
		res, err := b.quota.reserve(b.mr.ctx, size, size, 0)
		if err != nil {
			b.mr.log.Info("mirror: model served from the swarm but not kept", "name", m.Name, "rev", m.Revision, "err", err)
			return
		}
		defer res.release()
		if _, err := b.mr.keepManifest(b.mr.ctx, m, b.cache); err != nil {
			b.mr.log.Warn("mirror: could not keep model", "name", m.Name, "rev", m.Revision, "err", err)
		}
	}()
}

// keepManifest makes m's files local, pins them and indexes m as a model
// the mirror keeps in cache; it returns the manifest's CID.
func (mr *Mirror) keepManifest(ctx context.Context, m *manifest.Manifest, cache *mirrorCache) (cid.Cid, error) {
	root, err := cid.Decode(m.Root)
	if err != nil {
		return cid.Undef, err
	}
	unlock := mr.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	if err := mr.fetch.FetchDAG(ctx, root, 0); err != nil {
		return cid.Undef, err
	}
	return mr.keepModel(ctx, m, cache)
}

// Open implements hfapi.Backend: the file on disk that holds the content
// whole, if there is one and it is unchanged since verified (an *os.File,
// which net/http sends with sendfile); otherwise a seekable reader over the
// file's DAG, whose blocks are re-hashed as read and, if not yet local,
// fetched from peers as the reader reaches them (which takes one of the
// client's fill slots, and keeps the blocks only within the quota).
func (b *hfBackend) Open(ctx context.Context, repo *hfapi.Repo, f hfapi.File) (io.ReadSeekCloser, error) {
	if err := b.mr.cfg.Gate.SHA256(f.SHA256, repo.Name+"/"+f.Path, policy.SurfaceHF); err != nil {
		return nil, refused(err)
	}
	if f.Ref == "" && b.upstream != nil {
		return b.upstream.open(ctx, repo, f)
	}
	c, err := cid.Decode(f.Ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := b.mr.cfg.Gate.CID(c, policy.SurfaceHF); err != nil {
		return nil, refused(err)
	}
	if fh := b.whole.open(ctx, c, f.Size); fh != nil {
		return fh, nil
	}
	slot := func() {}
	if has, err := b.mr.store.Blockstore().Has(ctx, c); err != nil || !has {
		if slot, err = b.fills.acquire(ctx); err != nil {
			return nil, err
		}
	}
	r, err := ufs.Open(ctx, b.dag, c)
	if err != nil {
		slot()
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return &releasingReader{ReadSeekCloser: r, release: slot}, nil
}

// releasingReader calls release once, when it is closed.
type releasingReader struct {
	io.ReadSeekCloser
	release func()
	once    sync.Once
}

func (r *releasingReader) Close() error {
	err := r.ReadSeekCloser.Close()
	r.once.Do(r.release)
	return err
}
