package manifest

import (
	"errors"
	"io"

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
type readAhead struct {
	reader   io.Reader // what Reader returns (the DAG builder asks it for the file's path)
	progress func(int64)
	chunks   chan readChunk
	stop     chan struct{}
	readDone chan struct{}
	hashDone chan struct{}
	n        int64 // bytes read; safe to read once readDone is closed
}

type readChunk struct {
	b   []byte
	err error
}

// newReadAhead starts reading src and hashing it into hashes. reader is
// what Reader returns; progress, if set, gets the size of each chunk as
// the DAG builder takes it. Close must be called.
func newReadAhead(src, reader io.Reader, hashes io.Writer, progress func(int64)) *readAhead {
	ra := &readAhead{
		reader:   reader,
		progress: progress,
		chunks:   make(chan readChunk, readAheadDepth),
		stop:     make(chan struct{}),
		readDone: make(chan struct{}),
		hashDone: make(chan struct{}),
	}
	toHash := make(chan []byte, readAheadDepth)
	go func() {
		defer close(ra.hashDone)
		for b := range toHash {
			hashes.Write(b) // hash.Hash never fails
		}
	}()
	go ra.read(src, toHash)
	return ra
}

// read reads src until its end, an error, or Close.
func (ra *readAhead) read(src io.Reader, toHash chan<- []byte) {
	defer close(ra.readDone)
	defer close(toHash)
	defer close(ra.chunks)
	for {
		b := make([]byte, store.ChunkSize)
		n, err := io.ReadFull(src, b)
		if n > 0 {
			ra.n += int64(n)
			toHash <- b[:n] // the hasher drains until toHash is closed
			if !ra.send(readChunk{b: b[:n]}) {
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

// NextBytes returns the next chunk, or io.EOF after the last.
func (ra *readAhead) NextBytes() ([]byte, error) {
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
