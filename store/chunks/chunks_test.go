package chunks

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"unsafe"
)

// TestChunkReaderChunksAndSinks checks that a Reader hands out the
// file in Size chunks, in order, in page-aligned buffers, gives the
// sink exactly the bytes read at their offsets, and counts them, whatever
// the size, with and without recycling.
func TestChunkReaderChunksAndSinks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"a byte short of a chunk", Size - 1},
		{"one chunk", Size},
		{"a byte over", Size + 1},
		{"many chunks and a tail", 9*Size + 17},
	} {
		data := make([]byte, tc.size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for _, opts := range []Options{{}, {Recycle: true}, {Recycle: true, Ordered: true}} {
			t.Run(fmt.Sprintf("%s, %+v", tc.name, opts), func(t *testing.T) {
				checkChunkReader(t, data, opts)
			})
		}
	}
}

func checkChunkReader(t *testing.T, data []byte, opts Options) {
	h := sha256.New()
	var next atomic.Int64 // read by the DAG builder's side when ordered
	sink := func(off int64, b []byte) error {
		if off != next.Load() {
			return fmt.Errorf("chunk at %d, want %d", off, next.Load())
		}
		next.Add(int64(len(b)))
		h.Write(b)
		return nil
	}
	// A reader that returns half of what is asked makes the chunks come
	// from many reads.
	cr := NewReader(iotest.HalfReader(bytes.NewReader(data)), sink, opts)
	var got []byte
	for {
		b, err := cr.NextBytes()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != Size && len(got)+len(b) != len(data) {
			t.Fatalf("a chunk of %d bytes before the end", len(b))
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%Align != 0 {
			t.Fatalf("chunk at address %#x, not page-aligned", p)
		}
		if opts.Ordered && next.Load() < int64(len(got)+len(b)) {
			t.Fatalf("chunk ending at %d handed out before the sink had it", len(got)+len(b))
		}
		got = append(got, b...) // done with b before asking for the next
	}
	n, err := cr.Close()
	if err != nil || n != int64(len(data)) {
		t.Errorf("read %d bytes (%v), want %d", n, err, len(data))
	}
	if !bytes.Equal(got, data) {
		t.Error("chunks differ from the file")
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("the sink got other bytes than the file's")
	}
}

// TestChunkReaderStops checks that Close ends the reading early (an import
// that failed), and that a read error and a sink's error (a full disk)
// reach the DAG builder, the sink's from Close.
func TestChunkReaderStops(t *testing.T) {
	data := make([]byte, 20*Size)
	discard := func(int64, []byte) error { return nil }
	cr := NewReader(bytes.NewReader(data), discard, Options{Recycle: true})
	if _, err := cr.NextBytes(); err != nil {
		t.Fatal(err)
	}
	if n, _ := cr.Close(); n >= int64(len(data)) {
		t.Errorf("read all %d bytes after Close", n)
	}

	boom := errors.New("disk gone")
	for _, opts := range []Options{{}, {Ordered: true}} {
		cr = NewReader(io.MultiReader(bytes.NewReader(data[:Size+5]), iotest.ErrReader(boom)), discard, opts)
		if err := drainChunks(cr); !errors.Is(err, boom) {
			t.Errorf("%+v: NextBytes = %v, want the read error", opts, err)
		}
		cr.Close()
	}

	full := errors.New("no space left on device")
	failing := func(off int64, _ []byte) error {
		if off >= 2*Size {
			return full
		}
		return nil
	}
	for _, opts := range []Options{{Recycle: true}, {Recycle: true, Ordered: true}} {
		cr = NewReader(bytes.NewReader(data), failing, opts)
		if err := drainChunks(cr); !errors.Is(err, errSinkFailed) {
			t.Errorf("%+v: NextBytes = %v, want errSinkFailed", opts, err)
		}
		if n, err := cr.Close(); !errors.Is(err, full) || n >= int64(len(data)) {
			t.Errorf("%+v: Close = %d, %v; want the sink's error before the end", opts, n, err)
		}
	}
}

// drainChunks takes chunks until an error and returns it.
func drainChunks(cr *Reader) error {
	for {
		if _, err := cr.NextBytes(); err != nil {
			return err
		}
	}
}
