package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// BulkID is allmende's bulk transfer protocol. Bitswap moves one block per
// want with a protobuf message around each; between allmende nodes, a
// fetch instead asks one peer for a run of blocks (typically the leaves of
// a file, in file order) and receives them streamed back to back on one
// stream, so a transfer costs little more than the raw stream.
//
// Wire format (all integers unsigned varints):
//
//	request:  count, then count times: len(cid), cid bytes
//	response: per requested CID, in request order:
//	          statusBlock, len(data), data   — the block
//	          statusMissing                  — the peer does not hold it
//
// The server closes its side after the last answer. The client verifies
// every block against the CID it asked for before handing it on; a peer
// that sends a wrong block is cut off with ErrBulkCorrupt.
const BulkID = protocol.ID("/allmende/bulk/1.0.0")

// Limits of the bulk protocol, checked before anything is allocated.
const (
	// MaxBulkCIDs bounds the CIDs in one request.
	MaxBulkCIDs = 4096
	// MaxBulkCIDLen bounds one encoded CID.
	MaxBulkCIDLen = 128
	// MaxBulkBlockSize bounds one block (allmende's chunks are 1 MiB;
	// bitswap's limit is 2 MiB).
	MaxBulkBlockSize = 2 << 20
	// bulkRequestTimeout bounds reading a request on the server.
	bulkRequestTimeout = 30 * time.Second
	// bulkBufferSize is the buffered writer's size on the server.
	bulkBufferSize = 64 << 10
	// BulkIdleTimeout fails a bulk transfer when the next block takes
	// longer than this, so a stalling peer's blocks go to other sources.
	BulkIdleTimeout = 30 * time.Second
)

// Response status bytes.
const (
	statusBlock   = 0
	statusMissing = 1
)

// Errors of the bulk protocol.
var (
	// ErrBulkCorrupt: a peer sent a block that does not match its CID or
	// broke the wire format. Do not ask that peer again in this fetch.
	ErrBulkCorrupt = errors.New("bulk: peer sent bad data")
	// ErrBulkRequest: a request breaks the limits above.
	ErrBulkRequest = errors.New("bulk: bad request")
)

// BlockGetter is what a bulk server reads blocks from; a blockstore is one.
type BlockGetter interface {
	Get(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// BulkObserver hears of what a bulk server answers: Requested with a
// request's CIDs when it arrives, Served with each of them once answered,
// sent or not (missing, or the stream failed first). A super-seeder
// (swarm.Seeder) counts its uploads through it. Both are called from the
// stream's goroutine and must not block.
type BulkObserver interface {
	Requested(p peer.ID, cids []cid.Cid)
	Served(p peer.ID, c cid.Cid, sent bool)
}

// BulkServer answers bulk requests from a local block source.
type BulkServer struct {
	blocks BlockGetter
	log    *slog.Logger
	// observer, if set, hears of every request (SetObserver).
	observer atomic.Pointer[BulkObserver]
	// sent counts block bytes and blocks sent.
	sentBytes, sentBlocks atomic.Uint64
}

// NewBulkServer serves blocks from bs on h under BulkID until h closes or
// Close is called.
func NewBulkServer(h host.Host, bs BlockGetter, log *slog.Logger) *BulkServer {
	s := &BulkServer{blocks: bs, log: log}
	h.SetStreamHandler(BulkID, s.handle)
	return s
}

// SetObserver makes o hear of every request answered from now on.
func (s *BulkServer) SetObserver(o BulkObserver) { s.observer.Store(&o) }

// observe returns the observer, or one that hears nothing.
func (s *BulkServer) observe() BulkObserver {
	if o := s.observer.Load(); o != nil {
		return *o
	}
	return nopObserver{}
}

type nopObserver struct{}

func (nopObserver) Requested(peer.ID, []cid.Cid)  {}
func (nopObserver) Served(peer.ID, cid.Cid, bool) {}

// Sent returns the block bytes and blocks served so far.
func (s *BulkServer) Sent() (bytes, count uint64) {
	return s.sentBytes.Load(), s.sentBlocks.Load()
}

// bulkReadBuffer is the buffer a bulk server reads blocks into: one leaf
// of the unixfs-v1-2025 profile (1 MiB). Bigger blocks get their own.
const bulkReadBuffer = 1 << 20

// BlockReader is a block store that can read a block's bytes into a
// buffer the caller reuses (in buf when they fit, else in memory of its
// own). A bulk server given one allocates nothing per block it sends.
type BlockReader interface {
	ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error)
}

// read returns the bytes of block c, in *buf when the store can do that.
func (s *BulkServer) read(ctx context.Context, c cid.Cid, buf *[]byte) ([]byte, error) {
	r, ok := s.blocks.(BlockReader)
	if !ok {
		b, err := s.blocks.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		return b.RawData(), nil
	}
	if *buf == nil {
		*buf = make([]byte, bulkReadBuffer)
	}
	return r.ReadBlock(ctx, c, *buf)
}

func (s *BulkServer) handle(st network.Stream) {
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(bulkRequestTimeout))
	cids, err := readRequest(bufio.NewReader(st))
	if err != nil {
		s.log.Debug("bulk request refused", "peer", st.Conn().RemotePeer().String(), "err", err)
		st.Reset()
		return
	}
	st.SetReadDeadline(time.Time{})
	p, obs := st.Conn().RemotePeer(), s.observe()
	obs.Requested(p, cids)
	answered := 0
	defer func() {
		for _, c := range cids[answered:] {
			obs.Served(p, c, false)
		}
	}()
	w := bufio.NewWriterSize(st, bulkBufferSize)
	var buf []byte
	for _, c := range cids {
		sent, err := s.answer(w, c, &buf)
		if err != nil {
			st.Reset()
			return
		}
		answered++
		obs.Served(p, c, sent)
	}
	if err := w.Flush(); err != nil {
		st.Reset()
	}
}

