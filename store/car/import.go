package car

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/manifest"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
)

// importBuffer is the read buffer of an import.
const importBuffer = 1 << 20

// recordPrefix is how a name record's wire form starts (its first field,
// manifest.Record.Version); only root blocks that start so are decoded as
// records.
var recordPrefix = []byte(`{"v":`)

// ImportOptions configure an import.
type ImportOptions struct {
	// Progress, if set, is called after each block read.
	Progress func(Progress)
	// Now is the time records are checked against; zero means the
	// current time.
	Now time.Time
}

// RootKind says what a root of a CAR is, as far as the CAR shows.
type RootKind string

// Kinds of roots.
const (
	// KindContent is any DAG: a file, a directory, a model's files.
	KindContent RootKind = "content"
	// KindManifest is a manifest named by a record in the same CAR.
	KindManifest RootKind = "manifest"
	// KindRecord is a name record (see ExportModel).
	KindRecord RootKind = "record"
)

// Root is the outcome of an import for one root of the CAR.
type Root struct {
	CID  cid.Cid  `json:"cid"`
	Kind RootKind `json:"kind"`
	// Complete means every block of the root's DAG is in the store, each
	// checked against its CID when it was stored.
	Complete bool `json:"complete"`
	// Missing is the first block found missing, when not Complete and
	// the CAR was read whole.
	Missing cid.Cid `json:"missing,omitzero"`
}

// RecordBlock is a name record found among a CAR's roots. Nothing in it
// is trusted yet: the node checks Record against its trust list.
type RecordBlock struct {
	CID  cid.Cid
	Data []byte
	// Record is the decoded record; nil when it does not even parse.
	Record *manifest.Record
	// Err says why the record is not valid (bad signature, expired,
	// malformed); nil for a valid one.
	Err error
}

// Result tells what an import did.
type Result struct {
	// Version is the CAR's version (1 or 2).
	Version uint64
	// Roots are the CAR's roots in header order. None is Complete unless
	// the whole CAR was read and every block in it was sound.
	Roots []Root
	// Records are the name records among the roots.
	Records []RecordBlock
	// Blocks is the number of blocks read and verified; Stored those of
	// them the store did not hold before; Bytes the CAR's bytes read.
	Blocks, Stored, Bytes int64
	// Copied is the bytes of raw leaves kept as whole-file copies
	// (store.LeafCopy) rather than one block file each.
	Copied int64
}

// Complete reports whether the CAR had roots and every one is complete.
func (r *Result) Complete() bool {
	for _, rt := range r.Roots {
		if !rt.Complete {
			return false
		}
	}
	return len(r.Roots) > 0
}

// ToPin returns the roots to pin: all of them when every one is complete,
// none otherwise. A CAR is taken whole or not at all, so a truncated or
// tampered CAR pins nothing; its verified blocks stay for a retry, and GC
// frees them if none comes.
func (r *Result) ToPin() []cid.Cid {
	if !r.Complete() {
		return nil
	}
	out := make([]cid.Cid, len(r.Roots))
	for i, rt := range r.Roots {
		out[i] = rt.CID
	}
	return out
}

