package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/mirror/growing"
	"github.com/allmende/allmende/node/mirror/hfapi"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/policy/provenance"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// swarmLookupTimeout bounds asking peers for a file by sha256 before going
// to the upstream.
const swarmLookupTimeout = 3 * time.Second

// upstreamFiller fills the mirror from an upstream Hugging Face-compatible
// endpoint. Each file is downloaded once, however many clients ask for it
// at the same time; they are all served from the growing download. Bytes
// are checked against the upstream's declared size and hash before they
// are imported and kept; a revision whose files are all kept becomes a
// manifest, seeded like any other model.
//
// Every fill reserves its room first (see quota.go); a client has at
// most mirror.fills_per_client fills going (see clients.go).
type upstreamFiller struct {
	mr     *Mirror
	client *hfapi.Client
	source string
	dir    string
	// stall aborts a fill that delivered nothing for this long.
	stall time.Duration
	// repos remembers the upstream's answers for mirror.upstream_ttl.
	repos *repoCache
	quota *mirrorQuota
	cache *mirrorCache
	fills *clientFills
	// dag reads files found among peers by sha256 through the mirror's
	// block service, which keeps their blocks only within the quota.
	dag ipld.DAGService

	mu        sync.Mutex
	jobs      map[string]*fillJob // by ETag
	keptFiles map[string]keptFile // by ETag

	// downloads counts upstream file transfers started; fromSwarm counts
	// files found by sha256 among peers instead.
	downloads, fromSwarm atomic.Uint64
}

func newUpstreamFiller(mr *Mirror, endpoint string, quota *mirrorQuota, fills *clientFills, dag ipld.DAGService) (*upstreamFiller, error) {
	client, err := hfapi.NewClient(endpoint, hfapi.Options{Log: mr.log, Token: mr.cfg.UpstreamToken,
		UserAgent: UserAgent(mr.cfg.Version), Stall: mr.cfg.StallTimeout,
		Retries: mr.cfg.UpstreamRetries, RetryWait: mr.cfg.RetryWait})
	if err != nil {
		return nil, api.BadInput(fmt.Errorf("mirror.upstream: %w", err))
	}
	u := &upstreamFiller{
		mr:        mr,
		client:    client,
		source:    endpoint,
		dir:       home.Dir(mr.cfg.Home).Fills(),
		stall:     mr.cfg.StallTimeout,
		quota:     quota,
		cache:     quota.cache,
		fills:     fills,
		dag:       dag,
		jobs:      map[string]*fillJob{},
		keptFiles: map[string]keptFile{},
	}
	u.repos = newRepoCache(mr.ctx, mr.cfg.UpstreamTTL, func(ctx context.Context, kind hfapi.Kind, name, rev, token string) (*hfapi.Repo, error) {
		if token != "" {
			ctx = hfapi.WithToken(ctx, token)
		}
		r, err := client.Repo(ctx, kind, name, rev)
		if err != nil {
			return nil, upstreamError(err)
		}
		return r, nil
	})
	u.removeParts()
	u.loadKept()
	return u, nil
}

// removeParts deletes the files of fills a crash or kill cut short; no
// fill runs yet when the filler starts.
func (u *upstreamFiller) removeParts() {
	parts, _ := filepath.Glob(filepath.Join(u.dir, "*"+home.FillPartSuffix))
	for _, p := range parts {
		if err := os.Remove(p); err != nil {
			u.mr.log.Warn("mirror: could not remove an unfinished fill", "path", p, "err", err)
			continue
		}
		u.mr.log.Info("mirror: removed an unfinished fill", "path", p)
	}
}

// loadKept reads the ETag → CID index of files kept before a restart.
// Entries are trusted only while their CID stays pinned (see keptCID).
func (u *upstreamFiller) loadKept() {
	raw, err := os.ReadFile(home.Dir(u.mr.cfg.Home).FillKept())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			u.mr.log.Warn("mirror: kept-files index unreadable; files fill again", "err", err)
		}
		return
	}
	if err := json.Unmarshal(raw, &u.keptFiles); err != nil {
		u.mr.log.Warn("mirror: kept-files index unreadable; files fill again", "err", err)
		u.keptFiles = map[string]keptFile{}
	}
}

