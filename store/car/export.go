package car

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/allmende/allmende/store/manifest"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// exportBuffer is the write buffer of an export: small sections (CIDs,
// inner nodes) go out in large writes; a leaf larger than the free room
// goes straight through.
const exportBuffer = 256 << 10

// Blocks is where Export reads blocks from. It must hand out only bytes
// that match their CIDs: Export writes them as they are. The store's
// Serving() block store is one; it also reads leaves held as references
// into files (no-copy), and checks them by checksum or SHA-256.
type Blocks interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// blockReader is a Blocks that can read a block into a buffer of the
// caller's (the store's Serving block store can), so an export reuses one
// buffer instead of allocating one per block.
type blockReader interface {
	ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error)
}

// ExportOptions configure an export.
type ExportOptions struct {
	// Progress, if set, is called after each block written.
	Progress func(Progress)
}

// Stats tells what an export wrote.
type Stats struct {
	// Roots are the roots in the CAR's header, in order.
	Roots []cid.Cid
	// Bytes and Blocks count what was written, the header included in
	// Bytes.
	Bytes, Blocks int64
}

// Export writes to w a CARv1 whose header lists roots and whose body holds
// every block of their DAGs, root by root, each DAG in depth-first
// pre-order (a node, then each link's subtree in link order), each block
// once: the layout of Kubo's `ipfs dag export`. Identity CIDs carry their
// data and are not written, as Kubo does. Blocks are read from src one at
// a time as they are written; memory holds one block and a set of the
// CIDs written (see cidSet). A block missing from src fails the export
// with ErrIncomplete; w then holds a partial CAR, which the caller
// discards.
func Export(ctx context.Context, src Blocks, w io.Writer, roots []cid.Cid, opts ExportOptions) (Stats, error) {
	parts := make([]part, len(roots))
	for i, r := range roots {
		parts[i] = part{root: r}
	}
	return export(ctx, src, w, roots, parts, opts)
}

// Model is what the CAR of a named model holds.
type Model struct {
	// Content is the root of the model's files (the manifest's Root).
	Content cid.Cid
	// Manifest is the root of the manifest's UnixFS file.
	Manifest cid.Cid
	// Record is the publisher's signed name record naming Manifest, in
	// its wire form (manifest.Record.Encode).
	Record []byte
}

// ExportModel writes the CAR of a named model: a CARv1 whose header lists
// the roots Content, Manifest and the record's block (RecordCID), in that
// order, and whose body holds the record's block, then the manifest's
// DAG, then the content's DAG, as Export writes them. The small parts come
// first so a reader learns the name and the files before the bulk; the
// content root comes first among the roots for tools that take the first
// root as the CAR's content. The record must be a validly signed record
// for Manifest; it may have expired (the receiving node judges that, and
// trust, as it does for records from peers).
func ExportModel(ctx context.Context, src Blocks, w io.Writer, m Model, opts ExportOptions) (Stats, error) {
	rc, err := checkModelRecord(m)
	if err != nil {
		return Stats{}, err
	}
	roots := []cid.Cid{m.Content, m.Manifest, rc}
	parts := []part{{root: rc, data: m.Record}, {root: m.Manifest}, {root: m.Content}}
	return export(ctx, src, w, roots, parts, opts)
}

// checkModelRecord checks that m's record is signed and names m.Manifest,
// and returns its CID.
func checkModelRecord(m Model) (cid.Cid, error) {
	rec, err := manifest.DecodeRecord(m.Record, time.Now())
	if err != nil && !errors.Is(err, manifest.ErrExpired) {
		return cid.Undef, fmt.Errorf("export model: %w", err)
	}
	named, err := cid.Decode(rec.Manifest)
	if err != nil || !named.Equals(m.Manifest) {
		return cid.Undef, fmt.Errorf("export model: %w: the record names manifest %s, not %s", manifest.ErrInvalid, rec.Manifest, m.Manifest)
	}
	return RecordCID(m.Record)
}

