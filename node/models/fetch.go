package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ParseModelRef splits org/name[@revision] (revision defaults to main).
func ParseModelRef(ref string) (name, rev string, err error) {
	name, rev, _ = strings.Cut(ref, "@")
	if rev == "" {
		rev = "main"
	}
	if err := manifest.ValidName(name); err != nil {
		return "", "", api.BadInput(err)
	}
	if err := manifest.ValidRevision(rev); err != nil {
		return "", "", api.BadInput(err)
	}
	return name, rev, nil
}

// ParseSHA256Ref returns the hex digest of sha256:<hex>.
func ParseSHA256Ref(ref string) (string, error) {
	sum := strings.ToLower(strings.TrimPrefix(ref, api.SHA256Prefix))
	if !manifest.IsSHA256(sum) {
		return "", fmt.Errorf("%w: %q is not sha256:<64 hex digits>", api.ErrBadInput, ref)
	}
	return sum, nil
}

// FetchModel fetches a model by name (resolved through signed records) or
// one file by whole-file sha256, checking every file against its sha256 as
// well as every block against its CID.
func (reg *Registry) FetchModel(ctx context.Context, req api.ModelFetchRequest, progress api.ProgressFunc) (api.ModelFetchResult, error) {
	start := time.Now()
	if req.Timeout <= 0 {
		req.Timeout = reg.timeout
	}
	if err := checkOut(req); err != nil {
		return api.ModelFetchResult{}, err
	}
	unlock := reg.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	var res api.ModelFetchResult
	var err error
	var received atomic.Uint64
	if strings.HasPrefix(req.Ref, api.SHA256Prefix) {
		res, err = reg.fetchBySHA256(ctx, req, progress, &received)
	} else {
		res, err = reg.fetchByName(ctx, req, progress, &received)
	}
	if err != nil {
		return res, err
	}
	res.Received, res.Seconds = received.Load(), time.Since(start).Seconds()
	return res, nil
}

func checkOut(req api.ModelFetchRequest) error {
	if req.OllamaStore != "" {
		return ollamaStoreDir(req.OllamaStore)
	}
	if req.HFCache != "" {
		if !filepath.IsAbs(req.HFCache) {
			return fmt.Errorf("fetch: %w: cache directory must be absolute", api.ErrBadInput)
		}
		return nil
	}
	return fetch.CheckOutput(req.Ref, req.Out)
}

// maxSHA256Sources bounds the distinct file CIDs one sha256 fetch tries.
const maxSHA256Sources = 16

// sha256Source is one answer to "which file has this sha256": a file CID,
// the size claimed for it, and the peers that gave it (none: this node's
// own index).
type sha256Source struct {
	c     cid.Cid
	size  uint64
	peers []peer.ID
}

// findSHA256 resolves a whole-file sha256 to a file CID: locally, then by
// asking connected peers, then through the DHT (see sha256.go). The
// answer is a claim; fetchBySHA256 checks it and moves on to the next.
func (reg *Registry) findSHA256(ctx context.Context, sum string) (cid.Cid, uint64, error) {
	for _, lookup := range []func(context.Context, string) []sha256Source{reg.sha256Sources, reg.sha256SourcesInDHT} {
		if srcs := lookup(ctx, sum); len(srcs) > 0 {
			return srcs[0].c, srcs[0].size, nil
		}
	}
	return cid.Undef, 0, errNoSHA256(sum)
}

func errNoSHA256(sum string) error {
	return fmt.Errorf("sha256:%s: %w: no connected peer (nor the DHT) has a file with this sha256", sum, api.ErrNotFound)
}

// sha256Sources lists the files this node's index, then its connected
// peers (banned ones are not asked), say have sha256 sum: one entry per
// CID, the local one first, then those most peers named.
func (reg *Registry) sha256Sources(ctx context.Context, sum string) []sha256Source {
	var local []sha256Source
	if f, ok := reg.index.BySHA256(sum); ok {
		if c, err := cid.Decode(f.CID); err == nil {
			local = append(local, sha256Source{c: c, size: f.Size})
		}
	}
	var mu sync.Mutex
	var remote []sha256Source
	reg.askPeers(ctx, &protocol.ResolveRequest{SHA256: sum}, func(p peer.ID, r *protocol.ResolveResponse) {
		c, err := cid.Decode(r.CID)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		remote = addSHA256Source(remote, sha256Source{c: c, size: r.Size, peers: []peer.ID{p}})
	})
	sort.SliceStable(remote, func(i, j int) bool { return len(remote[i].peers) > len(remote[j].peers) })
	return append(local, remote...)
}

