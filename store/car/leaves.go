package car

import (
	"context"

	"github.com/allmende/allmende/store"
	"github.com/ipfs/go-cid"
)

// maxExpected bounds the links a leafRouter tracks; leaves beyond it go to
// the block store. A file in 1 MiB leaves keeps at most about two nodes'
// links (2048) pending when its blocks come in pre-order.
const maxExpected = 1 << 20

// leafRouter sends the raw leaves of a UnixFS file larger than a chunk to
// a whole-file copy (store.LeafCopy) when they arrive after their parent,
// in order, as depth-first pre-order brings them. It tracks the links of
// the current file's nodes not yet seen: a file node among them is an
// inner node of that file, a raw block among them one of its leaves; any
// other file node starts a new file, and a non-file node ends the current
// one. Leaves arriving otherwise, or already held, go to the block store
// or nowhere; the copy then has a gap, which costs only the whole-file
// fast path (store.OpenWholeFile), never a block.
type leafRouter struct {
	st     *store.Store
	cur    *store.LeafCopy // nil until the current file's first leaf
	expect cidSet
	copied int64
}

// node notes a non-raw block c of the CAR.
func (lr *leafRouter) node(ctx context.Context, c cid.Cid, nd node) error {
	inFile := lr.expect.has(c)
	if inFile {
		lr.expect.remove(c)
	}
	if !nd.file {
		if inFile {
			return nil
		}
		return lr.end(ctx)
	}
	if !inFile {
		if err := lr.end(ctx); err != nil {
			return err
		}
		if nd.size <= store.ChunkSize {
			return nil // a small file: its leaves go to the block store, as Add does
		}
	}
	for _, l := range nd.links {
		if len(lr.expect) >= maxExpected {
			break
		}
		lr.expect.add(l)
	}
	return nil
}

// leaf takes the verified raw leaf c if it belongs to the current file
// and the store does not hold it (has), and reports whether it kept it.
func (lr *leafRouter) leaf(ctx context.Context, c cid.Cid, data []byte, has bool) (bool, error) {
	if !lr.expect.has(c) {
		return false, nil
	}
	lr.expect.remove(c)
	if has {
		return false, lr.endIfDone(ctx)
	}
	if lr.cur == nil {
		lc, err := lr.st.NewLeafCopy()
		if err != nil {
			return false, err
		}
		lr.cur = lc
	}
	if err := lr.cur.Put(ctx, c, data); err != nil {
		return false, err
	}
	lr.copied += int64(len(data))
	return true, lr.endIfDone(ctx)
}

// endIfDone closes the copy once every part of the file has arrived.
func (lr *leafRouter) endIfDone(ctx context.Context) error {
	if len(lr.expect) > 0 {
		return nil
	}
	return lr.end(ctx)
}

// end closes the current file's copy, recording its leaves.
func (lr *leafRouter) end(ctx context.Context) error {
	clear(lr.expect)
	if lr.cur == nil {
		return nil
	}
	err := lr.cur.Close(ctx)
	lr.cur = nil
	return err
}
