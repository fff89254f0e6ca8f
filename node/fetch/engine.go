// Package fetch is allmende's fetch engine: it gets the DAG below a root
// from peers, verifies it, and writes it to the store and to an output
// file or directory, whole or not at all, resuming what an interrupted
// fetch left.
//
// The path of one fetched byte, package by package, runs one way:
//
//  1. peer stream: a connected peer sends the byte inside a block, over
//     allmende's bulk protocol — from a neighbour in the root's swarm, asked
//     for the piece as swarm.Picker says (package swarms), or
//     from seeders holding the whole content — or over bitswap (the inner
//     nodes, peers without the have protocol, what the swarm left);
//  2. package protocol reads the block off the stream and checks it
//     against its CID before handing it on (protocol.BulkGet for bulk,
//     boxo's bitswap client for bitswap; a block that does not match is
//     dropped and its peer reported to the Guard);
//  3. fetch's verify: the walker (walker.go) takes only blocks it asked
//     for, and the file sink (sink.go) checks each node's declared size
//     against the span its parent gave it, so a DAG that contradicts
//     itself fails before its bytes land; a file fetched for a manifest is
//     checked against its size (on the root block) and whole-file sha256
//     (before it appears);
//  4. sink: the file sink writes the leaf's bytes at their offset in the
//     partial output file (store.PartialPath), as leaves arrive in any
//     order;
//  5. store refs / output file: a leaf that came over bulk is recorded in
//     the store as held in the output file (store.PutFileRefs), so its
//     bytes are on disk once; one that came over bitswap, which the block
//     service stored on the way in, is recorded the same way and that copy
//     dropped (store.DropCopies). Once every byte is written
//     the sink fsyncs the file and renames it to its destination, and the
//     fetch pins the root.
//
// A leaf that lands is announced to the swarm's neighbours (a HAVE), who
// may ask this node for it at once: it is served from the partial output
// file. A directory takes the same path: its inner nodes come first, into
// the block store; then the directory sink (dirSink) makes the partial
// output directory with a file sink per file, and each leaf goes to the
// files that hold it; the directory is renamed last. Only a directory of
// more than maxDirSinkFiles files still takes steps 1–3 into the block
// store and is exported afterwards (store.Export). Nothing calls back up
// this path: the walker asks bulk and bitswap for blocks and hands each to
// the sink; the sink writes to the file and the store.
//
// The package imports store and protocol, and nothing of models or mirror.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/fetch/swarms"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"golang.org/x/time/rate"
)

// Defaults of Config fields left zero.
const (
	// DefaultTimeout is fetch.timeout's default.
	DefaultTimeout = 2 * time.Minute
	// DefaultParallel is fetch.parallel's default.
	DefaultParallel = 128
)

// ErrHashMismatch means content is not what it should be: another
// whole-file sha256 or size than a manifest or a peer declared.
var ErrHashMismatch = errors.New("sha256 mismatch")

// ErrWrongSize means content is not a file of the size asked for. It is
// an ErrHashMismatch found on the root block, before the rest is fetched.
var ErrWrongSize = fmt.Errorf("%w: wrong size", ErrHashMismatch)

// Config is what the engine needs.
type Config struct {
	// Store receives the blocks and pins.
	Store *store.Store
	// Net is the network DAG: it reads blocks through the store's block
	// store and fetches those not held over bitswap, storing them.
	Net ipld.DAGService
	// Host finds the peers that speak the bulk protocol.
	Host host.Host
	// Guard, if set, hears of peers that send bad data or stall.
	Guard *protocol.Guard
	// Down, if set, paces the blocks received (bandwidth.down).
	Down *rate.Limiter
	// Timeout fails a fetch when no block arrived for this long.
	Timeout time.Duration
	// Parallel is the number of blocks wanted at once.
	Parallel int
	// Copy keeps a copy of a fetched file's leaves in the block store;
	// without it the fetched file itself holds them.
	Copy bool
	// Announce, if set, is called with each root a fetch pinned.
	Announce func(ctx context.Context, root cid.Cid)
	// Refuse, if set, refuses fetching the DAG below root (a denylist
	// entry, node/gate); its error is returned as it is.
	Refuse func(root cid.Cid) error
	// SuperSeed makes the node super-seed the roots it holds whole to the
	// swarms that ask (swarm.superseed; docs/swarm.md): a mirror behind a
	// slow uplink sends each piece once and the room passes it on.
	SuperSeed bool
	// Log receives the engine's logs; it must not be nil.
	Log *slog.Logger
}