// addSHA256Source adds src to srcs, merging it with an entry of the same
// CID and claimed size.
func addSHA256Source(srcs []sha256Source, src sha256Source) []sha256Source {
	for i := range srcs {
		if srcs[i].c.Equals(src.c) && srcs[i].size == src.size {
			srcs[i].peers = append(srcs[i].peers, src.peers...)
			return srcs
		}
	}
	return append(srcs, src)
}

// reportFalseSHA256 tells the Guard that the peers who named src for sum
// lied (its content has another sha256 or size): each is banned. wasted is
// the bytes fetched because of the lie, counted once (against the first).
func (reg *Registry) reportFalseSHA256(src sha256Source, sum string, wasted uint64, err error) {
	for i, p := range src.peers {
		if i > 0 {
			wasted = 0
		}
		banned := reg.guard.ReportFalseAnswer(p, int(min(wasted, math.MaxInt32)))
		reg.log.Warn("peer named a file with another sha256; trying the next source", "peer", p.String(),
			"cid", src.c.String(), "sha256", sum, "banned", banned, "err", err)
	}
	if len(src.peers) == 0 {
		reg.log.Error("this node's index names a file with another sha256", "cid", src.c.String(), "sha256", sum, "err", err)
	}
}

// worthNextSource reports whether a source's failure leaves the next
// source a chance: not when the request itself is wrong, the output is
// taken, the disk is full or the caller gave up.
func worthNextSource(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, api.ErrBadInput) && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrNoSpace)
}

// fetchBySHA256 fetches the file with whole-file sha256 req.Ref. Each
// source (a file CID named by this node's index, its peers, then the DHT)
// is tried in turn until one delivers content with that sha256; a peer
// that named content with another sha256 (or size) is banned.
func (reg *Registry) fetchBySHA256(ctx context.Context, req api.ModelFetchRequest, progress api.ProgressFunc, received *atomic.Uint64) (api.ModelFetchResult, error) {
	sum, err := ParseSHA256Ref(req.Ref)
	if err != nil {
		return api.ModelFetchResult{}, err
	}
	if req.HFCache != "" {
		return api.ModelFetchResult{}, fmt.Errorf("fetch: %w: --hf-cache needs a model name", api.ErrBadInput)
	}
	if err := reg.gate.SHA256(sum, "", policy.SurfaceFetch); err != nil {
		return api.ModelFetchResult{}, err
	}
	tried := map[cid.Cid]bool{}
	var failed []error
	for _, lookup := range []func(context.Context, string) []sha256Source{reg.sha256Sources, reg.sha256SourcesInDHT} {
		for _, src := range lookup(ctx, sum) {
			if tried[src.c] || len(tried) >= maxSHA256Sources {
				continue
			}
			tried[src.c] = true
			got, err := reg.fetch.FetchFile(ctx, src.c, req.Out, fetch.FileWant{Size: src.size, SHA256: sum}, req.Timeout, progress)
			received.Add(got)
			if err == nil {
				if err := reg.store.Pin(ctx, src.c, api.SHA256Prefix+sum); err != nil {
					return api.ModelFetchResult{}, fmt.Errorf("fetch: %w", err)
				}
				return api.ModelFetchResult{CID: src.c.String(), Out: req.Out, Files: 1, Size: src.size}, nil
			}
			if errors.Is(err, fetch.ErrHashMismatch) {
				wasted := src.size // fetched whole, then hashed
				if errors.Is(err, fetch.ErrWrongSize) {
					wasted = 0 // found on the root block
				}
				reg.reportFalseSHA256(src, sum, wasted, err)
			}
			if !worthNextSource(ctx, err) {
				return api.ModelFetchResult{}, err
			}
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return api.ModelFetchResult{}, errNoSHA256(sum)
	}
	return api.ModelFetchResult{}, fmt.Errorf("sha256:%s: no source delivered it (%d tried): %w", sum, len(failed), errors.Join(failed...))
}

// OpenSHA256 opens the file with whole-file sha256 sum and size bytes for
// streaming from peers through dag: the sources findCtx finds (connected
// peers, then the DHT) are tried in turn until one names a file of that
// size (one block fetched each; a peer that names another size is banned).
// The reader fetches under ctx and checks size and sha256 as it goes:
// content with another sha256 fails the last Read with an error wrapping
// mismatch and fetch.ErrHashMismatch, and bans the peers that named it, so the
// next lookup finds the next source.
func (reg *Registry) OpenSHA256(findCtx, ctx context.Context, dag ipld.DAGService, sum string, size uint64, mismatch error) (io.ReadCloser, error) {
	if mismatch == nil {
		mismatch = fetch.ErrHashMismatch
	}
	for _, lookup := range []func(context.Context, string) []sha256Source{reg.sha256Sources, reg.sha256SourcesInDHT} {
		for _, src := range lookup(findCtx, sum) {
			if src.size != size {
				reg.reportFalseSHA256(src, sum, 0, fmt.Errorf("%w: claimed %d bytes, want %d", fetch.ErrHashMismatch, src.size, size))
				continue
			}
			nd, err := dag.Get(findCtx, src.c)
			if err != nil {
				continue
			}
			if got, ok := ufs.FileSize(nd); !ok || got != size {
				reg.reportFalseSHA256(src, sum, 0, fmt.Errorf("%w: not a file of %d bytes", fetch.ErrHashMismatch, size))
				continue
			}
			r, err := ufs.OpenNode(ctx, nd, dag)
			if err != nil {
				continue
			}
			return &sha256Reader{r: r, h: sha256.New(), reg: reg, src: src, sum: sum, size: size, mismatch: mismatch}, nil
		}
	}
	return nil, errNoSHA256(sum)
}

// sha256Reader reads a file from a sha256 source, checking it as it goes.
type sha256Reader struct {
	r        io.ReadCloser
	h        hash.Hash
	read     uint64
	reg      *Registry
	src      sha256Source
	sum      string
	size     uint64
	mismatch error
}

func (s *sha256Reader) Read(p []byte) (int, error) {
	k, err := s.r.Read(p)
	s.h.Write(p[:k])
	s.read += uint64(k)
	if s.read > s.size || errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(s.h.Sum(nil)); got != s.sum || s.read != s.size {
			err = fmt.Errorf("content %s: %w: %w: %d bytes or more hashing to %s, want %d bytes, %s",
				s.src.c, s.mismatch, fetch.ErrHashMismatch, s.read, got, s.size, s.sum)
			s.reg.reportFalseSHA256(s.src, s.sum, s.read, err)
		}
	}
	return k, err
}

