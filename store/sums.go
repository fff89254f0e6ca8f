package store

import (
	"context"
	"encoding/binary"
	"hash/crc32"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
)

// Serving a leaf costs a SHA-256 of it on every read when the only thing
// that may catch bit rot is its CID; that hash is about a third of a
// seeder's CPU. So every leaf also gets a CRC-32C, taken when its bytes
// were verified on the way in (import, a verified fetch), and a leaf whose
// bytes still match it is served without the SHA-256. CRC-32C is what
// btrfs and ext4 use against rot: it catches every burst of up to 32 bad
// bits and all but one in 2^32 of other damage, and it costs about a
// twentieth of a SHA-256 (SSE4.2/ARMv8 CRC instructions). It is no defence
// against a forger, and need not be: the disk is not one, and every peer
// checks each block against its CID anyway. A leaf that fails its checksum
// is re-hashed, and quarantined if it is bad (verifyingBlockstore).
// `allmende verify` still hashes everything with SHA-256.

// sumsNamespace is where leaf checksums are kept in the metadata store,
// keyed by the leaf's multihash.
const sumsNamespace = "/sums"

// castagnoli is the CRC-32C table; it is never written after init.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C of a leaf's bytes, as FileRef.Sum holds it.
func Checksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// leafSums keeps the checksums of leaf blocks.
type leafSums struct {
	ds datastore.Batching
}

func newLeafSums(meta datastore.Batching) leafSums {
	return leafSums{ds: namespace.Wrap(meta, datastore.NewKey(sumsNamespace))}
}

func sumKey(c cid.Cid) datastore.Key { return dshelp.MultihashToDsKey(c.Hash()) }

// get returns the checksum kept for c, if any.
func (l leafSums) get(ctx context.Context, c cid.Cid) (uint32, bool) {
	v, err := l.ds.Get(ctx, sumKey(c))
	if err != nil || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// matches reports whether data, read as the leaf c, still has the checksum
// kept for it. Without a checksum it reports false.
func (l leafSums) matches(ctx context.Context, c cid.Cid, data []byte) bool {
	sum, ok := l.get(ctx, c)
	return ok && Checksum(data) == sum
}

// put keeps the checksums of verified leaves, given by CID.
func (l leafSums) put(ctx context.Context, sums map[cid.Cid]uint32) error {
	if len(sums) == 0 {
		return nil
	}
	b, err := l.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for c, sum := range sums {
		if err := b.Put(ctx, sumKey(c), binary.BigEndian.AppendUint32(nil, sum)); err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

// delete forgets the checksum of c (its block was removed).
func (l leafSums) delete(ctx context.Context, c cid.Cid) error {
	return l.ds.Delete(ctx, sumKey(c))
}
