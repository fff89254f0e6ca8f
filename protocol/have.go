package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/allmende/allmende/protocol/swarm"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// HaveID is allmende's have protocol: the peers of a swarm (the nodes that
// fetch or seed one root at once) tell each other which pieces of the root
// they hold, as they get them, so each can ask the others for pieces
// rarest first (package swarm decides; the pieces themselves move over the
// bulk protocol, BulkID, as requests for their leaves).
//
// A piece is one leaf of the root's DAG: piece i is the i-th raw block met
// in a depth-first walk of the root that follows each node's links in
// order (a leaf that occurs twice is two pieces with one CID). Both sides
// derive the numbering from the DAG, so only numbers cross the wire.
//
// One stream per peer pair and root carries both directions. Each side
// first sends a HELLO, then HAVEs as it gets pieces; a super-seeder's
// HAVEs are its offers (swarm.Seeder). Closing the stream leaves the
// swarm. Wire format (integers are unsigned varints):
//
//	message:  type (one byte), len(payload), payload
//	HELLO  0: len(root), root CID, pieces, flags (one byte),
//	          then unless flagComplete: the bitfield, (pieces+7)/8 bytes,
//	          piece 0 in the high bit of the first byte, padding bits 0
//	HAVE   1: count, then count piece numbers: the first as is, each next
//	          as its distance from the one before (ascending, no repeats).
//	          A HAVE of count 0 only keeps the stream alive.
//	other:    skipped if len(payload) <= MaxHaveOtherLen (later versions)
//
// Flags: flagComplete (holds every piece), flagSuperSeed (announces only
// what it offers: spare its uplink, see swarm.PeerOpts.Costly). A HELLO
// whose root or piece count differs from the receiver's is refused: the
// peers disagree on the DAG. Every length, count and piece number is
// checked against the limits below before anything is allocated.
const HaveID = protocol.ID("/allmende/have/1.0.0")

// Limits of the have protocol.
const (
	// MaxHavePieces bounds the pieces of one root: 4 TiB of 1 MiB leaves.
	MaxHavePieces = 1 << 22
	// MaxHaveCIDLen bounds the root CID in a HELLO.
	MaxHaveCIDLen = MaxBulkCIDLen
	// MaxHaveBatch bounds the piece numbers in one HAVE.
	MaxHaveBatch = 4096
	// maxHelloLen and maxHaveLen bound a HELLO's and a HAVE's payload.
	maxHelloLen = 2*binary.MaxVarintLen64 + MaxHaveCIDLen + 1 + (MaxHavePieces+7)/8
	maxHaveLen  = binary.MaxVarintLen64 * (MaxHaveBatch + 1)
	// MaxHaveOtherLen bounds a message of a type this version does not
	// know, which it skips.
	MaxHaveOtherLen = 4 << 10
	// HaveHelloTimeout bounds the wait for the other side's HELLO.
	HaveHelloTimeout = 10 * time.Second
	// HaveIdleTimeout fails a stream on which nothing arrived for this
	// long; a side with nothing to say sends a keep-alive (an empty HAVE)
	// every HaveKeepAlive.
	HaveIdleTimeout = 2 * time.Minute
	HaveKeepAlive   = 30 * time.Second
	// haveWriteTimeout bounds sending one message.
	haveWriteTimeout = 30 * time.Second
)

// Message types and HELLO flags.
const (
	msgHello = 0
	msgHave  = 1

	flagComplete  = 1 << 0
	flagSuperSeed = 1 << 1
	flagsKnown    = flagComplete | flagSuperSeed
)

// Errors of the have protocol.
var (
	// ErrHaveMessage: a peer broke the wire format or its limits.
	ErrHaveMessage = errors.New("have: bad message")
	// ErrHaveMismatch: a peer's HELLO names another root or another
	// piece count than ours.
	ErrHaveMismatch = errors.New("have: peers disagree on the root's pieces")
	// ErrHaveRefused: the peer is not in the swarm of that root.
	ErrHaveRefused = errors.New("have: peer refused the swarm")
)

