package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/boxo/filestore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// Serving a leaf that a file holds by reference costs a SHA-256 of the
// leaf on every read, which is most of a seeder's CPU. Leaves stored with a
// checksum skip it (sums.go); for those without one, while the file is in
// a state whose whole content was verified (the rule OpenWholeFile applies
// before the mirror sends a file with sendfile), its bytes are the verified
// ones, and the hash can be skipped. Peers verify every block they receive
// anyway; the re-hash is there for bit rot, which `allmende verify` finds.

// verifiedFiles maps the path of each file verified whole to the state it
// was verified in and the leaves that verification covered (CID and
// offset). Only those leaves are read unhashed: a reference left from an earlier
// import of the file, before it was changed in place, points at bytes that
// are no longer its own.
type verifiedFiles struct {
	mu     sync.Mutex
	loaded bool
	files  map[string]verifiedFile
}

type verifiedFile struct {
	state  FileState
	leaves map[cid.Cid]uint64 // leaf → offset
}

// covers reports whether the leaf c at offset in the file at path may be
// read without hashing: the file was verified whole with c at offset and
// is in state now. It loads the records kept in the store on first use.
func (v *verifiedFiles) covers(ctx context.Context, s *Store, path string, c cid.Cid, offset uint64, now FileState) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.loaded {
		v.load(ctx, s)
	}
	vf, ok := v.files[path]
	if !ok || !vf.state.same(now) {
		return false
	}
	off, ok := vf.leaves[c]
	return ok && off == offset
}

// load reads the verified states kept in the store and the layouts of
// their roots. v.mu is held.
func (v *verifiedFiles) load(ctx context.Context, s *Store) {
	v.loaded = true
	v.files = make(map[string]verifiedFile)
	s.eachWholeRecord(ctx, func(key string, rec wholeRecord) {
		root, err := cid.Decode(strings.TrimPrefix(key, "/"))
		if err == nil && rec.OK {
			v.addLocked(ctx, s, root, rec.State)
		}
	})
}

// eachWholeRecord calls fn with every verified-state record kept (see
// MarkVerified) and its key, a root CID.
func (s *Store) eachWholeRecord(ctx context.Context, fn func(key string, rec wholeRecord)) {
	res, err := s.wholeStates().Query(ctx, dsq.Query{})
	if err != nil {
		return
	}
	entries, _ := res.Rest()
	for _, e := range entries {
		var rec wholeRecord
		if json.Unmarshal(e.Value, &rec) == nil {
			fn(e.Key, rec)
		}
	}
}

// note records (ok) or forgets the verified state of root's file.
func (v *verifiedFiles) note(ctx context.Context, s *Store, root cid.Cid, st FileState, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.loaded {
		return // the first lookup loads every record, this one too
	}
	if !ok {
		delete(v.files, st.Path)
		return
	}
	v.addLocked(ctx, s, root, st)
}

// forgetVerified drops every verified state kept for the file at path, in
// memory and in the store: until it is verified again, its leaves are
// re-hashed whenever they are served and the mirror does not send it
// whole.
func (s *Store) forgetVerified(ctx context.Context, path string) {
	s.verified.mu.Lock()
	delete(s.verified.files, path)
	s.verified.mu.Unlock()
	s.eachWholeRecord(ctx, func(key string, rec wholeRecord) {
		if rec.State.Path == path {
			s.wholeStates().Delete(ctx, datastore.NewKey(key))
		}
	})
}

// addLocked covers the leaves of root's layout in the file in state st.
func (v *verifiedFiles) addLocked(ctx context.Context, s *Store, root cid.Cid, st FileState) {
	layout, err := s.wholeLayout(ctx, root)
	if err != nil || layout.path != st.Path {
		return
	}
	vf, ok := v.files[st.Path]
	if !ok || !vf.state.same(st) {
		vf = verifiedFile{state: st, leaves: make(map[cid.Cid]uint64, len(layout.leaves))}
	}
	for _, l := range layout.leaves {
		vf.leaves[l.cid] = l.offset
	}
	v.files[st.Path] = vf
}

