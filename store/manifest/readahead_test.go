package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/allmende/allmende/store"
)

// TestReadAheadChunksAndHashes checks that a readAhead hands out the file
// in ChunkSize chunks, in order, hashes exactly the bytes read, and counts
// them, whatever the size.
func TestReadAheadChunksAndHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"a byte short of a chunk", store.ChunkSize - 1},
		{"one chunk", store.ChunkSize},
		{"a byte over", store.ChunkSize + 1},
		{"many chunks and a tail", 9*store.ChunkSize + 17},
	} {
		data := make([]byte, tc.size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for _, recycle := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, recycle %v", tc.name, recycle), func(t *testing.T) {
				checkReadAhead(t, data, recycle)
			})
		}
	}
}

func checkReadAhead(t *testing.T, data []byte, recycle bool) {
	h := sha256.New()
	// A reader that returns half of what is asked makes the chunks come
	// from many reads.
	ra := newReadAhead(iotest.HalfReader(bytes.NewReader(data)), nil, h, nil, recycle)
	var got []byte
	for {
		b, err := ra.NextBytes()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != store.ChunkSize && len(got)+len(b) != len(data) {
			t.Fatalf("a chunk of %d bytes before the end", len(b))
		}
		got = append(got, b...) // done with b before asking for the next
	}
	if n := ra.Close(); n != int64(len(data)) {
		t.Errorf("read %d bytes, want %d", n, len(data))
	}
	if !bytes.Equal(got, data) {
		t.Error("chunks differ from the file")
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("hash differs from the file's")
	}
}

// TestReadAheadStops checks that Close ends the reading early (an import
// that failed) and that a read error reaches the DAG builder.
func TestReadAheadStops(t *testing.T) {
	data := make([]byte, 20*store.ChunkSize)
	ra := newReadAhead(bytes.NewReader(data), nil, io.Discard, nil, true)
	if _, err := ra.NextBytes(); err != nil {
		t.Fatal(err)
	}
	if n := ra.Close(); n >= int64(len(data)) {
		t.Errorf("read all %d bytes after Close", n)
	}

	boom := errors.New("disk gone")
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:store.ChunkSize+5]), iotest.ErrReader(boom)), nil, io.Discard, nil, false)
	var err error
	for err == nil {
		_, err = ra.NextBytes()
	}
	ra.Close()
	if !errors.Is(err, boom) {
		t.Errorf("NextBytes = %v, want the read error", err)
	}
}
