package models

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

// sha256SourcesInDHT looks up providers of sum's DHT key (up to
// maxSHA256Providers, banned peers skipped), connects to them and asks
// each over the resolve protocol which file CID has that sha256.
func (reg *Registry) sha256SourcesInDHT(ctx context.Context, sum string) []sha256Source {
	d := reg.dht
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
		if ai.ID == reg.host.ID() || reg.guard.IsBanned(ai.ID) {
			continue
		}
		if err := reg.host.Connect(ctx, ai); err != nil {
			reg.log.Debug("sha256 provider unreachable", "peer", ai.ID.String(), "err", err)
			continue
		}
		resp, err := protocol.AskResolve(ctx, reg.host, ai.ID, &protocol.ResolveRequest{SHA256: sum})
		if err != nil || resp.CID == "" {
			continue
		}
		if c, err := cid.Decode(resp.CID); err == nil {
			srcs = addSHA256Source(srcs, sha256Source{c: c, size: resp.Size, peers: []peer.ID{ai.ID}})
		}
	}
	return srcs
}
