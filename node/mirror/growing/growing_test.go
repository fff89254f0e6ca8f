package growing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// gatedBody hands out its data in steps: each read waits for a step.
type gatedBody struct {
	data []byte
	step chan int
	fail error
}

func (g *gatedBody) Read(p []byte) (int, error) {
	n, ok := <-g.step
	if !ok {
		if g.fail != nil {
			return 0, g.fail
		}
		return 0, io.EOF
	}
	n = copy(p, g.data[:n])
	g.data = g.data[n:]
	return n, nil
}

func (g *gatedBody) Close() error { return nil }

// TestReaderNeverGetsTheLastByteUnchecked: a reader gets the bytes as they
// land, all but the last until the download reached EOF, and the
// download's error when it fails.
func TestReaderNeverGetsTheLastByteUnchecked(t *testing.T) {
	tests := []struct {
		name string
		fail error
	}{
		{"the download completes", nil},
		{"the download fails at the end", errors.New("hash mismatch")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("0123456789")
			body := &gatedBody{data: data, step: make(chan int), fail: tt.fail}
			f := New("test", int64(len(data)), t.TempDir(), "x-*.part")
			done := make(chan error, 1)
			go func() {
				err := f.Download(body, func() {}, nil)
				f.Finish(err)
				done <- err
			}()
			r := f.Reader(context.Background(), func() {})
			defer r.Close()
			body.step <- len(data) // all bytes land, EOF not yet seen
			buf := make([]byte, len(data))
			n, err := io.ReadAtLeast(r, buf, len(data)-1)
			if err != nil || n != len(data)-1 || !bytes.Equal(buf[:n], data[:n]) {
				t.Fatalf("read %d bytes, %v; want the first %d", n, err, len(data)-1)
			}
			got := make(chan error, 1)
			go func() {
				_, err := r.Read(buf)
				got <- err
			}()
			select {
			case err := <-got:
				t.Fatalf("the last byte was readable before EOF (%v)", err)
			case <-time.After(50 * time.Millisecond): // no timing asserted: only that it waits
			}
			close(body.step)
			err = <-got
			if (tt.fail == nil) != (err == nil) {
				t.Errorf("last read: %v, want error %v", err, tt.fail)
			}
			<-done
			f.Remove()
		})
	}
}

// TestHeldDownload: a held download gives readers nothing before it is
// verified; after it fails it can be Reset and written again from its
// first byte, and the reader then gets the second download's bytes only.
// A download that was not held cannot be Reset.
func TestHeldDownload(t *testing.T) {
	good := bytes.Repeat([]byte("g"), 64)
	f := New("held.bin", int64(len(good)), t.TempDir(), "held.*")
	liar := &gatedBody{data: bytes.Repeat([]byte("x"), 64), step: make(chan int, 2), fail: errors.New("wrong sha256")}
	liar.step <- 32
	close(liar.step)
	if err := f.DownloadHeld(liar, func() {}, nil); err == nil {
		t.Fatal("the lying download did not fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n, err := f.WaitFor(ctx, 0); err == nil {
		t.Fatalf("a held, failed download is readable: %d bytes", n)
	}
	if err := f.Reset(); err != nil {
		t.Fatalf("reset: %v", err)
	}
	honest := &gatedBody{data: good, step: make(chan int, 1)}
	honest.step <- len(good)
	close(honest.step)
	if err := f.Download(honest, func() {}, nil); err != nil {
		t.Fatalf("second download: %v", err)
	}
	r := f.Reader(context.Background(), func() {})
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("read %q, %v; want the second download's bytes", got, err)
	}
	if err := f.Reset(); !errors.Is(err, ErrRead) {
		t.Fatalf("reset of a download readers could read: %v, want ErrRead", err)
	}
}
