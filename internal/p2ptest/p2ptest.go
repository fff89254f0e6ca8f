// Package p2ptest has the small libp2p fixtures that the tests of several
// packages share: loopback hosts that close with the test, and raw blocks.
package p2ptest

import (
	"bytes"
	"fmt"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multihash"
)

// Host starts a libp2p host listening on 127.0.0.1 (TCP, no relay) that
// is closed when the test ends.
func Host(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// RawBlocks returns n distinct raw blocks (CIDv1, sha2-256) of about size
// bytes each, as file leaves are.
func RawBlocks(n, size int) []blocks.Block {
	out := make([]blocks.Block, n)
	for i := range out {
		unit := []byte(fmt.Sprintf("block %d ", i))
		data := bytes.Repeat(unit, max(1, size/len(unit)))
		c, _ := cid.V1Builder{Codec: cid.Raw, MhType: multihash.SHA2_256}.Sum(data)
		out[i], _ = blocks.NewBlockWithCid(data, c)
	}
	return out
}
