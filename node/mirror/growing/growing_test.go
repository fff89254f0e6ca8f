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