func (s *sha256Reader) Close() error { return s.r.Close() }

// FetchManifest gets the manifest file c from peers (its size checked
// against manifest.MaxSize from the root before the rest is fetched) and
// decodes it, within timeout (0: fetch.timeout), adding the bytes that
// came from peers to received.
func (reg *Registry) FetchManifest(ctx context.Context, c cid.Cid, timeout time.Duration, received *atomic.Uint64) (*manifest.Manifest, error) {
	if timeout <= 0 {
		timeout = reg.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	session := reg.fetch.NewSession(ctx)
	m, err := ReadManifest(ctx, session, c)
	received.Add(session.Received())
	switch {
	case errors.Is(err, manifest.ErrInvalid):
		return nil, fmt.Errorf("manifest %s: refused: %w", c, err)
	case err != nil:
		return nil, fmt.Errorf("manifest %s: %w: %v", c, api.ErrNotFound, err)
	}
	return m, nil
}

// ResolveManifest resolves a name to a verified, decoded manifest, adding
// the bytes of the manifest that came from peers to received.
func (reg *Registry) ResolveManifest(ctx context.Context, ref string, trustAny bool, timeout time.Duration, received *atomic.Uint64) (*manifest.Manifest, *Resolved, error) {
	name, rev, err := ParseModelRef(ref)
	if err != nil {
		return nil, nil, err
	}
	rn, err := reg.resolveName(ctx, name, rev, trustAny)
	if err != nil {
		return nil, nil, err
	}
	mc, err := cid.Decode(rn.Record.Manifest)
	if err != nil {
		return nil, nil, err
	}
	m, err := reg.FetchManifest(ctx, mc, timeout, received)
	if err != nil {
		return nil, nil, err
	}
	if err := rn.Record.Describes(m); err != nil {
		return nil, nil, fmt.Errorf("%s: refused: the record does not describe its manifest (%s@%s): %v: %w", ref, m.Name, m.Revision, err, ErrTampered)
	}
	reg.keepAttestations(mc, m, rn.Attestations)
	return m, rn, nil
}

func (reg *Registry) fetchByName(ctx context.Context, req api.ModelFetchRequest, progress api.ProgressFunc, received *atomic.Uint64) (api.ModelFetchResult, error) {
	if name, _, err := ParseModelRef(req.Ref); err == nil {
		if err := reg.gate.Name(name, policy.SurfaceFetch); err != nil {
			return api.ModelFetchResult{}, err
		}
	}
	m, rn, err := reg.ResolveManifest(ctx, req.Ref, req.TrustAny, req.Timeout, received)
	if err != nil {
		return api.ModelFetchResult{}, err
	}
	mc, _ := cid.Decode(rn.Record.Manifest)
	if err := reg.gate.Manifest(m, mc, policy.SurfaceFetch); err != nil {
		return api.ModelFetchResult{}, err
	}
	if req.OllamaStore != "" {
		size, err := reg.writeOllama(ctx, m, req, progress, received)
		if err != nil {
			return api.ModelFetchResult{}, fmt.Errorf("fetch %s: %w", req.Ref, err)
		}
		return reg.fetchedModel(ctx, m, rn, req.OllamaStore, len(m.Files), size)
	}
	sel, err := manifest.Select(m.Files, req.Include, req.Exclude)
	if err != nil {
		return api.ModelFetchResult{}, api.BadInput(fmt.Errorf("fetch: %w", err))
	}
	if len(sel) == 0 {
		return api.ModelFetchResult{}, fmt.Errorf("fetch %s: %w: no file matches --include/--exclude", req.Ref, api.ErrBadInput)
	}
	var total, done uint64
	for _, f := range sel {
		total += f.Size
	}
	fileProgress := func(base uint64) api.ProgressFunc {
		return func(p api.Progress) {
			if progress != nil {
				progress(api.Progress{Done: min(base+p.Done, total), Total: total})
			}
		}
	}
	write := func(f manifest.File, dest string) error {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return err
		}
		got, err := reg.fetch.FetchFile(ctx, c, dest, fetch.FileWant{Size: f.Size, SHA256: f.SHA256}, req.Timeout, fileProgress(done))
		received.Add(got)
		if err != nil {
			return err
		}
		done += f.Size
		return reg.store.Pin(ctx, c, m.Name+"@"+m.Revision+"/"+f.Path)
	}
	out := req.Out
	if req.HFCache != "" {
		keep := map[string]bool{}
		for _, f := range sel {
			keep[f.Path] = true
		}
		out, err = hfcache.Write(req.HFCache, m, func(f manifest.File) bool { return keep[f.Path] }, write)
	} else {
		err = writeTree(req.Out, sel, write, func(from, to string) error {
			_, err := reg.store.MoveFileRefs(ctx, from, to)
			return err
		})
	}
	if err != nil {
		return api.ModelFetchResult{}, fmt.Errorf("fetch %s: %w", req.Ref, err)
	}
	return reg.fetchedModel(ctx, m, rn, out, len(sel), total)
}

