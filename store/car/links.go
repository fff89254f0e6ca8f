package car

import (
	"bytes"
	"fmt"

	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/verifcid"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/ipld/go-ipld-prime/traversal"
	"github.com/multiformats/go-multihash"
)

// node is what a block says about its DAG.
type node struct {
	// links are the CIDs it links to, in order.
	links []cid.Cid
	// file is set for a UnixFS file node (DAG-PB, type file or raw): its
	// links are the file's parts in order.
	file bool
	// size is a file node's content size.
	size uint64
}

// decode parses data, the verified bytes of block c, by c's codec and
// returns its links. The codecs are those of UnixFS (raw, DAG-PB) and
// the IPLD data codecs Kubo's `dag import` takes (DAG-CBOR, DAG-JSON);
// anything else is refused, since its links could not be followed.
func decode(c cid.Cid, data []byte) (node, error) {
	switch codec := c.Prefix().Codec; codec {
	case cid.Raw:
		return node{}, nil
	case cid.DagProtobuf:
		return decodePB(data)
	case cid.DagCBOR, cid.DagJSON:
		return decodeIPLD(codec, data)
	default:
		return node{}, fmt.Errorf("%w: codec 0x%x is not one of raw, dag-pb, dag-cbor, dag-json", ErrMalformed, codec)
	}
}

func decodePB(data []byte) (node, error) {
	pn, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return node{}, fmt.Errorf("%w: dag-pb: %v", ErrMalformed, err)
	}
	n := node{links: make([]cid.Cid, len(pn.Links()))}
	for i, l := range pn.Links() {
		n.links[i] = l.Cid
	}
	n.size, n.file = ufs.FileSize(pn)
	return n, nil
}

func decodeIPLD(codec uint64, data []byte) (node, error) {
	nb := basicnode.Prototype.Any.NewBuilder()
	var err error
	if codec == cid.DagCBOR {
		err = dagcbor.Decode(nb, bytes.NewReader(data))
	} else {
		err = dagjson.Decode(nb, bytes.NewReader(data))
	}
	if err != nil {
		return node{}, fmt.Errorf("%w: codec 0x%x: %v", ErrMalformed, codec, err)
	}
	links, err := traversal.SelectLinks(nb.Build())
	if err != nil {
		return node{}, fmt.Errorf("%w: codec 0x%x: %v", ErrMalformed, codec, err)
	}
	n := node{links: make([]cid.Cid, 0, len(links))}
	for _, l := range links {
		cl, ok := l.(cidlink.Link)
		if !ok {
			return node{}, fmt.Errorf("%w: codec 0x%x: a link that is not a CID", ErrMalformed, codec)
		}
		n.links = append(n.links, cl.Cid)
	}
	return n, nil
}

// allowedHashes are the hash functions a CAR's CIDs may use: boxo's
// default list (the SHA-2 and SHA-3 families, BLAKE2 and BLAKE3 with
// digests of at least 160 bits, identity) without SHA-1, which it keeps
// for git objects and which is broken for collisions: a DAG below a
// trusted root must not be swappable. It is never written.
var allowedHashes = verifcid.NewOverridingAllowlist(verifcid.DefaultAllowlist, map[uint64]bool{multihash.SHA1: false})

// checkCID refuses a CID whose hash function is unknown or weak (see
// allowedHashes), whose digest is too short or long, or an identity CID over
// MaxIdentitySize.
func checkCID(c cid.Cid) error {
	if err := verifcid.ValidateCid(allowedHashes, c); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p := c.Prefix(); p.MhType == multihash.IDENTITY && p.MhLength > MaxIdentitySize {
		return fmt.Errorf("%w: identity CID of %d bytes, at most %d", ErrMalformed, p.MhLength, MaxIdentitySize)
	}
	return nil
}

// identityData returns the data inlined in an identity CID; ok is false
// for any other CID.
func identityData(c cid.Cid) (data []byte, ok bool) {
	if c.Prefix().MhType != multihash.IDENTITY {
		return nil, false
	}
	dm, err := multihash.Decode(c.Hash())
	if err != nil {
		return nil, false
	}
	return dm.Digest, true
}
