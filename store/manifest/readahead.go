package manifest

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/allmende/allmende/store"
)

// readAheadDepth is how many chunks each of a readAhead's queues holds.
const readAheadDepth = 4

// readAhead is the chunker of an import (boxo's chunk.Splitter). It reads
// the file in leaf-sized chunks on a goroutine of its own and hands every
// chunk, without copying it, both to the whole-file hashes (sha256, sha1),
// which run on another goroutine, and to the DAG builder, which hashes it
// into a leaf. The file's bytes are read once and copied once, and the
// reads and the two hashes of every byte spread over the cores instead of
// following each other. A chunk is never written after it is queued: the
// hashes and the leaf only read it.
//
// With recycle, a chunk's buffer is read into again once the hashes are
// done with it and the DAG builder has asked for two more chunks, which
// spares the garbage collector a gigabyte per gigabyte imported (a tenth
// of an import's time). That is safe only when the DAG builder stores each
// leaf before it asks for the chunk after next, as boxo's balanced builder
// does on an unbuffered DAG service (it hashes a leaf before it asks for
// the next chunk, and stores it before the one after, the first leaf
// included), and nothing keeps a leaf's bytes after it is stored, as with
// leaves kept by reference (no-copy). Were the builder to change, the
// checksum a leaf is stored with could be of the wrong bytes, which costs
// a re-hash when it is served (see store.Serving), never a wrong CID.
type readAhead struct {
	reader   io.Reader // what Reader returns (the DAG builder asks it for the file's path)
	progress func(int64)
	recycle  bool
	free     chan []byte   // buffers to read into again
	held     [2]*readChunk // the chunks NextBytes returned last, oldest first
	chunks   chan readChunk
	stop     chan struct{}
	readDone chan struct{}
	hashDone chan struct{}
	n        int64 // bytes read; safe to read once readDone is closed
}

type readChunk struct {
	b   []byte
	err error
	// users counts who still reads b: the hashes and the DAG builder.
	users *atomic.Int32
}

// release notes that one user is done with c, and with recycle hands its
// buffer back once both are.
func (ra *readAhead) release(c *readChunk) {
	if !ra.recycle || c.users.Add(-1) > 0 {
		return
	}
	select {
	case ra.free <- c.b[:cap(c.b)]:
	default:
	}
}

// buffer returns a buffer to read a chunk into.
func (ra *readAhead) buffer() []byte {
	select {
	case b := <-ra.free:
		return b
	default:
		return make([]byte, store.ChunkSize)
	}
}

// newReadAhead starts reading src and hashing it into hashes. reader is
// what Reader returns; progress, if set, gets the size of each chunk as
// the DAG builder takes it. Close must be called.
func newReadAhead(src, reader io.Reader, hashes io.Writer, progress func(int64), recycle bool) *readAhead {
	ra := &readAhead{
		reader:   reader,
		progress: progress,
		recycle:  recycle,
		free:     make(chan []byte, 2*readAheadDepth+2),
		chunks:   make(chan readChunk, readAheadDepth),
		stop:     make(chan struct{}),
		readDone: make(chan struct{}),
		hashDone: make(chan struct{}),
	}
	toHash := make(chan readChunk, readAheadDepth)
	go func() {
		defer close(ra.hashDone)
		for c := range toHash {
			hashes.Write(c.b) // hash.Hash never fails
			ra.release(&c)
		}
	}()
	go ra.read(src, toHash)
	return ra
}

// read reads src until its end, an error, or Close.
func (ra *readAhead) read(src io.Reader, toHash chan<- readChunk) {
	defer close(ra.readDone)
	defer close(toHash)
	defer close(ra.chunks)
	for {
		b := ra.buffer()
		n, err := io.ReadFull(src, b)
		if n > 0 {
			ra.n += int64(n)
			c := readChunk{b: b[:n], users: new(atomic.Int32)}
			c.users.Store(2)
			toHash <- c // the hasher drains until toHash is closed
			if !ra.send(c) {
				return
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return
		case err != nil:
			ra.send(readChunk{err: err})
			return
		}
	}
}

// send queues c for NextBytes; it reports false once Close was called.
func (ra *readAhead) send(c readChunk) bool {
	select {
	case ra.chunks <- c:
		return true
	case <-ra.stop:
		return false
	}
}

// Reader returns the reader given to newReadAhead.
func (ra *readAhead) Reader() io.Reader { return ra.reader }

// NextBytes returns the next chunk, or io.EOF after the last. The DAG
// builder is done with the chunk it got two calls before.
func (ra *readAhead) NextBytes() ([]byte, error) {
	if ra.held[0] != nil {
		ra.release(ra.held[0])
	}
	ra.held[0], ra.held[1] = ra.held[1], nil
	c, ok := <-ra.chunks
	if !ok {
		return nil, io.EOF
	}
	if c.err != nil {
		return nil, c.err
	}
	if ra.progress != nil {
		ra.progress(int64(len(c.b)))
	}
	ra.held[1] = &c
	return c.b, nil
}

// Close stops reading and waits until every byte read is hashed. It
// returns how many bytes were read; the hashes may be read after it.
func (ra *readAhead) Close() int64 {
	close(ra.stop)
	<-ra.readDone
	<-ra.hashDone
	return ra.n
}
