package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// errBadFileDAG means a file's DAG contradicts itself: a node's declared
// sizes do not add up, or data would land outside the file.
var errBadFileDAG = errors.New("inconsistent UnixFS file DAG")

// blockSink receives every block of a fetch once it has been verified
// against its CID. put is called from several goroutines at once, and after
// it returns the caller drops the block, so a fetch holds no block data.
type blockSink interface {
	put(nd ipld.Node) error
}

// span is where a node's content goes in the output file.
type span struct {
	off, size uint64
}

// fileSink writes the leaves of one UnixFS file straight into the fetch's
// partial output file at their offsets, as they arrive in any order. This
// spares a fetch the export pass (reading every block back, hashing it
// again and copying it) that would otherwise follow the transfer.
//
// Offsets come from the parents' block sizes. Each node's declared size is
// checked against what its parent declared for it, and each leaf's length
// against its span, so a file assembled here is byte for byte what reading
// the DAG in order gives.
type fileSink struct {
	f    *os.File
	size uint64

	mu sync.Mutex
	// pending holds the spans of nodes whose parent has arrived but which
	// have not been written. A CID may occur at several offsets.
	pending map[cid.Cid][]span
	written uint64
}

// fileSize returns the content size of nd if it is a UnixFS file (or a raw
// leaf); ok is false for anything else, e.g. a directory.
func fileSize(nd ipld.Node) (size uint64, ok bool) {
	switch n := nd.(type) {
	case *merkledag.RawNode:
		return uint64(len(n.RawData())), true
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(n.Data())
		if err != nil || (fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw) {
			return 0, false
		}
		return fsn.FileSize(), true
	}
	return 0, false
}

// createFileSink creates path (replacing a stale partial file) sized for a
// file of size bytes whose DAG starts at root.
func createFileSink(path string, root cid.Cid, size uint64) (*fileSink, error) {
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("remove stale partial output: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &fileSink{f: f, size: size, pending: map[cid.Cid][]span{root: {{0, size}}}}, nil
}

// fileParts splits a file node into its inline data and its children's
// declared sizes.
func fileParts(nd ipld.Node) (data []byte, sizes []uint64, err error) {
	switch n := nd.(type) {
	case *merkledag.RawNode:
		return n.RawData(), nil, nil
	case *merkledag.ProtoNode:
		fsn, err := unixfs.FSNodeFromBytes(n.Data())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w: %v", nd.Cid(), errBadFileDAG, err)
		}
		if fsn.Type() != unixfs.TFile && fsn.Type() != unixfs.TRaw {
			return nil, nil, fmt.Errorf("%s: %w: a %s node inside a file", nd.Cid(), errBadFileDAG, fsn.Type())
		}
		sizes = fsn.BlockSizes()
		if len(sizes) != len(n.Links()) {
			return nil, nil, fmt.Errorf("%s: %w: %d links, %d block sizes", nd.Cid(), errBadFileDAG, len(n.Links()), len(sizes))
		}
		return fsn.Data(), sizes, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: not a UnixFS node", nd.Cid(), errBadFileDAG)
}

// put writes nd's inline data at every span its parents gave it and
// registers its children's spans.
func (s *fileSink) put(nd ipld.Node) error {
	data, sizes, err := fileParts(nd)
	if err != nil {
		return err
	}
	total := uint64(len(data))
	for _, sz := range sizes {
		total += sz
	}
	s.mu.Lock()
	spans := s.pending[nd.Cid()]
	delete(s.pending, nd.Cid())
	for _, sp := range spans {
		if sp.size != total || sp.off+sp.size > s.size {
			s.mu.Unlock()
			return fmt.Errorf("%s: %w: %d bytes where its parent declared %d", nd.Cid(), errBadFileDAG, total, sp.size)
		}
		off := sp.off + uint64(len(data))
		for i, l := range nd.Links() {
			s.pending[l.Cid] = append(s.pending[l.Cid], span{off, sizes[i]})
			off += sizes[i]
		}
		s.written += uint64(len(data))
	}
	s.mu.Unlock()
	if len(data) == 0 {
		return nil
	}
	for _, sp := range spans {
		if _, err := s.f.WriteAt(data, int64(sp.off)); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		startWriteback(s.f, int64(sp.off), len(data))
	}
	return nil
}

// finish checks that every byte of the file was written, syncs it and
// renames it to dest.
func (s *fileSink) finish(dest string) error {
	s.mu.Lock()
	left, written := len(s.pending), s.written
	s.mu.Unlock()
	if left > 0 || written != s.size {
		return fmt.Errorf("%w: wrote %d of %d bytes, %d nodes missing", errBadFileDAG, written, s.size, left)
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%w: %s", store.ErrExists, dest)
	}
	if err := os.Rename(s.f.Name(), dest); err != nil {
		return err
	}
	return store.SyncDir(filepath.Dir(dest))
}

// abort closes and removes the partial file.
func (s *fileSink) abort() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// fetchInto fetches root's DAG. When root is a UnixFS file it writes the
// file to out while the blocks arrive, whole or not at all, and returns
// direct = true; otherwise the caller exports the fetched DAG itself.
func (n *Node) fetchInto(ctx context.Context, root cid.Cid, out string, timeout time.Duration, progress ProgressFunc) (direct bool, err error) {
	var sink *fileSink
	open := func(rootNd ipld.Node) (blockSink, error) {
		size, ok := fileSize(rootNd)
		if !ok {
			return nil, nil
		}
		s, err := createFileSink(store.PartialPath(out), root, size)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", root, err)
		}
		sink = s
		return s, nil
	}
	err = n.fetchDAGInto(ctx, root, timeout, progress, open)
	if sink == nil {
		return false, err
	}
	if err == nil {
		if err = sink.finish(out); err != nil {
			err = fmt.Errorf("fetch %s: %w", root, err)
		}
	}
	if err != nil {
		sink.abort()
		return true, err
	}
	return true, nil
}