// answer writes the answer for c to w: the block, or statusMissing if it
// is not held. It reports whether the block was sent; an error is the
// stream's.
func (s *BulkServer) answer(w *bufio.Writer, c cid.Cid, buf *[]byte) (bool, error) {
	var hdr [1 + binary.MaxVarintLen64]byte
	data, err := s.read(context.Background(), c, buf)
	if err != nil {
		hdr[0] = statusMissing
		_, err := w.Write(hdr[:1])
		return false, err
	}
	hdr[0] = statusBlock
	n := binary.PutUvarint(hdr[1:], uint64(len(data)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return false, err
	}
	if _, err := w.Write(data); err != nil {
		return false, err
	}
	s.sentBytes.Add(uint64(len(data)))
	s.sentBlocks.Add(1)
	return true, nil
}

// writeRequest encodes a request for cids.
func writeRequest(w io.Writer, cids []cid.Cid) error {
	buf := binary.AppendUvarint(nil, uint64(len(cids)))
	for _, c := range cids {
		b := c.Bytes()
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	_, err := w.Write(buf)
	return err
}

// readRequest decodes a request, enforcing MaxBulkCIDs and MaxBulkCIDLen.
func readRequest(r *bufio.Reader) ([]cid.Cid, error) {
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: count: %v", ErrBulkRequest, err)
	}
	if count == 0 || count > MaxBulkCIDs {
		return nil, fmt.Errorf("%w: %d CIDs (1 to %d allowed)", ErrBulkRequest, count, MaxBulkCIDs)
	}
	cids := make([]cid.Cid, 0, count)
	var buf [MaxBulkCIDLen]byte
	for range count {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("%w: CID length: %v", ErrBulkRequest, err)
		}
		if n == 0 || n > MaxBulkCIDLen {
			return nil, fmt.Errorf("%w: CID of %d bytes", ErrBulkRequest, n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, fmt.Errorf("%w: CID: %v", ErrBulkRequest, err)
		}
		_, c, err := cid.CidFromBytes(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBulkRequest, err)
		}
		cids = append(cids, c)
	}
	return cids, nil
}

// BulkGet asks peer p for cids on one stream and calls fn with each block,
// in order, once it matches its CID. fn is called from the caller's
// goroutine. The block's data is only valid until fn returns (one buffer
// serves the whole stream, so a fetch makes no garbage per block): fn
// writes it somewhere or copies it. It returns the CIDs the peer does not
// hold (to be fetched elsewhere). On an error, blocks not yet passed to fn
// were not received; errors.Is(err, ErrBulkCorrupt) means p misbehaved.
func BulkGet(ctx context.Context, h host.Host, p peer.ID, cids []cid.Cid, fn func(blocks.Block) error) (missing []cid.Cid, err error) {
	if len(cids) == 0 || len(cids) > MaxBulkCIDs {
		return nil, fmt.Errorf("%w: %d CIDs (1 to %d allowed)", ErrBulkRequest, len(cids), MaxBulkCIDs)
	}
	st, err := h.NewStream(ctx, p, BulkID)
	if err != nil {
		return nil, fmt.Errorf("bulk: open stream to %s: %w", p, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if err := writeRequest(st, cids); err != nil {
		st.Reset()
		return nil, fmt.Errorf("bulk: send request to %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return nil, fmt.Errorf("bulk: send request to %s: %w", p, err)
	}
	r := bufio.NewReaderSize(st, bulkBufferSize)
	var buf []byte
	for i, c := range cids {
		st.SetReadDeadline(time.Now().Add(BulkIdleTimeout))
		b, err := readBlock(r, c, &buf)
		if err != nil {
			st.Reset()
			if ctx.Err() != nil {
				return missing, ctx.Err()
			}
			return missing, fmt.Errorf("bulk: block %d of %d from %s: %w", i+1, len(cids), p, err)
		}
		if b == nil {
			missing = append(missing, c)
			continue
		}
		if err := fn(b); err != nil {
			st.Reset()
			return missing, err
		}
	}
	return missing, nil
}

// readBlock reads one answer for c: the verified block, or nil if the peer
// does not hold it. The block's data is read into *buf, which grows as
// needed.
func readBlock(r *bufio.Reader, c cid.Cid, buf *[]byte) (blocks.Block, error) {
	status, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	switch status {
	case statusMissing:
		return nil, nil
	case statusBlock:
	default:
		return nil, fmt.Errorf("%w: status %d", ErrBulkCorrupt, status)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxBulkBlockSize {
		return nil, fmt.Errorf("%w: block of %d bytes", ErrBulkCorrupt, n)
	}
	if uint64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	data := (*buf)[:n]
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return nil, fmt.Errorf("%w: hash %s: %v", ErrBulkCorrupt, c, err)
	}
	if !sum.Equals(c) {
		return nil, fmt.Errorf("%w: data does not match %s", ErrBulkCorrupt, c)
	}
	return blocks.NewBlockWithCid(data, sum)
}