// Engine fetches content from peers. It is safe for concurrent use; each
// fetch keeps its own sessions and counts.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	transfers transferTable
	// swarms are the roots exchanged over the have protocol (nil without
	// a host).
	swarms *swarms.Table
	// bulkBytes and bulkBlocks count the verified blocks received over
	// the bulk protocol by every fetch, for the node's stats.
	bulkBytes, bulkBlocks atomic.Uint64
}

// New returns an engine on cfg.
func New(cfg Config) *Engine {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	e := &Engine{cfg: cfg, log: cfg.Log}
	if cfg.Host != nil {
		e.swarms = swarms.New(swarms.Config{Host: cfg.Host, Store: cfg.Store, Guard: cfg.Guard,
			Refuse: cfg.Refuse, SuperSeed: cfg.SuperSeed, Log: cfg.Log})
	}
	return e
}

// Close leaves every swarm: it closes the have streams. Fetches still
// running carry on without their swarms.
func (e *Engine) Close() {
	if e.swarms != nil {
		e.swarms.Close()
	}
}

// ServeSwarm answers the have protocol on the engine's host, for the roots
// it fetches and those it holds whole, and hears of what bulk serves (a
// super-seeder counts its uploads).
func (e *Engine) ServeSwarm(bulk *protocol.BulkServer) {
	if e.swarms == nil {
		return
	}
	protocol.ServeHave(e.cfg.Host, e.swarms.Accept, e.swarms.Run)
	bulk.SetObserver(e.swarms)
}

// Fetch implements api.API's Fetch: it gets the DAG below req.Ref from
// peers, verifying every block against its CID, writes it to req.Out
// (absolute) whole or not at all, and pins it so this node seeds it too.
// Blocks fetched before an interruption stay in the store (and a file's
// partial output beside it), so a repeated fetch resumes. The result's
// Received counts this fetch's bytes only.
func (e *Engine) Fetch(ctx context.Context, req api.FetchRequest, progress api.ProgressFunc) (api.FetchResult, error) {
	start := time.Now()
	out := req.Out
	timeout := e.timeout(req.Timeout)
	root, err := api.ParseCID(req.Ref)
	if err != nil {
		return api.FetchResult{}, err
	}
	if err := e.refuse(root); err != nil {
		return api.FetchResult{}, err
	}
	if err := checkOutput(root.String(), out); err != nil {
		return api.FetchResult{}, err
	}
	if _, err := os.Stat(filepath.Dir(out)); err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w: output directory: %v", root, api.ErrBadInput, err)
	}
	var received atomic.Uint64
	if err := e.checkSpace(ctx, root, out, timeout, &received); err != nil {
		return api.FetchResult{}, err
	}
	writeErrs, _ := e.cfg.Store.WriteErrors()
	progress, untrack := e.transfers.track(root.String(), out, progress)
	defer untrack()

	// Hold the pin lock from the first block to the pin, so a concurrent
	// GC cannot delete what this fetch has gathered.
	unlock := e.cfg.Store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	// A file or a directory is written while its blocks arrive
	// (fetchInto); a directory of very many files is exported once all its
	// blocks are local.
	direct, err := e.fetchInto(ctx, root, out, timeout, progress, nil, &received)
	if err != nil {
		// An existing output or a symlink leaving it is bad input.
		return api.FetchResult{}, e.diskFull(api.BadInputIf(err, store.ErrExists, store.ErrBadInput), writeErrs)
	}
	if !direct {
		if err := store.Export(ctx, e.cfg.Store.LocalDAG(), root, out); err != nil {
			// An existing output or a symlink leaving it is bad input.
			err = api.BadInputIf(fmt.Errorf("fetch %s: %w", root, err), store.ErrExists, store.ErrBadInput)
			return api.FetchResult{}, e.diskFull(err, writeErrs)
		}
	}
	if err := e.cfg.Store.Pin(ctx, root, filepath.Base(out)); err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w", root, err)
	}
	size, err := e.cfg.Store.ContentSize(ctx, root)
	if err != nil {
		return api.FetchResult{}, fmt.Errorf("fetch %s: %w", root, err)
	}
	res := api.FetchResult{CID: root.String(), Out: out, Size: size, Received: received.Load(), Seconds: time.Since(start).Seconds()}
	e.log.Info("fetched", "cid", res.CID, "path", out, "bytes", size, "received", res.Received)
	if e.cfg.Announce != nil {
		e.cfg.Announce(ctx, root)
	}
	return res, nil
}