// Import reads the CAR (v1 or v2) from r, streaming, into st. Every block
// is checked before it is kept: a CID with an accepted hash function,
// bytes that hash to it, a size up to MaxBlockSize, data that decodes
// under its codec (whose links can then be followed). The first bad block
// ends the import with a *BlockError naming it and its byte offset,
// wrapping ErrMalformed, ErrTruncated or store.ErrCorrupt; the blocks
// verified before it stay in the store. Once the whole CAR is read, each
// root's DAG is walked in the store, and Import returns ErrIncomplete if
// one is not complete (Result.Roots says which block is missing).
//
// The raw leaves of a UnixFS file larger than a chunk, arriving in order
// after their parent (as Export and Kubo write them), are kept as one
// whole-file copy (store.LeafCopy); other blocks go to the block store.
// Either way a block's bytes are on disk once.
//
// Import pins nothing: the caller pins Result.ToPin(), holding
// st.Blockstore().PinLock() from before Import until it has, so a GC
// cannot remove the blocks in between.
func Import(ctx context.Context, st *store.Store, r io.Reader, opts ImportOptions) (*Result, error) {
	im := &importer{
		st:       st,
		in:       &countingReader{r: bufio.NewReaderSize(r, importBuffer)},
		buf:      make([]byte, MaxBlockSize),
		records:  map[cid.Cid][]byte{},
		progress: opts.Progress,
		leaves:   &leafRouter{st: st, expect: cidSet{}},
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res, err := im.run(ctx, now)
	res.Bytes = im.in.n
	return res, err
}

// importer reads one CAR.
type importer struct {
	st       *store.Store
	in       *countingReader
	br       *carv2.BlockReader
	buf      []byte
	roots    cidSet
	records  map[cid.Cid][]byte // raw root blocks that may be records
	progress func(Progress)
	leaves   *leafRouter
	res      Result
}

func (im *importer) run(ctx context.Context, now time.Time) (*Result, error) {
	if err := im.header(); err != nil {
		return &im.res, err
	}
	err := im.blocks(ctx)
	err = errors.Join(err, im.leaves.end(ctx))
	im.res.Copied = im.leaves.copied
	if err != nil {
		return &im.res, err
	}
	im.findRecords(now)
	var incomplete []string
	for i := range im.res.Roots {
		rt := &im.res.Roots[i]
		missing, err := walk(ctx, im.st, rt.CID)
		if err != nil {
			return &im.res, fmt.Errorf("check %s: %w", rt.CID, err)
		}
		rt.Complete, rt.Missing = !missing.Defined(), missing
		if missing.Defined() {
			incomplete = append(incomplete, fmt.Sprintf("%s (block %s missing)", rt.CID, missing))
		}
	}
	if len(incomplete) > 0 {
		return &im.res, fmt.Errorf("%w: the CAR lacks blocks of root %v", ErrIncomplete, incomplete)
	}
	return &im.res, nil
}

// header reads the CAR's header and checks its roots. The (CARv1)
// header must be in DAG-CBOR's one canonical form, as every CAR writer
// known writes it: go-car's decoder alone lets some altered headers
// through (a CBOR tag other than the link tag, for one).
func (im *importer) header() error {
	im.in.tail = []byte{}
	br, err := carv2.NewBlockReader(im.in, carv2.MaxAllowedHeaderSize(MaxHeaderSize))
	tail := im.in.tail
	im.in.tail = nil
	if err != nil {
		return fmt.Errorf("CAR header: %w", im.classify(err))
	}
	if len(br.Roots) == 0 || len(br.Roots) > MaxRoots {
		return fmt.Errorf("CAR header: %w: %d roots, want 1 to %d", ErrMalformed, len(br.Roots), MaxRoots)
	}
	if canon, err := encodeHeader(br.Roots); err != nil || !bytes.HasSuffix(tail, canon) {
		return fmt.Errorf("CAR header: %w: not in canonical DAG-CBOR form", ErrMalformed)
	}
	im.br, im.res.Version, im.roots = br, br.Version, cidSet{}
	for _, c := range br.Roots {
		if err := checkCID(c); err != nil {
			return fmt.Errorf("CAR header: root %s: %w", c, err)
		}
		if im.roots.add(c) {
			im.res.Roots = append(im.res.Roots, Root{CID: c, Kind: KindContent})
		}
	}
	return nil
}

// blocks reads, checks and keeps every block.
func (im *importer) blocks(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := im.in.n
		c, data, err := im.next()
		if err == io.EOF {
			return nil
		}
		if err == nil {
			err = im.keep(ctx, c, data)
		}
		if err != nil {
			var be *BlockError
			if errors.As(err, &be) || errors.Is(err, store.ErrNoSpace) || ctx.Err() != nil {
				return err
			}
			return &BlockError{Offset: off, CID: c, Err: err}
		}
		im.res.Blocks++
		if im.progress != nil {
			im.progress(Progress{Bytes: im.in.n, Blocks: im.res.Blocks})
		}
	}
}

// next reads the next section and checks the block in it; io.EOF means
// the CAR ended cleanly.
func (im *importer) next() (cid.Cid, []byte, error) {
	start := im.in.n
	c, r, size, err := im.br.NextReader()
	if err == io.EOF && im.in.n == start {
		return cid.Undef, nil, io.EOF // the end, between two sections
	}
	if err != nil {
		return cid.Undef, nil, im.classify(err)
	}
	if err := checkCID(c); err != nil {
		return c, nil, err
	}
	if size > MaxBlockSize {
		return c, nil, fmt.Errorf("%w: a block of %d bytes, at most %d", ErrMalformed, size, MaxBlockSize)
	}
	data := im.buf[:size]
	if _, err := io.ReadFull(r, data); err != nil {
		return c, nil, im.classify(err)
	}
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return c, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !sum.Equals(c) {
		return c, nil, fmt.Errorf("%w: its bytes hash to %s", store.ErrCorrupt, sum)
	}
	return c, data, nil
}

