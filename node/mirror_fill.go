package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/hfapi"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

const (
	// fillDir, in HOME, holds files being downloaded from the upstream.
	fillDir = "fill"
	// swarmLookupTimeout bounds asking peers for a file by sha256 before
	// going to the upstream.
	swarmLookupTimeout = 3 * time.Second
)

// upstreamFiller fills the mirror from an upstream Hugging Face-compatible
// endpoint. Each file is downloaded once, however many clients ask for it
// at the same time; they are all served from the growing download. Bytes
// are checked against the upstream's declared size and hash before they
// are imported and kept; a revision whose files are all kept becomes a
// manifest, seeded like any other model.
type upstreamFiller struct {
	n      *Node
	client *hfapi.Client
	source string
	dir    string

	mu    sync.Mutex
	repos map[string]*hfapi.Repo // kind:name@rev
	jobs  map[string]*fillJob    // by ETag
	cids  map[string]cid.Cid     // ETag → CID of kept files

	// downloads counts upstream file transfers started; fromSwarm counts
	// files found by sha256 among peers instead.
	downloads, fromSwarm atomic.Uint64
	// kept, if set, hears of each revision recorded as a model.
	kept func(manifestCID cid.Cid)
}

func newUpstreamFiller(n *Node, endpoint string) *upstreamFiller {
	return &upstreamFiller{
		n:      n,
		client: hfapi.NewClient(endpoint, nil),
		source: endpoint,
		dir:    filepath.Join(n.cfg.Home, fillDir),
		repos:  map[string]*hfapi.Repo{},
		jobs:   map[string]*fillJob{},
		cids:   map[string]cid.Cid{},
	}
}

// repo returns the upstream's answer for a revision, asked once.
func (u *upstreamFiller) repo(ctx context.Context, kind hfapi.Kind, name, rev string) (*hfapi.Repo, error) {
	key := string(kind) + ":" + name + "@" + rev
	u.mu.Lock()
	r, ok := u.repos[key]
	u.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := u.client.Repo(ctx, kind, name, rev)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.repos[key] = r
	u.mu.Unlock()
	return r, nil
}

// open serves f: from the store once kept, else from its download.
func (u *upstreamFiller) open(ctx context.Context, repo *hfapi.Repo, f hfapi.File) (io.ReadSeekCloser, error) {
	u.mu.Lock()
	if c, ok := u.cids[f.ETag()]; ok {
		u.mu.Unlock()
		return u.n.openCID(ctx, c)
	}
	job, ok := u.jobs[f.ETag()]
	if !ok {
		job = newFillJob(f, filepath.Join(u.dir, f.ETag()+".part"))
		u.jobs[f.ETag()] = job
		go u.run(repo, job)
	}
	job.readers++
	u.mu.Unlock()
	return &growingReader{job: job, release: func() { u.release(job) }}, nil
}

// run downloads, verifies and keeps one file.
func (u *upstreamFiller) run(repo *hfapi.Repo, job *fillJob) {
	ctx := u.n.ctx
	body, err := u.openSource(ctx, repo, job.f)
	if err == nil {
		err = job.download(body)
	}
	var c cid.Cid
	if err == nil {
		c, err = u.keep(ctx, repo, job)
	}
	if err != nil {
		u.n.log.Warn("mirror: upstream fill failed", "path", job.f.Path, "err", err)
	}
	u.mu.Lock()
	if err == nil {
		u.cids[job.f.ETag()] = c
	}
	delete(u.jobs, job.f.ETag())
	job.finish(err)
	u.mu.Unlock()
	if err == nil {
		u.completeRevision(ctx, repo)
	}
}

