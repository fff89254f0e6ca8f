package manifest

import "io"

// hashPipeDepth is how many buffers a hashPipe holds in flight.
const hashPipeDepth = 4

// hashPipe writes to w (whole-file hashes) on a goroutine of its own, so
// an import hashes each byte for the manifest (sha256, sha1) on one core
// while the DAG builder hashes it into leaves on another, instead of
// running the hashes one after the other. Write copies p, since callers
// (an io.TeeReader) reuse their buffers.
type hashPipe struct {
	w    io.Writer
	full chan []byte
	free chan []byte
	done chan struct{}
}

func newHashPipe(w io.Writer) *hashPipe {
	p := &hashPipe{w: w, full: make(chan []byte, hashPipeDepth), free: make(chan []byte, hashPipeDepth), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.full {
			w.Write(b) // hash.Hash never fails
			select {
			case p.free <- b[:0]:
			default:
			}
		}
	}()
	return p
}

// Write queues a copy of b for the hashes.
func (p *hashPipe) Write(b []byte) (int, error) {
	var buf []byte
	select {
	case buf = <-p.free:
	default:
	}
	p.full <- append(buf[:0], b...)
	return len(b), nil
}

// Close waits until every queued byte is hashed. The hashes may be read
// after it returns.
func (p *hashPipe) Close() {
	close(p.full)
	<-p.done
}
