// Package chunks reads a file in fixed-size chunks for an import: one
// read of the file feeds both the DAG builder (it is boxo's chunk.Splitter)
// and a sink (whole-file hashes, the store's copy of an added file) on
// goroutines of their own, in page-aligned buffers that are recycled.
package chunks

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Size is the size of every chunk but a file's last: 1 MiB, the
// unixfs-v1-2025 profile's leaf size.
const Size = 1 << 20

// chunkDepth is how many chunks each of a Reader's queues holds.
const chunkDepth = 4

// Align is the alignment of a Reader's buffers: a page, which
// direct I/O (O_DIRECT) needs of the memory it writes from.
const Align = 4096

// errSinkFailed stops the DAG builder when a Reader's sink failed;
// Close returns the sink's own error.
var errSinkFailed = errors.New("chunk sink failed")

// Reader is the chunker of an import (boxo's chunk.Splitter). It
// reads a file in Size chunks on a goroutine of its own and hands
// every chunk, without copying it, both to a sink, which runs on another
// goroutine (the whole-file hashes of a model import, the store's copy of
// an added file), and to the DAG builder, which hashes it into a leaf. The
// file's bytes are read once and copied once, and the reads, the sink and
// the leaf hashes spread over the cores instead of following each other. A
// chunk is never written after it is queued: the sink and the leaf only
// read it.
//
// With recycle, a chunk's buffer is read into again once the sink is done
// with it and the DAG builder has asked for two more chunks, which spares
// the garbage collector a gigabyte per gigabyte imported (a tenth of an
// import's time). That is safe only when the DAG builder stores each leaf
// before it asks for the chunk after next, as boxo's balanced builder does
// on an unbuffered DAG service (it hashes a leaf before it asks for the
// next chunk, and stores it before the one after, the first leaf
// included), and nothing keeps a leaf's bytes after it is stored, as with
// leaves kept by reference (no-copy). Were the builder to change, the
// checksum a leaf is stored with could be of the wrong bytes, which costs
// a re-hash when it is served (see Serving), never a wrong CID.
type Reader struct {
	reader   io.Reader // what Reader returns (the DAG builder asks it for the file's path)
	progress func(int64)
	recycle  bool
	ordered  bool
	free     chan []byte    // buffers to read into again
	held     [2]*readChunk  // the chunks NextBytes returned last, oldest first
	chunks   chan readChunk // to the DAG builder
	stop     chan struct{}  // closed by Close
	failed   chan struct{}  // closed when the sink fails
	readDone chan struct{}
	sinkDone chan struct{}
	n        int64 // bytes read; safe to read once readDone is closed
	sinkErr  error // safe to read once sinkDone is closed
}

type readChunk struct {
	off int64
	b   []byte
	err error
	// users counts who still reads b: the sink and the DAG builder.
	users *atomic.Int32
}

// Options configure a Reader.
type Options struct {
	// Reader is what Reader returns: for a no-copy import, a
	// files.FileInfo naming the file the leaves are kept in.
	Reader io.Reader
	// Progress, if set, gets the size of each chunk as the DAG builder
	// takes it.
	Progress func(int64)
	// Recycle reuses chunk buffers (see Reader).
	Recycle bool
	// Ordered hands a chunk to the DAG builder only once the sink is done
	// with it, so a leaf is recorded as held in a file only after its
	// bytes were written there; otherwise both run at once.
	Ordered bool
}

// NewReader starts reading src. sink gets every chunk with its
// offset, in order; its first error stops the reading and is returned by
// Close. Close must be called.
func NewReader(src io.Reader, sink func(off int64, b []byte) error, opts Options) *Reader {
	cr := &Reader{
		reader:   opts.Reader,
		progress: opts.Progress,
		recycle:  opts.Recycle,
		ordered:  opts.Ordered,
		free:     make(chan []byte, 2*chunkDepth+2),
		chunks:   make(chan readChunk, chunkDepth),
		stop:     make(chan struct{}),
		failed:   make(chan struct{}),
		readDone: make(chan struct{}),
		sinkDone: make(chan struct{}),
	}
	toSink := make(chan readChunk, chunkDepth)
	go cr.drain(toSink, sink)
	go cr.read(src, toSink)
	return cr
}