// classify turns a read error into ErrTruncated (the CAR ends inside a
// header or section) or ErrMalformed (anything else the format reader
// refused). A section whose length prefix is too short to hold its CID
// also ends early; it is malformed when bytes follow.
func (im *importer) classify(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		if im.in.atEOF() {
			return fmt.Errorf("%w: it ends early", ErrTruncated)
		}
		return fmt.Errorf("%w: a length prefix shorter than its CID", ErrMalformed)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// keep decodes the verified block c and stores it unless the store holds
// it already.
func (im *importer) keep(ctx context.Context, c cid.Cid, data []byte) error {
	nd, err := decode(c, data)
	if err != nil {
		return err
	}
	if im.roots.has(c) && c.Prefix().Codec == cid.Raw && len(data) <= manifest.MaxRecordSize && bytes.HasPrefix(data, recordPrefix) {
		im.records[c] = bytes.Clone(data)
	}
	has, err := im.st.Blockstore().Has(ctx, c)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if c.Prefix().Codec == cid.Raw {
		if kept, err := im.leaves.leaf(ctx, c, data, has); err != nil || kept {
			im.countStored(kept)
			return err
		}
	} else if err := im.leaves.node(ctx, c, nd); err != nil {
		return err
	}
	if has {
		return nil
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return err
	}
	if err := im.st.Blockstore().Put(ctx, b); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	im.countStored(true)
	return nil
}

func (im *importer) countStored(stored bool) {
	if stored {
		im.res.Stored++
	}
}

// findRecords decodes the root blocks that look like name records and
// marks the roots that are records and the manifests they name.
func (im *importer) findRecords(now time.Time) {
	manifests := cidSet{}
	for i := range im.res.Roots {
		rt := &im.res.Roots[i]
		data, ok := im.records[rt.CID]
		if !ok {
			continue
		}
		rec, err := manifest.DecodeRecord(data, now)
		im.res.Records = append(im.res.Records, RecordBlock{CID: rt.CID, Data: data, Record: rec, Err: err})
		rt.Kind = KindRecord
		if rec != nil {
			if mc, err := cid.Decode(rec.Manifest); err == nil {
				manifests.add(mc)
			}
		}
	}
	for i := range im.res.Roots {
		if rt := &im.res.Roots[i]; rt.Kind == KindContent && manifests.has(rt.CID) {
			rt.Kind = KindManifest
		}
	}
}

// walk checks that the whole DAG below root is in st and returns the
// first block missing (cid.Undef if none). Inner nodes are read, and so
// re-hashed, through the store; a raw leaf has no links, so its presence
// is enough: every block the store holds was checked against its CID on
// the way in (as the store's pinner does).
func walk(ctx context.Context, st *store.Store, root cid.Cid) (cid.Cid, error) {
	bs := st.Blockstore()
	seen := cidSet{}
	stack := [][]cid.Cid{{root}}
	for len(stack) > 0 {
		top := len(stack) - 1
		if len(stack[top]) == 0 {
			stack = stack[:top]
			continue
		}
		c := stack[top][0]
		stack[top] = stack[top][1:]
		if !seen.add(c) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return cid.Undef, err
		}
		if checkCID(c) != nil {
			return c, nil
		}
		data, inline := identityData(c)
		switch {
		case inline:
		case c.Prefix().Codec == cid.Raw:
			has, err := bs.Has(ctx, c)
			if err != nil {
				return cid.Undef, err
			}
			if !has {
				return c, nil
			}
			continue
		default:
			b, err := bs.Get(ctx, c)
			if ipld.IsNotFound(err) {
				return c, nil
			}
			if err != nil {
				return cid.Undef, err
			}
			data = b.RawData()
		}
		nd, err := decode(c, data)
		if err != nil {
			return c, nil
		}
		if len(nd.links) > 0 {
			stack = append(stack, nd.links)
		}
	}
	return cid.Undef, nil
}

// countingReader counts the bytes the CAR reader took, for the offsets in
// errors, and while tail is not nil keeps the last of them (at least
// MaxHeaderSize and its length prefix), to check the header's form.
type countingReader struct {
	r    *bufio.Reader
	n    int64
	tail []byte
}

// tailKeep is how many bytes read the tail keeps: a header and its length.
const tailKeep = MaxHeaderSize + 16

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.keep(p[:n])
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
		c.keep([]byte{b})
	}
	return b, err
}

func (c *countingReader) keep(p []byte) {
	if c.tail == nil {
		return
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*tailKeep {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailKeep:]...)
	}
}

// atEOF reports whether nothing is left to read.
func (c *countingReader) atEOF() bool {
	_, err := c.r.Peek(1)
	return err != nil
}