// openSource opens f's bytes, checked against its declared size and hash:
// from peers that hold a file with its sha256, else from the upstream.
func (u *upstreamFiller) openSource(ctx context.Context, repo *hfapi.Repo, f hfapi.File) (io.ReadCloser, error) {
	if f.SHA256 != "" {
		findCtx, cancel := context.WithTimeout(ctx, swarmLookupTimeout)
		c, _, err := u.n.findSHA256(findCtx, f.SHA256)
		cancel()
		if err == nil {
			if r, err := u.n.openCID(ctx, c); err == nil {
				u.fromSwarm.Add(1)
				return hfapi.NewVerifyingReader(r, f), nil
			}
		}
	}
	u.downloads.Add(1)
	return u.client.Download(ctx, repo, f)
}

// keep imports a verified download into the store and pins it.
func (u *upstreamFiller) keep(ctx context.Context, repo *hfapi.Repo, job *fillJob) (cid.Cid, error) {
	unlock := u.n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	f, err := os.Open(job.path)
	if err != nil {
		return cid.Undef, err
	}
	defer f.Close()
	nd, err := store.BuildFile(ctx, u.n.store.DAG(), f)
	if err != nil {
		return cid.Undef, fmt.Errorf("import %s: %w", job.f.Path, err)
	}
	if err := u.n.store.Pin(ctx, nd.Cid(), repo.Name+"/"+job.f.Path); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// release drops a reader; the last one out removes a finished download.
func (u *upstreamFiller) release(job *fillJob) {
	u.mu.Lock()
	defer u.mu.Unlock()
	job.readers--
	if job.readers == 0 && job.isDone() {
		os.Remove(job.path)
	}
}

// completeRevision records a manifest once every file of repo is kept, so
// the revision is served from the store and seeded over libp2p.
func (u *upstreamFiller) completeRevision(ctx context.Context, repo *hfapi.Repo) {
	files := make([]manifest.File, 0, len(repo.Files))
	u.mu.Lock()
	for _, f := range repo.Files {
		c, ok := u.cids[f.ETag()]
		if !ok {
			u.mu.Unlock()
			return
		}
		files = append(files, manifest.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256, BlobSHA1: f.BlobSHA1, CID: c.String()})
	}
	u.mu.Unlock()
	mc, err := u.n.recordFilled(ctx, repo, files, u.source)
	if err != nil {
		u.n.log.Warn("mirror: could not record filled revision", "name", repo.Name, "err", err)
		return
	}
	if u.kept != nil && mc.Defined() {
		u.kept(mc)
	}
}

// recordFilled builds the directory DAG of files, then stores, pins and
// indexes a manifest keeping the upstream's commit id. It returns the
// manifest's CID, or cid.Undef if the revision was recorded before.
func (n *Node) recordFilled(ctx context.Context, repo *hfapi.Repo, files []manifest.File, source string) (cid.Cid, error) {
	if n.models == nil {
		return cid.Undef, errors.New("no model index")
	}
	if _, ok := n.models.byName(repo.Name, repo.Commit); ok {
		return cid.Undef, nil
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	root, err := buildDirectory(ctx, n.store.DAG(), files)
	if err != nil {
		return cid.Undef, err
	}
	m := &manifest.Manifest{Version: manifest.Version, Kind: string(repo.Kind), Name: repo.Name, Revision: repo.Revision,
		Commit: repo.Commit, License: repo.License, Source: source, Root: root.String(), Files: files}
	if err := m.Validate(); err != nil {
		return cid.Undef, err
	}
	if err := n.store.Pin(ctx, root, repo.Name+"@"+repo.Revision); err != nil {
		return cid.Undef, err
	}
	return n.storeManifest(ctx, m)
}

// buildDirectory assembles a UnixFS directory tree over files' CIDs.
func buildDirectory(ctx context.Context, dag ipld.DAGService, files []manifest.File) (cid.Cid, error) {
	type tree struct {
		files map[string]cid.Cid
		dirs  map[string]*tree
	}
	newTree := func() *tree { return &tree{files: map[string]cid.Cid{}, dirs: map[string]*tree{}} }
	top := newTree()
	for _, f := range files {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return cid.Undef, err
		}
		parts := strings.Split(f.Path, "/")
		t := top
		for _, d := range parts[:len(parts)-1] {
			if t.dirs[d] == nil {
				t.dirs[d] = newTree()
			}
			t = t.dirs[d]
		}
		t.files[parts[len(parts)-1]] = c
	}
	var build func(t *tree) (ipld.Node, error)
	build = func(t *tree) (ipld.Node, error) {
		dir, err := uio.NewDirectory(dag, uio.WithCidBuilder(uio.UnixFS_v1_2025.CidBuilder()))
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(t.files)+len(t.dirs))
		for name := range t.files {
			names = append(names, name)
		}
		for name := range t.dirs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			var child ipld.Node
			if sub, ok := t.dirs[name]; ok {
				child, err = build(sub)
			} else {
				child, err = dag.Get(ctx, t.files[name])
			}
			if err != nil {
				return nil, err
			}
			if err := dir.AddChild(ctx, name, child); err != nil {
				return nil, err
			}
		}
		nd, err := dir.GetNode()
		if err != nil {
			return nil, err
		}
		return nd, dag.Add(ctx, nd)
	}
	nd, err := build(top)
	if err != nil {
		return cid.Undef, fmt.Errorf("build directory: %w", err)
	}
	return nd.Cid(), nil
}