// fetchedModel keeps the manifest of a model fetched by name, and its
// trusted record to serve on to peers.
func (reg *Registry) fetchedModel(ctx context.Context, m *manifest.Manifest, rn *Resolved, out string, files int, size uint64) (api.ModelFetchResult, error) {
	if _, err := reg.storeManifest(ctx, m); err != nil {
		return api.ModelFetchResult{}, err
	}
	if rn.Trusted { // serve the trusted record on to peers
		if err := writeRecord(reg.home, rn.Record); err != nil {
			reg.log.Warn("could not keep the name record", "name", m.Name+"@"+m.Revision, "err", err)
		}
	}
	reg.log.Info("fetched model", "name", m.Name+"@"+m.Revision, "cid", rn.Record.Manifest, "publisher", rn.Record.Publisher, "path", out)
	return api.ModelFetchResult{Name: m.Name, Revision: m.Revision, Commit: m.Commit, Manifest: rn.Record.Manifest,
		Publisher: rn.Record.Publisher, Trusted: rn.Trusted, Out: out, Files: files, Size: size}, nil
}

// writeTree writes files under out, assembled in a partial directory and
// renamed into place once every file is complete and verified. A partial
// directory an interrupted fetch left is taken apart first: files of the
// current selection in it become the new files' partial files (the store
// may record their leaves as held there, so they need not come over the
// network again), the rest is removed. move re-points held leaves when a
// file or directory is renamed.
func writeTree(out string, files []manifest.File, write func(manifest.File, string) error, move func(from, to string) error) error {
	tmp := store.PartialPath(out)
	prev := tmp + ".prev"
	if err := os.RemoveAll(prev); err != nil {
		return err
	}
	if _, err := os.Lstat(tmp); err == nil {
		if err := os.Rename(tmp, prev); err != nil {
			return err
		}
	}
	defer os.RemoveAll(prev)
	for _, f := range files {
		if err := manifest.ValidatePath(f.Path); err != nil {
			return err
		}
		dest := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if err := reuseInterrupted(prev, f.Path, dest, move); err != nil {
			return err
		}
		if err := write(f, dest); err != nil {
			return err
		}
	}
	if err := move(tmp, out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(out))
}

// reuseInterrupted makes what an interrupted fetch left for the file at
// rel under prev (the file, or its partial file) the partial file of dest.
func reuseInterrupted(prev, rel, dest string, move func(from, to string) error) error {
	old := filepath.Join(prev, filepath.FromSlash(rel))
	for _, p := range []string{old, store.PartialPath(old)} {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := move(p, store.PartialPath(dest)); err != nil {
			return err
		}
		return os.Rename(p, store.PartialPath(dest))
	}
	return nil
}