// RecordCID is the CID under which a name record travels in a CAR: CIDv1,
// raw codec, sha2-256 of its wire form.
func RecordCID(record []byte) (cid.Cid, error) {
	mh, err := multihash.Sum(record, multihash.SHA2_256, -1)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

// part is one thing an export writes: the DAG below root, or, with data,
// the single raw block root whose bytes are data.
type part struct {
	root cid.Cid
	data []byte
}

// exporter writes one CAR.
type exporter struct {
	src      Blocks
	reader   blockReader // src, if it can read into a buffer
	w        *bufio.Writer
	seen     cidSet
	buf      []byte
	stats    Stats
	progress func(Progress)
}

func export(ctx context.Context, src Blocks, w io.Writer, roots []cid.Cid, parts []part, opts ExportOptions) (Stats, error) {
	if len(roots) == 0 || len(roots) > MaxRoots {
		return Stats{}, fmt.Errorf("export: %d roots, want 1 to %d", len(roots), MaxRoots)
	}
	ex := &exporter{src: src, w: bufio.NewWriterSize(w, exportBuffer), seen: cidSet{}, progress: opts.Progress}
	if r, ok := src.(blockReader); ok {
		ex.reader, ex.buf = r, make([]byte, 0, MaxBlockSize)
	}
	ex.stats.Roots = roots
	hdr, err := encodeHeader(roots)
	if err != nil {
		return Stats{}, err
	}
	if _, err := ex.w.Write(hdr); err != nil {
		return ex.stats, fmt.Errorf("write CAR: %w", err)
	}
	ex.stats.Bytes = int64(len(hdr))
	for _, p := range parts {
		if err := ex.part(ctx, p); err != nil {
			return ex.stats, fmt.Errorf("export %s: %w", p.root, err)
		}
	}
	if err := ex.w.Flush(); err != nil {
		return ex.stats, fmt.Errorf("write CAR: %w", err)
	}
	return ex.stats, nil
}

func (ex *exporter) part(ctx context.Context, p part) error {
	if p.data == nil {
		return ex.walk(ctx, p.root)
	}
	if !ex.seen.add(p.root) {
		return nil
	}
	return ex.write(p.root, p.data)
}

// walk writes the DAG below root in depth-first pre-order. The stack
// holds, per level, the links not yet visited: memory grows with the
// DAG's depth times its width, not its size.
func (ex *exporter) walk(ctx context.Context, root cid.Cid) error {
	stack := [][]cid.Cid{{root}}
	for len(stack) > 0 {
		top := len(stack) - 1
		if len(stack[top]) == 0 {
			stack = stack[:top]
			continue
		}
		c := stack[top][0]
		stack[top] = stack[top][1:]
		if !ex.seen.add(c) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := checkCID(c); err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		data, inline := identityData(c)
		if !inline {
			var err error
			if data, err = ex.read(ctx, c); err != nil {
				return err
			}
			if err := ex.write(c, data); err != nil {
				return err
			}
		}
		if c.Prefix().Codec == cid.Raw {
			continue
		}
		nd, err := decode(c, data)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		if len(nd.links) > 0 {
			stack = append(stack, nd.links)
		}
	}
	return nil
}

// read returns the bytes of block c, in ex.buf when src can read into it.
func (ex *exporter) read(ctx context.Context, c cid.Cid) ([]byte, error) {
	var data []byte
	var err error
	if ex.reader != nil {
		data, err = ex.reader.ReadBlock(ctx, c, ex.buf)
	} else {
		var b blocks.Block
		if b, err = ex.src.Get(ctx, c); err == nil {
			data = b.RawData()
		}
	}
	if ipld.IsNotFound(err) {
		return nil, fmt.Errorf("%w: block %s is not in the store", ErrIncomplete, c)
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("block %s: %w: %d bytes, at most %d", c, ErrMalformed, len(data), MaxBlockSize)
	}
	return data, nil
}

// write writes one section and reports progress.
func (ex *exporter) write(c cid.Cid, data []byte) error {
	n, err := writeSection(ex.w, c, data)
	if err != nil {
		return fmt.Errorf("write CAR: %w", err)
	}
	ex.stats.Bytes += n
	ex.stats.Blocks++
	if ex.progress != nil {
		ex.progress(Progress{Bytes: ex.stats.Bytes, Blocks: ex.stats.Blocks})
	}
	return nil
}
