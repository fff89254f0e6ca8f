package httpserve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Test timings: far apart, so a slow machine cannot change an outcome.
const (
	// testWriteTimeout is the test server's whole-answer write timeout.
	testWriteTimeout = 300 * time.Millisecond
	// testStall is the per-write deadline of long answers in these tests.
	testStall = 5 * time.Second
	// testLines and testLineGap make a stream last 1 s, > testWriteTimeout.
	testLines   = 10
	testLineGap = 100 * time.Millisecond
	// testCutOffWait bounds the wait for a stuck client to be cut off.
	testCutOffWait = 30 * time.Second
)

// startTestServer serves h on 127.0.0.1 with testWriteTimeout and returns
// its base URL.
func startTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, WriteTimeout: testWriteTimeout, ReadHeaderTimeout: readHeaderTimeout}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// slowStream writes testLines lines, one every testLineGap, flushing each.
func slowStream(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	for i := range testLines {
		fmt.Fprintf(w, "line %d\n", i)
		w.(http.Flusher).Flush()
		time.Sleep(testLineGap)
	}
}

func TestWriteDeadlinesLetStreamsOutliveWriteTimeout(t *testing.T) {
	tests := []struct {
		name string
		h    http.Handler
		// full says whether every line must arrive.
		full bool
	}{
		{"a stream under per-write deadlines arrives whole", writeDeadlinesEvery(http.HandlerFunc(slowStream), testStall), true},
		{"without them the server's WriteTimeout cuts it (the control)", http.HandlerFunc(slowStream), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(startTestServer(t, tt.h))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := 0
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines++
			}
			if (lines == testLines) != tt.full {
				t.Errorf("%d of %d lines arrived (err %v), want all: %v", lines, testLines, sc.Err(), tt.full)
			}
		})
	}
}

func TestWriteDeadlinesCutOffAStuckClient(t *testing.T) {
	const stall = 200 * time.Millisecond
	werr := make(chan error, 1)
	h := writeDeadlinesEvery(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	}), stall)
	base := startTestServer(t, h)
	c, err := net.Dial("tcp", base[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Ask, then never read.
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	select {
	case err := <-werr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the write failed with %v, want its deadline exceeded", err)
		}
	case <-time.After(testCutOffWait):
		t.Fatalf("a client that reads nothing still holds the answer after %s", testCutOffWait)
	}
}

func TestWriteDeadlinesServeFilesWhole(t *testing.T) {
	size := 3*writeChunk + 12345
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := writeDeadlinesEvery(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f) // io.CopyN: ReadFrom with a *LimitedReader
	}), testStall)
	base := startTestServer(t, h)
	tests := []struct {
		name string
		rng  string
		want []byte
	}{
		{"the whole file", "", data},
		{"a range across chunks", fmt.Sprintf("bytes=%d-%d", writeChunk-10, 2*writeChunk+10), data[writeChunk-10 : 2*writeChunk+11]},
		{"the tail", fmt.Sprintf("bytes=%d-", size-100), data[size-100:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base, nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("got %d bytes (%v), want %d equal bytes", len(got), err, len(tt.want))
			}
		})
	}
}