// openCID returns a seekable reader over a UnixFS file.
func (n *Node) openCID(ctx context.Context, c cid.Cid) (io.ReadSeekCloser, error) {
	nd, err := n.dag.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return uio.NewDagReader(ctx, nd, n.dag)
}

// fillJob is one file being downloaded from the upstream.
type fillJob struct {
	f    hfapi.File
	path string

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	done    bool
	err     error
	readers int // guarded by upstreamFiller.mu
}

func newFillJob(f hfapi.File, path string) *fillJob {
	j := &fillJob{f: f, path: path}
	j.cond = sync.NewCond(&j.mu)
	return j
}

// download copies body (a verifying reader) to j.path, waking readers as
// bytes land; a size or hash mismatch fails it.
func (j *fillJob) download(body io.ReadCloser) error {
	defer body.Close()
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	out, err := os.Create(j.path)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", j.path, err)
			}
			j.mu.Lock()
			j.written += int64(n)
			j.cond.Broadcast()
			j.mu.Unlock()
		}
		if errors.Is(rerr, io.EOF) {
			return out.Sync()
		}
		if rerr != nil {
			return rerr
		}
	}
}

func (j *fillJob) finish(err error) {
	j.mu.Lock()
	j.done, j.err = true, err
	j.cond.Broadcast()
	j.mu.Unlock()
}

func (j *fillJob) isDone() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.done
}

// waitFor blocks until byte off is written, the job ends or ctx ends
// (the caller's request). It returns how many bytes are readable.
func (j *fillJob) waitFor(off int64) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.written <= off && !j.done {
		j.cond.Wait()
	}
	if j.err != nil {
		return 0, j.err
	}
	return j.written, nil
}

// growingReader reads a fillJob's file while it is being written. Its size
// is the declared size, so range requests work before the end arrives.
type growingReader struct {
	job     *fillJob
	f       *os.File
	off     int64
	release func()
}

func (g *growingReader) Read(p []byte) (int, error) {
	size := int64(g.job.f.Size)
	if g.off >= size {
		return 0, io.EOF
	}
	avail, err := g.job.waitFor(g.off)
	if err != nil {
		return 0, err
	}
	if g.f == nil {
		if g.f, err = os.Open(g.job.path); err != nil {
			return 0, err
		}
	}
	p = p[:min(int64(len(p)), avail-g.off)]
	n, err := g.f.ReadAt(p, g.off)
	g.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (g *growingReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += g.off
	case io.SeekEnd:
		offset += int64(g.job.f.Size)
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	g.off = offset
	return offset, nil
}

func (g *growingReader) Close() error {
	if g.f != nil {
		g.f.Close()
	}
	g.release()
	return nil
}
