package protocol

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ResolveProtocol is allmende's resolve protocol: one request and one
// answer per stream, each a 4-byte big-endian length and a JSON message.
// A peer asks "which file CID has whole-file sha256 X", "which signed
// records do you have for name N at revision R", or "send bytes [off,
// off+len) of file CID C" (for reading a model header without its leaves;
// the asker verifies them against a hash it already trusts).
const ResolveProtocol = "/allmende/resolve/1.0.0"

// Bounds of the resolve protocol.
const (
	// MaxResolveRequest is the largest request accepted.
	MaxResolveRequest = 4 << 10
	// MaxRangeLength is the most bytes one range request may ask for.
	MaxRangeLength = 1 << 20
	// MaxResolveResponse is the largest answer accepted (a range, base64
	// encoded, plus records).
	MaxResolveResponse = 2*MaxRangeLength + 256<<10
	// MaxRecords is the most records one answer may carry.
	MaxRecords = 16
	// MaxAttestations is the most attestations one answer may carry.
	MaxAttestations = 16
	// MaxRecordSize bounds one signed record.
	MaxRecordSize = 8 << 10
	// ResolveTimeout bounds one request and its answer.
	ResolveTimeout = 15 * time.Second
)

// ErrProtocol means a peer broke the resolve protocol.
var ErrProtocol = errors.New("resolve protocol violation")

// ResolveRequest asks one question; exactly one of SHA256, Name or CID is
// set.
type ResolveRequest struct {
	// SHA256 asks for the file with this whole-file sha256 (hex).
	SHA256 string `json:"sha256,omitempty"`
	// Name and Revision ask for signed name records.
	Name     string `json:"name,omitempty"`
	Revision string `json:"revision,omitempty"`
	// CID, Offset and Length ask for a byte range of a UnixFS file.
	CID    string `json:"cid,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
	Length uint64 `json:"length,omitempty"`
}

// Validate checks a request's shape and bounds.
func (r *ResolveRequest) Validate() error {
	n := 0
	for _, s := range []string{r.SHA256, r.Name, r.CID} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: a request asks exactly one question", ErrProtocol)
	}
	if r.Length > MaxRangeLength {
		return fmt.Errorf("%w: range of %d bytes, at most %d", ErrProtocol, r.Length, MaxRangeLength)
	}
	return nil
}

// ResolveResponse answers a ResolveRequest. Empty fields mean "not here".
type ResolveResponse struct {
	// CID and Size answer a sha256 question.
	CID  string `json:"cid,omitempty"`
	Size uint64 `json:"size,omitempty"`
	// Records answer a name question: signed records, opaque here.
	Records [][]byte `json:"records,omitempty"`
	// Attestations come with records: signed provenance attestations of
	// the manifest they name, opaque here.
	Attestations [][]byte `json:"attestations,omitempty"`
	// Data answers a range question.
	Data []byte `json:"data,omitempty"`
	// Error says why the peer could not answer.
	Error string `json:"error,omitempty"`
}

// ResolveHandler answers requests from remote peers. It must bound its
// work by ctx.
type ResolveHandler func(ctx context.Context, from peer.ID, req *ResolveRequest) *ResolveResponse

// ServeResolve answers ResolveProtocol streams on h with handle.
func ServeResolve(h host.Host, log *slog.Logger, handle ResolveHandler) {
	h.SetStreamHandler(ResolveProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(ResolveTimeout))
		var req ResolveRequest
		if err := readMsg(s, MaxResolveRequest, &req); err != nil {
			log.Debug("resolve: bad request", "peer", s.Conn().RemotePeer().String(), "err", err)
			s.Reset()
			return
		}
		resp := &ResolveResponse{Error: "bad request"}
		if err := req.Validate(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), ResolveTimeout)
			resp = handle(ctx, s.Conn().RemotePeer(), &req)
			cancel()
		}
		if err := writeMsg(s, resp); err != nil {
			log.Debug("resolve: answer failed", "peer", s.Conn().RemotePeer().String(), "err", err)
			s.Reset()
		}
	})
}

// AskResolve sends req to p and returns its answer, checked against the
// protocol's bounds.
func AskResolve(ctx context.Context, h host.Host, p peer.ID, req *ResolveRequest) (*ResolveResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, ResolveProtocol)
	if err != nil {
		return nil, fmt.Errorf("resolve via %s: %w", p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	if err := writeMsg(s, req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("resolve via %s: %w", p, err)
	}
	s.CloseWrite()
	var resp ResolveResponse
	if err := readMsg(s, MaxResolveResponse, &resp); err != nil {
		s.Reset()
		return nil, fmt.Errorf("resolve via %s: %w", p, err)
	}
	if err := resp.check(req); err != nil {
		return nil, fmt.Errorf("resolve via %s: %w", p, err)
	}
	return &resp, nil
}

func (r *ResolveResponse) check(req *ResolveRequest) error {
	if len(r.Records) > MaxRecords || len(r.Attestations) > MaxAttestations || uint64(len(r.Data)) > req.Length {
		return fmt.Errorf("%w: answer exceeds the limits", ErrProtocol)
	}
	for _, rec := range r.Records {
		if len(rec) > MaxRecordSize {
			return fmt.Errorf("%w: record of %d bytes, at most %d", ErrProtocol, len(rec), MaxRecordSize)
		}
	}
	return nil
}

func writeMsg(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(append(hdr[:], body...)); err != nil {
		return err
	}
	return nil
}

func readMsg(r io.Reader, limit uint32, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > limit {
		return fmt.Errorf("%w: message of %d bytes, at most %d", ErrProtocol, n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}
