package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store/format"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/ufs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds of byte-range reads of a file DAG.
const (
	// MaxLocalRange is the most bytes one range read returns (a header of
	// up to format.MaxHeaderSize fits).
	MaxLocalRange = 128 << 20
)

// Inspect parses the safetensors and GGUF headers of a file or model,
// fetching only header bytes from peers: for a named model the exact header
// span (verified against the manifest's header sha256), for a CID only the
// leaves that hold the header.
func (reg *Registry) Inspect(ctx context.Context, req api.InspectRequest) (api.InspectResult, error) {
	var received atomic.Uint64
	res, err := reg.inspect(ctx, req, &received)
	if err != nil {
		return res, err
	}
	res.Received = received.Load()
	return res, nil
}

func (reg *Registry) inspect(ctx context.Context, req api.InspectRequest, received *atomic.Uint64) (api.InspectResult, error) {
	if strings.HasPrefix(req.Ref, api.SHA256Prefix) {
		sum, err := ParseSHA256Ref(req.Ref)
		if err != nil {
			return api.InspectResult{}, err
		}
		c, size, err := reg.findSHA256(ctx, sum)
		if err != nil {
			return api.InspectResult{}, err
		}
		return api.InspectResult{Files: []api.InspectFile{reg.inspectCID(ctx, c, size, received)}}, nil
	}
	if c, err := cid.Decode(req.Ref); err == nil {
		return api.InspectResult{Files: []api.InspectFile{reg.inspectCID(ctx, c, 0, received)}}, nil
	}
	m, rn, err := reg.ResolveManifest(ctx, req.Ref, req.TrustAny, reg.timeout, received)
	if err != nil {
		return api.InspectResult{}, err
	}
	sel, err := manifest.Select(m.Files, req.Include, req.Exclude)
	if err != nil {
		return api.InspectResult{}, api.BadInput(fmt.Errorf("inspect: %w", err))
	}
	res := api.InspectResult{Name: m.Name, Revision: m.Revision, Publisher: rn.Record.Publisher}
	if mc, err := cid.Decode(rn.Record.Manifest); err == nil {
		res.Attestations = reg.Attestations(mc, m)
	}
	for _, f := range sel {
		if format.Detect(f.Path) == "" {
			continue
		}
		res.Files = append(res.Files, reg.inspectFile(ctx, f, received))
	}
	return res, nil
}

// inspectFile reads a manifest file's header span, locally or as a range
// from a peer, checks it against the manifest and parses it.
func (reg *Registry) inspectFile(ctx context.Context, f manifest.File, received *atomic.Uint64) api.InspectFile {
	out := api.InspectFile{Path: f.Path, CID: f.CID, Size: f.Size}
	c, err := cid.Decode(f.CID)
	if err != nil || f.Header == nil {
		r := reg.inspectCID(ctx, c, f.Size, received)
		r.Path = f.Path
		return r
	}
	hdr, err := reg.headerBytes(ctx, c, f.Header.Size, received)
	if err == nil {
		if sum := sha256.Sum256(hdr); hex.EncodeToString(sum[:]) != f.Header.SHA256 {
			err = fmt.Errorf("header bytes do not match the manifest's header sha256")
		}
	}
	if err == nil {
		out.Info, err = headerInfo(format.Parse(f.Header.Format, bytes.NewReader(hdr), int64(f.Size)))
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

// headerBytes returns the first size bytes of file c: from the local store
// if it has them, else from the first peer that sends them.
func (reg *Registry) headerBytes(ctx context.Context, c cid.Cid, size uint64, received *atomic.Uint64) ([]byte, error) {
	if data, err := readRange(ctx, reg.store.LocalDAG(), c, 0, size); err == nil {
		return data, nil
	}
	for _, p := range reg.host.Network().Peers() {
		data, err := reg.rangeFrom(ctx, p, c, size, received)
		if err == nil {
			return data, nil
		}
		reg.log.Debug("range request failed", "peer", p.String(), "cid", c.String(), "err", err)
	}
	return nil, fmt.Errorf("%w: no connected peer sent the header of %s", api.ErrNotFound, c)
}

func (reg *Registry) rangeFrom(ctx context.Context, p peer.ID, c cid.Cid, size uint64, received *atomic.Uint64) ([]byte, error) {
	var buf []byte
	for off := uint64(0); off < size; {
		l := min(size-off, protocol.MaxRangeLength)
		resp, err := protocol.AskResolve(ctx, reg.host, p, &protocol.ResolveRequest{CID: c.String(), Offset: off, Length: l})
		if err != nil {
			return nil, err
		}
		received.Add(uint64(len(resp.Data)))
		if resp.Error != "" || uint64(len(resp.Data)) != l {
			return nil, fmt.Errorf("peer sent %d of %d bytes: %s", len(resp.Data), l, resp.Error)
		}
		buf = append(buf, resp.Data...)
		off += l
	}
	return buf, nil
}

// inspectCID parses the header of file c, fetching only the blocks on the
// path to the header bytes (their bytes added to received).
func (reg *Registry) inspectCID(ctx context.Context, c cid.Cid, size uint64, received *atomic.Uint64) api.InspectFile {
	out := api.InspectFile{CID: c.String(), Size: size}
	session := reg.fetch.NewSession(ctx)
	defer func() { received.Add(session.Received()) }()
	ra, err := ufs.NewReaderAt(ctx, session, c)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Size = ra.Size()
	var magic [4]byte
	kind := format.Safetensors
	if _, err := ra.ReadAt(magic[:], 0); err == nil && string(magic[:]) == "GGUF" {
		kind = format.GGUF
	}
	if out.Info, err = headerInfo(format.Parse(kind, ra, int64(ra.Size()))); err != nil {
		out.Error = err.Error()
	}
	return out
}

// readRange reads length bytes at offset of the UnixFS file c through ng.
func readRange(ctx context.Context, ng ipld.NodeGetter, c cid.Cid, offset, length uint64) ([]byte, error) {
	ra, err := ufs.NewReaderAt(ctx, ng, c)
	if err != nil {
		return nil, err
	}
	if offset > ra.Size() || length > ra.Size()-offset || length > MaxLocalRange {
		return nil, fmt.Errorf("range %d+%d outside %s (%d bytes)", offset, length, c, ra.Size())
	}
	buf := make([]byte, length)
	if _, err := ra.ReadAt(buf, int64(offset)); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// headerInfo is a parsed header as the API presents it.
func headerInfo(i *format.Info, err error) (*api.HeaderInfo, error) {
	if i == nil {
		return nil, err
	}
	h := api.HeaderInfo(*i)
	return &h, err
}