// drain hands every chunk to sink until toSink is closed, and when
// ordered then to the DAG builder; after a failure it only releases them.
func (cr *Reader) drain(toSink <-chan readChunk, sink func(int64, []byte) error) {
	defer close(cr.sinkDone)
	if cr.ordered {
		defer close(cr.chunks)
	}
	var once sync.Once
	closed := false // Close came before the DAG builder took everything
	for c := range toSink {
		if c.err != nil { // ordered: an error of the reader's, in its place
			closed = closed || !cr.send(c)
			continue
		}
		if cr.sinkErr == nil {
			if err := sink(c.off, c.b); err != nil {
				cr.sinkErr = err
				once.Do(func() { close(cr.failed) })
			}
		}
		if cr.ordered && cr.sinkErr == nil && !closed {
			closed = !cr.send(c)
		}
		cr.release(&c)
	}
}

// read reads src until its end, an error, a failed sink, or Close. When
// ordered, the sink's goroutine passes chunks on to the DAG builder, and
// read sends it errors only, through toSink.
func (cr *Reader) read(src io.Reader, toSink chan<- readChunk) {
	defer close(cr.readDone)
	defer close(toSink)
	if !cr.ordered {
		defer close(cr.chunks)
	}
	for {
		select {
		case <-cr.failed:
			cr.fail(toSink, errSinkFailed)
			return
		case <-cr.stop:
			return
		default:
		}
		b := cr.buffer()
		n, err := io.ReadFull(src, b)
		if n > 0 {
			c := readChunk{off: cr.n, b: b[:n], users: new(atomic.Int32)}
			cr.n += int64(n)
			c.users.Store(2)
			toSink <- c // drain takes every chunk until toSink is closed
			if !cr.ordered && !cr.send(c) {
				return
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return
		case err != nil:
			cr.fail(toSink, err)
			return
		}
	}
}

// fail passes err to the DAG builder after the chunks read before it.
func (cr *Reader) fail(toSink chan<- readChunk, err error) {
	if cr.ordered {
		toSink <- readChunk{err: err}
		return
	}
	cr.send(readChunk{err: err})
}

// send queues c for NextBytes; it reports false once Close was called.
func (cr *Reader) send(c readChunk) bool {
	select {
	case cr.chunks <- c:
		return true
	case <-cr.stop:
		return false
	}
}

// release notes that one user is done with c, and with recycle hands its
// buffer back once both are.
func (cr *Reader) release(c *readChunk) {
	if !cr.recycle || c.users.Add(-1) > 0 {
		return
	}
	select {
	case cr.free <- c.b[:cap(c.b)]:
	default:
	}
}

// buffer returns a page-aligned buffer of Size to read a chunk into.
func (cr *Reader) buffer() []byte {
	select {
	case b := <-cr.free:
		return b
	default:
		return AlignedBuffer(Size)
	}
}

// AlignedBuffer returns n bytes starting at a multiple of Align. The
// garbage collector does not move heap memory, so the alignment holds.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+Align)
	skip := (Align - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%Align)) % Align
	return b[skip : skip+n : skip+n]
}

// Reader returns the reader given to NewReader.
func (cr *Reader) Reader() io.Reader { return cr.reader }

// NextBytes returns the next chunk, or io.EOF after the last. The DAG
// builder is done with the chunk it got two calls before.
func (cr *Reader) NextBytes() ([]byte, error) {
	if cr.held[0] != nil {
		cr.release(cr.held[0])
	}
	cr.held[0], cr.held[1] = cr.held[1], nil
	c, ok := <-cr.chunks
	if !ok {
		return nil, io.EOF
	}
	if c.err != nil {
		return nil, c.err
	}
	if cr.progress != nil {
		cr.progress(int64(len(c.b)))
	}
	cr.held[1] = &c
	return c.b, nil
}

// Close stops reading and waits until the sink has had every chunk read.
// It returns how many bytes were read and the sink's first error.
func (cr *Reader) Close() (int64, error) {
	close(cr.stop)
	<-cr.readDone
	<-cr.sinkDone
	return cr.n, cr.sinkErr
}