// Hello is what a peer says when it joins a root's swarm.
type Hello struct {
	// Root is the root CID and Pieces its piece count.
	Root   cid.Cid
	Pieces int
	// Have is the pieces held (nil: none). Ignored with Complete.
	Have *swarm.Bitfield
	// Complete: the peer holds every piece (a seeder).
	Complete bool
	// SuperSeed: the peer announces only the pieces it offers.
	SuperSeed bool
}

// Holds returns the pieces the HELLO announces.
func (h Hello) Holds() *swarm.Bitfield {
	switch {
	case h.Complete:
		return swarm.FullBitfield(h.Pieces)
	case h.Have != nil:
		return h.Have
	default:
		return swarm.NewBitfield(h.Pieces)
	}
}

// appendHello encodes h's payload.
func appendHello(buf []byte, h Hello) ([]byte, error) {
	if h.Pieces < 0 || h.Pieces > MaxHavePieces {
		return nil, fmt.Errorf("%w: %d pieces (at most %d)", ErrHaveMessage, h.Pieces, MaxHavePieces)
	}
	if h.Have != nil && !h.Complete && h.Have.Len() != h.Pieces {
		return nil, fmt.Errorf("%w: a bitfield of %d for %d pieces", ErrHaveMessage, h.Have.Len(), h.Pieces)
	}
	root := h.Root.Bytes()
	if len(root) == 0 || len(root) > MaxHaveCIDLen {
		return nil, fmt.Errorf("%w: root CID of %d bytes", ErrHaveMessage, len(root))
	}
	buf = binary.AppendUvarint(buf, uint64(len(root)))
	buf = append(buf, root...)
	buf = binary.AppendUvarint(buf, uint64(h.Pieces))
	var flags byte
	if h.Complete {
		flags |= flagComplete
	}
	if h.SuperSeed {
		flags |= flagSuperSeed
	}
	buf = append(buf, flags)
	if !h.Complete {
		buf = append(buf, h.Holds().Bytes()...)
	}
	return buf, nil
}

// parseHello decodes a HELLO's payload.
func parseHello(p []byte) (Hello, error) {
	var h Hello
	n, k := binary.Uvarint(p)
	if k <= 0 || n == 0 || n > MaxHaveCIDLen || uint64(len(p)-k) < n {
		return h, fmt.Errorf("%w: root CID length", ErrHaveMessage)
	}
	p = p[k:]
	l, c, err := cid.CidFromBytes(p[:n])
	if err != nil || l != int(n) {
		return h, fmt.Errorf("%w: root CID: %v", ErrHaveMessage, err)
	}
	h.Root = c
	p = p[n:]
	pieces, k := binary.Uvarint(p)
	if k <= 0 || pieces > MaxHavePieces {
		return h, fmt.Errorf("%w: piece count", ErrHaveMessage)
	}
	h.Pieces = int(pieces)
	p = p[k:]
	if len(p) == 0 || p[0]&^flagsKnown != 0 {
		return h, fmt.Errorf("%w: flags", ErrHaveMessage)
	}
	h.Complete, h.SuperSeed = p[0]&flagComplete != 0, p[0]&flagSuperSeed != 0
	p = p[1:]
	if h.Complete {
		if len(p) != 0 {
			return h, fmt.Errorf("%w: %d bytes after a complete HELLO", ErrHaveMessage, len(p))
		}
		return h, nil
	}
	if h.Have, err = swarm.ParseBitfield(p, h.Pieces); err != nil {
		return h, fmt.Errorf("%w: %w", ErrHaveMessage, err)
	}
	return h, nil
}

// appendHave encodes a HAVE's payload for pieces, ascending and distinct.
func appendHave(buf []byte, pieces []int) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(pieces)))
	prev := 0
	for i, x := range pieces {
		d := x - prev
		if i == 0 {
			d = x
		}
		buf = binary.AppendUvarint(buf, uint64(d))
		prev = x
	}
	return buf
}