// saveKeptLocked writes the kept-files index atomically; u.mu is held.
func (u *upstreamFiller) saveKeptLocked() error {
	raw, err := json.Marshal(u.keptFiles)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return fmt.Errorf("kept-files index: %w", err)
	}
	return fsutil.WriteFileAtomic(home.Dir(u.mr.cfg.Home).FillKept(), raw, 0o600)
}

// keptFile is a filled file in the store.
type keptFile struct {
	CID cid.Cid `json:"cid"`
	// SHA256 is the content's sha256, computed on import: the upstream
	// declares it only for LFS files, a manifest needs it for every file.
	SHA256 string `json:"sha256"`
}

// keptLocked returns how a file was kept, if it is still pinned (a quota
// may have evicted it since); u.mu is held.
func (u *upstreamFiller) keptLocked(ctx context.Context, etag string) (keptFile, bool) {
	k, ok := u.keptFiles[etag]
	if !ok || !k.CID.Defined() || !manifest.IsSHA256(k.SHA256) {
		return keptFile{}, false
	}
	if pinned, err := u.mr.store.IsPinned(ctx, k.CID); err != nil || !pinned {
		delete(u.keptFiles, etag)
		return keptFile{}, false
	}
	return k, true
}

// repo returns the upstream's answer for a revision (see repoCache), read
// with the mirror's token (mirror.upstream_token). A gated or private
// repository is answered only to a client that sent a token the upstream
// accepts for it, unless mirror.serve_gated allows every client what the
// mirror's token reads; the client's token is sent to the upstream only
// for such a repository, or one the mirror's token cannot read.
func (u *upstreamFiller) repo(ctx context.Context, kind hfapi.Kind, name, rev string) (*hfapi.Repo, error) {
	r, err := u.repos.get(ctx, kind, name, rev, "")
	switch {
	case err == nil && (!r.Gated || u.mr.cfg.ServeGated):
		return r, nil
	case err != nil && !errors.Is(err, hfapi.ErrRepoNotFound) && !errors.Is(err, hfapi.ErrGated):
		return nil, err
	}
	token := hfapi.ClientToken(ctx)
	if token == "" {
		if err == nil {
			err = hfapi.ErrGated
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cr, cerr := u.repos.get(ctx, kind, name, rev, token)
	if errors.Is(cerr, hfapi.ErrRepoNotFound) && err == nil {
		cerr = hfapi.ErrGated // the mirror reads it, the client's token does not
	}
	if cerr != nil {
		return nil, fmt.Errorf("%s with the client's token: %w", name, cerr)
	}
	if err == nil {
		return r, nil // filled with the mirror's token
	}
	gated := *cr // shared with other requests of this token: not changed
	gated.Gated = true
	return &gated, nil
}

// upstreamError marks a failure to get bytes from the upstream as
// hfapi.ErrUpstream (502), keeping the hub's not-found answers as they are.
func upstreamError(err error) error {
	for _, keep := range []error{hfapi.ErrRepoNotFound, hfapi.ErrRevisionNotFound, hfapi.ErrEntryNotFound,
		hfapi.ErrUpstream, hfapi.ErrUpstreamTimeout, hfapi.ErrMismatch, hfapi.ErrBadRequest, hfapi.ErrRefused, context.Canceled} {
		if errors.Is(err, keep) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", hfapi.ErrUpstream, err)
}

// open serves f: from the store once kept, else from its download. It
// waits for the download's first byte, so that a fill failing at once (an
// upstream down, stalled or answering an error) is an HTTP error status,
// not a 200 cut short. Waiting on a download takes one of the client's
// fill slots.
func (u *upstreamFiller) open(ctx context.Context, repo *hfapi.Repo, f hfapi.File) (io.ReadSeekCloser, error) {
	if k, ok := u.kept(ctx, f.ETag()); ok {
		return u.mr.openCID(ctx, k.CID)
	}
	slot, err := u.fills.acquire(ctx)
	if err != nil {
		return nil, err
	}
	job, k, err := u.join(ctx, repo, f)
	if err != nil || job == nil {
		slot()
		if err != nil {
			return nil, err
		}
		return u.mr.openCID(ctx, k.CID)
	}
	if _, err := job.WaitFor(ctx, 0); err != nil {
		u.release(job)
		slot()
		return nil, err
	}
	return job.Reader(ctx, func() { u.release(job); slot() }), nil
}

// kept returns how f was kept, if it was, and records the use.
func (u *upstreamFiller) kept(ctx context.Context, etag string) (keptFile, bool) {
	u.mu.Lock()
	k, ok := u.keptLocked(ctx, etag)
	u.mu.Unlock()
	if ok {
		u.cache.touch(k.CID.String())
	}
	return k, ok
}

// join returns the download of f as a reader of it, starting one (with its
// room reserved) if none runs; or, if f was kept meanwhile, a nil job and
// how it was kept.
func (u *upstreamFiller) join(ctx context.Context, repo *hfapi.Repo, f hfapi.File) (*fillJob, keptFile, error) {
	var res *reservation
	for {
		u.mu.Lock()
		if k, ok := u.keptLocked(ctx, f.ETag()); ok {
			u.mu.Unlock()
			res.release()
			return nil, k, nil
		}
		if job, ok := u.jobs[f.ETag()]; ok {
			job.readers++
			u.mu.Unlock()
			res.release()
			return job, keptFile{}, nil
		}
		if res != nil {
			job := newFillJob(f, u.dir, res)
			job.readers++
			u.jobs[f.ETag()] = job
			u.mu.Unlock()
			go u.run(repo, job)
			return job, keptFile{}, nil
		}
		u.mu.Unlock()
		var err error
		if res, err = u.reserve(ctx, f); err != nil {
			return nil, keptFile{}, fmt.Errorf("fill %s: %w", f.Path, err)
		}
	}
}

// reserve holds room for filling f: its size (and DAG) under the quota,
// unless it is for mirror.pins, and twice that on the disk for the
// download file and the import.
func (u *upstreamFiller) reserve(ctx context.Context, f hfapi.File) (*reservation, error) {
	imported := storeBytes(f.Size)
	quota := imported
	if pinned, _ := ctx.Value(pinnedFillKey{}).(bool); pinned {
		quota = 0
	}
	return u.quota.reserve(ctx, quota, f.Size+imported, reserveWait)
}

// run downloads, verifies and keeps one file.
func (u *upstreamFiller) run(repo *hfapi.Repo, job *fillJob) {
	err := u.download(repo, job)
	var k keptFile
	if err == nil {
		k, err = u.keep(u.mr.ctx, repo, job)
	}
	job.res.releaseQuota() // the import is in the store now, or failed
	if err != nil {
		u.mr.log.Warn("mirror: upstream fill failed; the next request tries again", "path", job.f.Path, "err", err)
	}
	u.mu.Lock()
	if err == nil {
		u.keptFiles[job.f.ETag()] = k
		if serr := u.saveKeptLocked(); serr != nil {
			u.mr.log.Warn("mirror: could not save the kept-files index", "err", serr)
		}
	}
	delete(u.jobs, job.f.ETag())
	job.Finish(err)
	if job.readers == 0 {
		job.removeFile()
	}
	u.mu.Unlock()
	if err == nil {
		u.completeRevision(u.mr.ctx, repo)
	}
}

// download writes f's bytes, checked against its declared size and hash,
// to job's file. Peers that hold a file with f's sha256 are asked first;
// what they send is held back from readers until it is verified whole, so
// a peer naming other content of the same size never reaches a client,
// and if they fail, the upstream sends the file from its first byte (a
// resume never splices the upstream's bytes onto a peer's). The upstream's
// download resumes across drops and stalls (see hfapi.Client.Download).
func (u *upstreamFiller) download(repo *hfapi.Repo, job *fillJob) error {
	if err := u.downloadFromPeers(job); err == nil || u.mr.ctx.Err() != nil {
		return err
	} else if !errors.Is(err, errNoPeers) {
		u.mr.log.Warn("mirror: fill from peers failed; asking the upstream", "path", job.f.Path, "err", err)
		if err := job.Reset(); err != nil {
			return fmt.Errorf("%w: %w", hfapi.ErrUpstream, err)
		}
	}
	u.downloads.Add(1)
	body, err := u.client.Download(u.mr.ctx, repo, job.f) // with the token repo was read with
	if err != nil {
		return upstreamError(err)
	}
	return job.Download(body, func() {}, upstreamError)
}

// errNoPeers: no peer offered a file by its sha256.
var errNoPeers = errors.New("no peer holds the file")

// downloadFromPeers fills job from peers holding a file with its sha256,
// aborting after u.stall without a byte. OpenSHA256 checks size and
// sha256 itself and bans a peer that named other content, so the next fill
// asks the next source.
func (u *upstreamFiller) downloadFromPeers(job *fillJob) error {
	if job.f.SHA256 == "" {
		return errNoPeers
	}
	ctx, cancel := context.WithCancelCause(u.mr.ctx)
	defer cancel(nil)
	findCtx, stop := context.WithTimeout(ctx, swarmLookupTimeout)
	body, err := u.mr.models.OpenSHA256(findCtx, ctx, u.dag, job.f.SHA256, job.f.Size, hfapi.ErrMismatch)
	stop()
	if err != nil {
		return errNoPeers
	}
	u.fromSwarm.Add(1)
	stalled := fmt.Errorf("%s: %w: no byte from peers for %s (mirror.stall_timeout)", job.f.Path, hfapi.ErrUpstreamTimeout, u.stall)
	watch := time.AfterFunc(u.stall, func() { cancel(stalled) })
	defer watch.Stop()
	err = job.DownloadHeld(body, func() { watch.Reset(u.stall) }, upstreamError)
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx) // the stall, or the daemon stopping
	}
	return err
}

// keep imports a verified download into the store and pins it, recording
// it in the mirror cache first (see mirrorCache).
func (u *upstreamFiller) keep(ctx context.Context, repo *hfapi.Repo, job *fillJob) (keptFile, error) {
	unlock := u.mr.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	f, err := os.Open(job.Path())
	if err != nil {
		return keptFile{}, fmt.Errorf("import %s: %w", job.f.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	nd, err := store.BuildFile(ctx, u.mr.store.LocalDAG(), io.TeeReader(f, h))
	if err != nil {
		return keptFile{}, fmt.Errorf("import %s: %w", job.f.Path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if job.f.SHA256 != "" && sum != job.f.SHA256 {
		return keptFile{}, fmt.Errorf("import %s: %w: the file changed on disk after it was checked", job.f.Path, hfapi.ErrMismatch)
	}
	entry := cacheEntry{Kind: cachedFile, Name: repo.Name, Revision: repo.Revision, Commit: repo.Commit, Path: job.f.Path, Size: storeBytes(job.f.Size)}
	settle, err := u.cache.add(nd.Cid().String(), entry)
	if err != nil {
		return keptFile{}, err
	}
	defer settle()
	if err := u.mr.store.Pin(ctx, nd.Cid(), repo.Name+"/"+job.f.Path); err != nil {
		return keptFile{}, err
	}
	return keptFile{CID: nd.Cid(), SHA256: sum}, nil
}

// release drops a reader; the last one out removes a finished download
// (and gives back its room).
func (u *upstreamFiller) release(job *fillJob) {
	u.mu.Lock()
	defer u.mu.Unlock()
	job.readers--
	if job.readers == 0 && job.Done() {
		job.removeFile()
	}
}

// completeRevision records a manifest once every file of repo is kept, so
// the revision is served from the store and seeded over libp2p; never for
// a gated or private repository, whose files are served only through
// repo's checks.
func (u *upstreamFiller) completeRevision(ctx context.Context, repo *hfapi.Repo) {
	if repo.Gated {
		return // a model is served to every client and seeded to peers
	}
	files := make([]manifest.File, 0, len(repo.Files))
	u.mu.Lock()
	for _, f := range repo.Files {
		k, ok := u.keptLocked(ctx, f.ETag())
		if !ok {
			u.mu.Unlock()
			return
		}
		files = append(files, manifest.File{Path: f.Path, Size: f.Size, SHA256: k.SHA256, BlobSHA1: f.BlobSHA1, CID: k.CID.String()})
	}
	u.mu.Unlock()
	if _, err := u.mr.recordFilled(ctx, repo, files, u.source, u.cache); err != nil {
		u.mr.log.Warn("mirror: could not record filled revision", "name", repo.Name, "err", err)
	}
}

// recordFilled builds the directory DAG of files, then stores, pins and
// indexes a manifest keeping the upstream's commit id, as a model in
// cache. It returns the manifest's CID, or cid.Undef if the revision was
// recorded before.
//
// Either way it signs what it filled (see signFill).
func (mr *Mirror) recordFilled(ctx context.Context, repo *hfapi.Repo, files []manifest.File, source string, cache *mirrorCache) (cid.Cid, error) {
	if mc, ok := mr.models.Index().ByName(repo.Name, repo.Commit); ok {
		if m, err := models.ReadManifest(ctx, mr.store.LocalDAG(), mc); err == nil {
			mr.signFill(mc, m, repo, source)
		}
		return cid.Undef, nil
	}
	unlock := mr.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	entries := make([]ufs.Entry, 0, len(files))
	for _, f := range files {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return cid.Undef, err
		}
		entries = append(entries, ufs.Entry{Path: f.Path, CID: c})
	}
	root, err := ufs.BuildDirectory(ctx, mr.store.LocalDAG(), entries)
	if err != nil {
		return cid.Undef, err
	}
	m := &manifest.Manifest{Version: manifest.Version, Kind: string(repo.Kind), Name: repo.Name, Revision: repo.Revision,
		Commit: repo.Commit, License: repo.License, Source: source, Root: root.String(), Files: files}
	if err := m.Validate(); err != nil {
		return cid.Undef, err
	}
	mc, err := mr.keepModel(ctx, m, cache)
	if err == nil {
		mr.signFill(mc, m, repo, source)
	}
	return mc, err
}

// signFill signs an attestation that the manifest m (stored as mc) is
// repo as the upstream at source served it, and a name record for the
// revision asked for (models.Registry.SignFill). A failure is logged: the
// fill stands without them.
func (mr *Mirror) signFill(mc cid.Cid, m *manifest.Manifest, repo *hfapi.Repo, source string) {
	up := provenance.Upstream{URL: source, Kind: m.Kind, Name: m.Name, Commit: m.Commit}
	if repo.Revision != m.Commit {
		up.Revision = repo.Revision
	}
	if err := mr.models.SignFill(mc, m, up); err != nil {
		mr.log.Warn("mirror: the filled revision is not signed", "name", m.Name, "rev", repo.Revision, "err", err)
	}
}

// openCID returns a seekable reader over a UnixFS file, through the
// node's network DAG.
func (mr *Mirror) openCID(ctx context.Context, c cid.Cid) (io.ReadSeekCloser, error) {
	return ufs.Open(ctx, mr.cfg.Net, c)
}

// fillJob is one file being downloaded from the upstream or peers.
type fillJob struct {
	*growing.File
	f hfapi.File
	// res is the room reserved for the fill: its quota part goes once the
	// import is done, the rest with the download file.
	res     *reservation
	readers int // guarded by upstreamFiller.mu
}

func newFillJob(f hfapi.File, dir string, res *reservation) *fillJob {
	return &fillJob{File: growing.New(f.Path, int64(f.Size), dir, f.ETag()+".*"+home.FillPartSuffix), f: f, res: res}
}

// removeFile deletes the job's file once nobody reads it, and gives back
// the room reserved for the fill.
func (j *fillJob) removeFile() {
	j.Remove()
	j.res.release()
}
