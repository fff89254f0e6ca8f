// Package growing owns a file a mirror downloads while its clients read
// it: the download lands in a file of its own, readers wait for the bytes
// they want as they arrive, and no reader gets the last byte before the
// whole file was checked (by the reader the download reads from) and
// synced. Both the Hugging Face fills and the OCI registry fills serve
// their clients from it.
package growing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/allmende/allmende/store/fsutil"
)

// copyBuffer is the size of the reads a download makes.
const copyBuffer = 1 << 20

// dirPerm is the permission of the download folder.
const dirPerm = 0o700

// File is one file being downloaded. Its methods are safe for concurrent
// use.
type File struct {
	name    string
	size    int64
	dir     string
	pattern string

	mu   sync.Mutex
	cond *sync.Cond
	// path is the file being written, set before the first byte lands.
	path    string
	written int64
	// verified: all bytes are on disk (synced) and the source reached EOF
	// without an error, so they are what was declared. Until then
	// readers get at most size-1 bytes.
	verified bool
	// held: readers get no byte before verified (DownloadHeld).
	held bool
	done bool
	err  error
}

// New prepares the download of a file of size bytes into a new file in
// dir named by pattern (as os.CreateTemp takes it); name is what errors
// call it.
func New(name string, size int64, dir, pattern string) *File {
	f := &File{name: name, size: size, dir: dir, pattern: pattern}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// Size is the declared size.
func (f *File) Size() int64 { return f.size }

// Path is the file being written, "" before the download started.
func (f *File) Path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// Download copies body (a reader that fails at EOF when the bytes are not
// the declared ones) to a new file, waking readers as bytes land and
// calling progress after each read that brought bytes; it closes body.
// readErr, if not nil, maps an error of body before it is returned. It
// refuses to start when the disk lacks room for the file (store.ErrNoSpace).
// Each download writes its own file, so a retry never truncates a file
// readers of a failed one still hold.
func (f *File) Download(body io.ReadCloser, progress func(), readErr func(error) error) error {
	defer body.Close()
	if err := os.MkdirAll(f.dir, dirPerm); err != nil {
		return fmt.Errorf("fill %s: %w", f.name, err)
	}
	if err := fsutil.CheckRoom(f.dir, uint64(max(f.size, 0))); err != nil {
		return fmt.Errorf("fill %s: %w", f.name, err)
	}
	out, err := os.CreateTemp(f.dir, f.pattern)
	if err != nil {
		return fmt.Errorf("fill %s: %w", f.name, err)
	}
	defer out.Close()
	f.mu.Lock()
	f.path = out.Name()
	f.mu.Unlock()
	buf := make([]byte, copyBuffer)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			progress()
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", out.Name(), err)
			}
			f.mu.Lock()
			f.written += int64(n)
			f.cond.Broadcast()
			f.mu.Unlock()
		}
		if errors.Is(rerr, io.EOF) {
			if err := out.Sync(); err != nil {
				return fmt.Errorf("write %s: %w", out.Name(), err)
			}
			f.mu.Lock()
			f.verified = true
			f.cond.Broadcast()
			f.mu.Unlock()
			return nil
		}
		if rerr != nil {
			if readErr != nil {
				return readErr(rerr)
			}
			return rerr
		}
	}
}

// DownloadHeld is Download from a source not trusted to send the declared
// bytes (peers): readers get no byte before the whole file is verified,
// so that a failed download can be Reset and written again from its first
// byte by another source.
func (f *File) DownloadHeld(body io.ReadCloser, progress func(), readErr func(error) error) error {
	f.mu.Lock()
	f.held = true
	f.mu.Unlock()
	return f.Download(body, progress, readErr)
}

// ErrRead: Reset of a download that was not held, whose bytes readers may
// have read already.
var ErrRead = errors.New("the failed download was read already")

// Reset removes what a failed held download wrote, before another
// download writes the file from its first byte.
func (f *File) Reset() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held && f.path != "" {
		return fmt.Errorf("fill %s: %w", f.name, ErrRead)
	}
	if f.path != "" {
		os.Remove(f.path)
	}
	f.path, f.written, f.held = "", 0, false
	return nil
}

// Finish records the end of the download (and what keeps it), waking
// every reader: with err, they fail with it.
func (f *File) Finish(err error) {
	f.mu.Lock()
	f.done, f.err = true, err
	f.cond.Broadcast()
	f.mu.Unlock()
}

// Done reports whether Finish was called.
func (f *File) Done() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// Remove deletes the file, once nobody reads it.
func (f *File) Remove() {
	if p := f.Path(); p != "" {
		os.Remove(p)
	}
}

// readableLocked is how many bytes readers may have: all once verified,
// else all but the last (none while held).
func (f *File) readableLocked() int64 {
	if f.verified {
		return f.written
	}
	if f.held {
		return 0
	}
	return min(f.written, f.size-1)
}

// WaitFor blocks until byte off is readable, the file is verified, the
// download fails or ctx ends. It returns how many bytes are readable.
// The caller bounds a download that stalls (and Finishes it), so the wait
// is bounded even when ctx never ends.
func (f *File) WaitFor(ctx context.Context, off int64) (int64, error) {
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.err != nil {
			return 0, f.err
		}
		if avail := f.readableLocked(); avail > off || f.verified || f.done {
			return max(avail, 0), nil
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("wait for %s: %w", f.name, err)
		}
		f.cond.Wait()
	}
}

// Reader returns a reader of the file as it grows, of its declared size
// (so range requests work before the end arrives), reading under ctx;
// release is called once, when it is closed.
func (f *File) Reader(ctx context.Context, release func()) io.ReadSeekCloser {
	return &reader{ctx: ctx, f: f, release: release}
}

// reader reads a File while it is being written.
type reader struct {
	ctx     context.Context
	f       *File
	fh      *os.File
	off     int64
	release func()
	once    sync.Once
}

func (g *reader) Read(p []byte) (int, error) {
	if g.off >= g.f.size {
		return 0, io.EOF
	}
	avail, err := g.f.WaitFor(g.ctx, g.off)
	if err != nil {
		return 0, err
	}
	if g.fh == nil {
		if g.fh, err = os.Open(g.f.Path()); err != nil {
			return 0, err
		}
	}
	p = p[:min(int64(len(p)), avail-g.off)]
	n, err := g.fh.ReadAt(p, g.off)
	g.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (g *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += g.off
	case io.SeekEnd:
		offset += g.f.size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	g.off = offset
	return offset, nil
}

func (g *reader) Close() error {
	if g.fh != nil {
		g.fh.Close()
	}
	g.once.Do(g.release)
	return nil
}