// parseHave decodes a HAVE's payload for a root of n pieces.
func parseHave(p []byte, n int) ([]int, error) {
	count, k := binary.Uvarint(p)
	if k <= 0 || count > MaxHaveBatch || count > uint64(len(p)-k) {
		return nil, fmt.Errorf("%w: HAVE count", ErrHaveMessage)
	}
	p = p[k:]
	out := make([]int, 0, count)
	x := uint64(0)
	for i := range count {
		d, k := binary.Uvarint(p)
		if k <= 0 || (i > 0 && d == 0) {
			return nil, fmt.Errorf("%w: HAVE piece %d", ErrHaveMessage, i)
		}
		p = p[k:]
		x += d
		if x >= uint64(n) {
			return nil, fmt.Errorf("%w: piece %d of %d", ErrHaveMessage, x, n)
		}
		out = append(out, int(x))
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after a HAVE", ErrHaveMessage, len(p))
	}
	return out, nil
}

// writeHaveMsg writes one message.
func writeHaveMsg(w io.Writer, typ byte, payload []byte) error {
	hdr := binary.AppendUvarint([]byte{typ}, uint64(len(payload)))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readHaveMsg reads the next message of a known type into *buf (grown as
// needed), skipping others, and checks its length before reading it.
func readHaveMsg(r *bufio.Reader, buf *[]byte) (byte, []byte, error) {
	for {
		typ, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: length: %w", ErrHaveMessage, err)
		}
		limit := uint64(MaxHaveOtherLen)
		switch typ {
		case msgHello:
			limit = maxHelloLen
		case msgHave:
			limit = maxHaveLen
		}
		if n > limit {
			return 0, nil, fmt.Errorf("%w: message of type %d and %d bytes (at most %d)", ErrHaveMessage, typ, n, limit)
		}
		if uint64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		p := (*buf)[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return 0, nil, err
		}
		if typ == msgHello || typ == msgHave {
			return typ, p, nil
		}
	}
}

// HaveStream is one side of a have stream: the swarm of one root, with one
// peer. Send may be called concurrently with Recv; neither is safe for
// concurrent use with itself.
type HaveStream struct {
	st     network.Stream
	r      *bufio.Reader
	buf    []byte
	pieces int
	// Theirs is the peer's HELLO.
	Theirs Hello

	wmu sync.Mutex
	w   *bufio.Writer
}

// Peer is the other side.
func (s *HaveStream) Peer() peer.ID { return s.st.Conn().RemotePeer() }

// Send announces pieces (in any order; repeats are dropped), in as many
// HAVEs as MaxHaveBatch needs. An empty Send is a keep-alive.
func (s *HaveStream) Send(pieces ...int) error {
	xs := slices.Compact(slices.Sorted(slices.Values(pieces)))
	for _, x := range xs {
		if x < 0 || x >= s.pieces {
			return fmt.Errorf("have: piece %d of %d", x, s.pieces)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.st.SetWriteDeadline(time.Now().Add(haveWriteTimeout))
	defer s.st.SetWriteDeadline(time.Time{})
	for first := true; first || len(xs) > 0; first = false {
		k := min(len(xs), MaxHaveBatch)
		if err := writeHaveMsg(s.w, msgHave, appendHave(nil, xs[:k])); err != nil {
			return fmt.Errorf("have: send to %s: %w", s.Peer(), err)
		}
		xs = xs[k:]
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("have: send to %s: %w", s.Peer(), err)
	}
	return nil
}

// Recv returns the pieces of the next HAVE with any, waiting up to
// HaveIdleTimeout for each message (keep-alives reset the wait). A second
// HELLO breaks the protocol.
func (s *HaveStream) Recv() ([]int, error) {
	for {
		s.st.SetReadDeadline(time.Now().Add(HaveIdleTimeout))
		typ, p, err := readHaveMsg(s.r, &s.buf)
		if err != nil {
			return nil, fmt.Errorf("have: from %s: %w", s.Peer(), err)
		}
		if typ != msgHave {
			return nil, fmt.Errorf("have: from %s: %w: HELLO again", s.Peer(), ErrHaveMessage)
		}
		xs, err := parseHave(p, s.pieces)
		if err != nil {
			return nil, fmt.Errorf("have: from %s: %w", s.Peer(), err)
		}
		if len(xs) > 0 {
			return xs, nil
		}
	}
}

// Close leaves the swarm on this stream.
func (s *HaveStream) Close() error { return s.st.Close() }

// Reset drops the stream (after a protocol error).
func (s *HaveStream) Reset() error { return s.st.Reset() }

func newHaveStream(st network.Stream, ours Hello) *HaveStream {
	return &HaveStream{st: st, r: bufio.NewReader(st), w: bufio.NewWriter(st), pieces: ours.Pieces}
}

// hello sends ours.
func (s *HaveStream) hello(ours Hello) error {
	p, err := appendHello(nil, ours)
	if err != nil {
		return err
	}
	s.st.SetWriteDeadline(time.Now().Add(haveWriteTimeout))
	defer s.st.SetWriteDeadline(time.Time{})
	if err := writeHaveMsg(s.w, msgHello, p); err != nil {
		return err
	}
	return s.w.Flush()
}

// readHello reads the peer's HELLO.
func (s *HaveStream) readHello() (Hello, error) {
	s.st.SetReadDeadline(time.Now().Add(HaveHelloTimeout))
	typ, p, err := readHaveMsg(s.r, &s.buf)
	if err != nil {
		return Hello{}, err
	}
	if typ != msgHello {
		return Hello{}, fmt.Errorf("%w: HAVE before HELLO", ErrHaveMessage)
	}
	return parseHello(p)
}

// matches checks the peer's HELLO against ours.
func matches(ours, theirs Hello) error {
	if !theirs.Root.Equals(ours.Root) || theirs.Pieces != ours.Pieces {
		return fmt.Errorf("%w: they say %s in %d pieces, we %s in %d", ErrHaveMismatch, theirs.Root, theirs.Pieces, ours.Root, ours.Pieces)
	}
	return nil
}

// OpenHave joins p's swarm for ours.Root: it sends our HELLO and reads
// theirs (in Theirs of the result). It fails with ErrHaveRefused if p
// resets the stream (it is not in that swarm, or numbers the pieces
// otherwise) and with ErrHaveMismatch if p's HELLO does not match ours.
func OpenHave(ctx context.Context, h host.Host, p peer.ID, ours Hello) (*HaveStream, error) {
	st, err := h.NewStream(ctx, p, HaveID)
	if err != nil {
		return nil, fmt.Errorf("have: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	s := newHaveStream(st, ours)
	if err := s.hello(ours); err != nil {
		st.Reset()
		return nil, fmt.Errorf("have: hello to %s: %w", p, err)
	}
	theirs, err := s.readHello()
	if err != nil {
		st.Reset()
		if errors.Is(err, network.ErrReset) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: %v", ErrHaveRefused, p, err)
		}
		return nil, fmt.Errorf("have: hello from %s: %w", p, err)
	}
	if err := matches(ours, theirs); err != nil {
		st.Reset()
		return nil, err
	}
	s.Theirs = theirs
	return s, nil
}

// HaveAccept decides whether this node is in the swarm that a peer's
// HELLO names, and if so gives this node's own HELLO for it.
type HaveAccept func(remote peer.ID, theirs Hello) (ours Hello, ok bool)

// ServeHave answers have streams on h: it reads the peer's HELLO, asks
// accept, and either resets the stream (not in that swarm, or a HELLO that
// does not match) or sends our HELLO and hands the stream to run, on the
// stream handler's goroutine, which owns it from then on.
func ServeHave(h host.Host, accept HaveAccept, run func(*HaveStream)) {
	h.SetStreamHandler(HaveID, func(st network.Stream) {
		s := newHaveStream(st, Hello{})
		theirs, err := s.readHello()
		if err != nil {
			st.Reset()
			return
		}
		ours, ok := accept(st.Conn().RemotePeer(), theirs)
		if !ok || matches(ours, theirs) != nil {
			st.Reset()
			return
		}
		s.pieces, s.Theirs = ours.Pieces, theirs
		if err := s.hello(ours); err != nil {
			st.Reset()
			return
		}
		st.SetReadDeadline(time.Time{})
		run(s)
	})
}
