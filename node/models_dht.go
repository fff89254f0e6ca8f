package node

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// Bounds of a sha256 lookup in the DHT.
const (
	// sha256LookupTimeout bounds the DHT search for a sha256's providers.
	sha256LookupTimeout = 30 * time.Second
	// maxSHA256Providers is the most providers asked about one sha256.
	maxSHA256Providers = 8
)

// SHA256Key is the DHT key under which a node announces that it holds a
// file with whole-file sha256 sum: the multihash of manifest.SHA256CID. For
// a file of one block it equals the block's own key.
func SHA256Key(sum string) (mh.Multihash, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return nil, err
	}
	c, err := manifest.SHA256CID(raw)
	if err != nil {
		return nil, err
	}
	return c.Hash(), nil
}

// sha256KeysOf is the providing hook for routing: the sha256 keys of the
// files of indexed models whose file root is c (usually one). The routing
// code adds them to the keys it announces for a pinned root, so that
// `fetch sha256:<hex>` finds this node through the DHT.
func (x *modelIndex) sha256KeysOf(c cid.Cid) []mh.Multihash {
	if x == nil {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []mh.Multihash
	for sum, f := range x.files {
		if f.CID == c.String() {
			if k, err := SHA256Key(sum); err == nil {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// sha256SourcesInDHT looks up providers of sum's DHT key (up to
// maxSHA256Providers, banned peers skipped), connects to them and asks
// each over the resolve protocol which file CID has that sha256.
func (n *Node) sha256SourcesInDHT(ctx context.Context, sum string) []sha256Source {
	d := n.routing.DHT()
	if d == nil {
		return nil
	}
	key, err := SHA256Key(sum)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, sha256LookupTimeout)
	defer cancel()
	var srcs []sha256Source
	for ai := range d.FindProvidersAsync(ctx, cid.NewCidV1(cid.Raw, key), maxSHA256Providers) {
		if ai.ID == n.host.ID() || n.guard.IsBanned(ai.ID) {
			continue
		}
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("sha256 provider unreachable", "peer", ai.ID.String(), "err", err)
			continue
		}
		resp, err := protocol.AskResolve(ctx, n.host, ai.ID, &protocol.ResolveRequest{SHA256: sum})
		if err != nil || resp.CID == "" {
			continue
		}
		if c, err := cid.Decode(resp.CID); err == nil {
			srcs = addSHA256Source(srcs, sha256Source{c: c, size: resp.Size, peers: []peer.ID{ai.ID}})
		}
	}
	return srcs
}
