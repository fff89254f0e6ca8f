package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	pinner "github.com/ipfs/boxo/pinning/pinner"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Pin is a root kept by the store, with everything below it.
type Pin struct {
	CID  cid.Cid `json:"cid"`
	Name string  `json:"name"`
	// Size is the content size: file bytes for a file, the sum over its
	// files for a directory (the DAG's cumulative size for other nodes).
	Size uint64 `json:"size"`
}

// Pin keeps root and every block below it, all of which must be local. name
// is a label for people (a file name, a model name). The caller holds
// Blockstore().PinLock from before it wrote the blocks until Pin returns,
// so GC cannot take them in between. Pin does not take the lock itself:
// the lock is a read lock, and taking it again while a GC waits for it
// would deadlock.
func (s *Store) Pin(ctx context.Context, root cid.Cid, name string) error {
	nd, err := s.dag.Get(ctx, root)
	if err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	if err := s.pins.Pin(ctx, nd, true, name); err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	if err := s.pins.Flush(ctx); err != nil {
		return fmt.Errorf("pin %s: %w", root, err)
	}
	return nil
}

// Unpin releases root; its blocks go at the next GC unless another pin
// holds them. Unpinning a root that is not pinned returns ErrNotFound.
func (s *Store) Unpin(ctx context.Context, root cid.Cid) error {
	if err := s.pins.Unpin(ctx, root, true); err != nil {
		if errors.Is(err, pinner.ErrNotPinned) {
			return fmt.Errorf("unpin %s: %w: it is not pinned", root, ErrNotFound)
		}
		return fmt.Errorf("unpin %s: %w", root, err)
	}
	return s.pins.Flush(ctx)
}

// Pins lists the pinned roots.
func (s *Store) Pins(ctx context.Context) ([]Pin, error) {
	var out []Pin
	for p := range s.pins.RecursiveKeys(ctx, true) {
		if p.Err != nil {
			return nil, fmt.Errorf("list pins: %w", p.Err)
		}
		size, err := s.ContentSize(ctx, p.Pin.Key)
		if err != nil {
			return nil, fmt.Errorf("list pins: %w", err)
		}
		out = append(out, Pin{CID: p.Pin.Key, Name: p.Pin.Name, Size: size})
	}
	return out, nil
}

// IsPinned reports whether root is pinned as a root.
func (s *Store) IsPinned(ctx context.Context, root cid.Cid) (bool, error) {
	_, pinned, err := s.pins.IsPinnedWithType(ctx, root, pinner.Recursive)
	return pinned, err
}

// ContentSize is the size of the content below root, computed from local
// blocks without reading file data.
func (s *Store) ContentSize(ctx context.Context, root cid.Cid) (uint64, error) {
	nd, err := s.dag.Get(ctx, root)
	if err != nil {
		return 0, err
	}
	return contentSize(ctx, s.dag, nd)
}

func contentSize(ctx context.Context, dag ipld.NodeGetter, nd ipld.Node) (uint64, error) {
	pn, ok := nd.(*merkledag.ProtoNode)
	if !ok {
		return uint64(len(nd.RawData())), nil
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nd.Size()
	}
	switch fsn.Type() {
	case unixfs.TFile, unixfs.TRaw:
		return fsn.FileSize(), nil
	case unixfs.TDirectory, unixfs.THAMTShard:
		var total uint64
		for _, l := range pn.Links() {
			child, err := l.GetNode(ctx, dag)
			if err != nil {
				return 0, err
			}
			n, err := contentSize(ctx, dag, child)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	default:
		return 0, nil
	}
}

// pinWalkDAG is the DAG the pinner walks to pin a root recursively. A raw
// block has no links, so the walk only needs to know it is held: checking
// the index instead of reading spares re-hashing every leaf of a model
// (about 0.7 s per GiB) right after the fetch or import that brought it
// verified it. Whoever reads the bytes later still gets them re-hashed.
type pinWalkDAG struct {
	ipld.DAGService
	bs blockstore.Blockstore
}

// Get returns the node for c; for a raw block, a node without data that
// stands for a held leaf.
func (d pinWalkDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	if c.Prefix().Codec != cid.Raw {
		return d.DAGService.Get(ctx, c)
	}
	has, err := d.bs.Has(ctx, c)
	if err != nil {
		return nil, err
	}
	if !has {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	b, err := blocks.NewBlockWithCid(nil, c)
	if err != nil {
		return nil, err
	}
	return &merkledag.RawNode{Block: b}, nil
}

// GetMany returns the nodes for cids as Get does.
func (d pinWalkDAG) GetMany(ctx context.Context, cids []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cids))
	defer close(out)
	for _, c := range cids {
		nd, err := d.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	return out
}