// servingBlockstore is the block store peers are served from: Get reads a
// leaf without hashing it again when its bytes match the checksum kept for
// it, or when it is held in a verified, unchanged file.
type servingBlockstore struct {
	blockstore.Blockstore
	s *Store
}

// Serving returns the block store to serve peers from (bitswap and the
// bulk protocol). It is Blockstore, except that a leaf is read without a
// SHA-256 when its bytes still have the CRC-32C taken when they were
// verified (sums.go), or when the file holding it was verified whole and is
// unchanged since; every other block is re-hashed as Blockstore does, and
// quarantined if it rotted.
func (s *Store) Serving() blockstore.Blockstore {
	return &servingBlockstore{Blockstore: s.bs, s: s}
}

// Get returns the block for c.
func (b *servingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Prefix().Codec == cid.Raw {
		if data, ok := b.s.readLeaf(ctx, c, nil); ok {
			b.s.unhashedReads.Add(1)
			return blocks.NewBlockWithCid(data, c)
		}
	}
	return b.Blockstore.Get(ctx, c)
}

// ReadBlock returns the bytes of the block c as Get would, read into buf
// when they fit there, so a server that sends block after block (the bulk
// protocol) reuses one buffer instead of allocating one per block.
func (b *servingBlockstore) ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	if c.Prefix().Codec == cid.Raw {
		if data, ok := b.s.readLeaf(ctx, c, buf); ok {
			b.s.unhashedReads.Add(1)
			return data, nil
		}
	}
	blk, err := b.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return blk.RawData(), nil
}

// readLeaf reads the leaf c, from the block store or the file that holds
// it, into buf if it fits, if it may be served without a SHA-256 (see
// Serving); ok is false otherwise, and the caller reads it the hashing way.
func (s *Store) readLeaf(ctx context.Context, c cid.Cid, buf []byte) ([]byte, bool) {
	if data, err := s.readCopy(c, buf); err == nil {
		return data, s.refs.sums.matches(ctx, c, data)
	}
	return s.readHeld(ctx, c, buf)
}

// readCopy reads the file of block c in the block store, not hashed.
func (s *Store) readCopy(c cid.Cid, buf []byte) ([]byte, error) {
	key := strings.TrimPrefix(dshelp.MultihashToDsKey(c.Hash()).String(), "/")
	f, err := os.Open(filepath.Join(s.dir, blocksDir, s.shard(key), key+".data"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readAt(f, 0, int(fi.Size()), buf)
}

// readAt reads n bytes at off in f, into buf if they fit.
func readAt(f *os.File, off int64, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	data := buf[:n]
	if _, err := f.ReadAt(data, off); err != nil {
		return nil, err
	}
	return data, nil
}

// readHeld reads the leaf c from the file that holds it, if its bytes
// match their checksum or the file is in a state verified whole.
func (s *Store) readHeld(ctx context.Context, c cid.Cid, buf []byte) ([]byte, bool) {
	ref := filestore.List(ctx, s.fs, c)
	if ref.Status != filestore.StatusOk {
		return nil, false
	}
	path := refPath(ref.FilePath)
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data, err := readAt(f, int64(ref.Offset), int(ref.Size), buf)
	if err != nil {
		return nil, false
	}
	if !s.refs.sums.matches(ctx, c, data) {
		// The state of the file opened, not of the path: a file renamed
		// over it after a stat would go unnoticed.
		now, err := FileStateOf(path, f)
		if err != nil || !s.verified.covers(ctx, s, path, c, ref.Offset, now) {
			return nil, false
		}
	}
	return data, true
}

// UnhashedReads counts the leaves served without re-hashing them.
func (s *Store) UnhashedReads() uint64 { return s.unhashedReads.Load() }