// refuse is Config.Refuse's verdict on root.
func (e *Engine) refuse(root cid.Cid) error {
	if e.cfg.Refuse == nil {
		return nil
	}
	return e.cfg.Refuse(root)
}

// timeout is t if positive, else the engine's fetch.timeout.
func (e *Engine) timeout(t time.Duration) time.Duration {
	if t > 0 {
		return t
	}
	return e.cfg.Timeout
}

// checkOutput refuses an output path that is relative or exists.
func checkOutput(ref, out string) error {
	if !filepath.IsAbs(out) {
		return fmt.Errorf("fetch %s: %w: output path must be absolute", ref, api.ErrBadInput)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("fetch %s: %w: %s exists; remove it or choose another -o", ref, api.ErrBadInput, out)
	}
	return nil
}

// CheckOutput refuses an output path for ref that is relative or exists,
// as Fetch does (api.ErrBadInput).
func CheckOutput(ref, out string) error { return checkOutput(ref, out) }

// FetchDAG makes every block below root local (the caller holds the pin
// lock until it pins root). It fails with api.ErrNotFound when no block
// arrives for timeout (0: fetch.timeout).
func (e *Engine) FetchDAG(ctx context.Context, root cid.Cid, timeout time.Duration) error {
	return e.fetchDAGInto(ctx, root, e.timeout(timeout), nil, nil, new(atomic.Uint64))
}

// FileWant is what a fetched file must be.
type FileWant struct {
	// Size is checked against the root block before the rest is fetched,
	// so content that is not the file asked for costs one block.
	Size uint64
	// SHA256 (hex) is checked on the complete file before it appears.
	SHA256 string
}

// FetchFile fetches the UnixFS file root and writes it to dest, which
// must not exist, checking it against want: dest appears only if size and
// sha256 match; otherwise the error wraps ErrHashMismatch (ErrWrongSize
// when the root block already says so). The caller holds the pin lock
// until it pins root. It returns the bytes this fetch received, failed
// or not.
func (e *Engine) FetchFile(ctx context.Context, root cid.Cid, dest string, want FileWant, timeout time.Duration, progress api.ProgressFunc) (uint64, error) {
	var received atomic.Uint64
	_, err := e.fetchInto(ctx, root, dest, e.timeout(timeout), progress, &want, &received)
	return received.Load(), err
}

// Transfers lists the fetches in progress, oldest first.
func (e *Engine) Transfers() []Transfer { return e.transfers.list() }

// BulkReceived is the bytes and blocks every fetch received over the bulk
// protocol since the engine started.
func (e *Engine) BulkReceived() (bytes, blocks uint64) {
	return e.bulkBytes.Load(), e.bulkBlocks.Load()
}
