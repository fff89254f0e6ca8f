// Package httpserve runs allmende's HTTP servers (the local API and the
// mirror) with every timeout set, so a client that sends or reads slowly,
// or not at all, cannot hold a connection and its goroutine for ever; and
// it gives answers that rightly run long (streams, big files) a deadline
// per write instead of one for the whole answer.
package httpserve

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// Timeouts of the HTTP servers.
const (
	// readHeaderTimeout bounds reading a request's headers.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds reading a whole request, body included (API
	// bodies are at most 1 MiB; the mirror takes only small ones).
	readTimeout = 30 * time.Second
	// writeTimeout bounds a non-streaming answer, from the end of its
	// request's headers to its last byte (net/http/pprof adds the length
	// of a profile or trace to it).
	writeTimeout = time.Minute
	// idleTimeout closes a kept-alive connection that sends no request.
	idleTimeout = 2 * time.Minute
	// writeStallTimeout bounds each write of a long answer (see
	// WriteDeadlines): a client must take writeChunk bytes in this time.
	writeStallTimeout = 30 * time.Second
	// writeChunk is the most one write of a long answer sends under one
	// deadline: at writeStallTimeout it asks a client for ~8 KiB/s.
	writeChunk = 256 << 10
	// shutdownTimeout bounds a graceful shutdown.
	shutdownTimeout = 2 * time.Second
)

// Serve serves h on ln until ctx ends, then shuts down gracefully.
// Requests run under ctx, so they end when the server does. The server has
// all its timeouts; answers that may run longer than writeTimeout go
// through WriteDeadlines.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	return nil
}

// WriteDeadlines serves h's answers as long answers: streamed NDJSON
// progress, a verify or GC that runs for minutes, a model file of many
// GiB. The server's writeTimeout would cut them off, so each write gets
// its own deadline instead (http.ResponseController.SetWriteDeadline,
// writeStallTimeout from the moment the write starts, at most writeChunk
// bytes per write): the answer may run as long as it makes progress, and
// a client that stops reading fails the write, which cancels the
// request's context and so the work behind it. Time spent before the
// first write (a fill waiting on its upstream, a verify hashing) is not
// bounded here; the operation's own timeouts and the client hanging up
// bound it.
func WriteDeadlines(h http.Handler) http.Handler {
	return writeDeadlinesEvery(h, writeStallTimeout)
}

// writeDeadlinesEvery is WriteDeadlines with stall as the per-write
// deadline.
func writeDeadlinesEvery(h http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
		// The server flushes what is buffered after the handler returns.
		defer dw.extend()
		h.ServeHTTP(dw, r)
	})
}

// deadlineWriter gives every write to the ResponseWriter it wraps a fresh
// deadline. It keeps the wrapped writer's io.ReaderFrom (sendfile for
// files), flushing and hijacking, and unwraps for http.ResponseController.
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

// extend sets the deadline for the write about to start. Writers that have
// no deadlines (in tests, httptest.ResponseRecorder) are left alone.
func (d *deadlineWriter) extend() { d.rc.SetWriteDeadline(time.Now().Add(d.stall)) }

// WriteHeader implements http.ResponseWriter (1xx answers are written at once).
func (d *deadlineWriter) WriteHeader(code int) {
	d.extend()
	d.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter, writeChunk bytes per deadline.
func (d *deadlineWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		d.extend()
		return d.ResponseWriter.Write(p)
	}
	var n int
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		d.extend()
		m, err := d.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// Flush implements http.Flusher.
func (d *deadlineWriter) Flush() {
	d.extend()
	d.rc.Flush()
}

// ReadFrom implements io.ReaderFrom, writeChunk bytes per deadline. Each
// chunk is one *io.LimitedReader around src's own reader, so the wrapped
// writer still sees an *os.File behind it and can use sendfile.
func (d *deadlineWriter) ReadFrom(src io.Reader) (int64, error) {
	outer, limited := src.(*io.LimitedReader)
	inner := src
	if limited {
		inner = outer.R
	}
	var total int64
	for {
		want := int64(writeChunk)
		if limited {
			want = min(want, outer.N)
		}
		if want <= 0 {
			return total, nil
		}
		d.extend()
		n, err := io.Copy(d.ResponseWriter, &io.LimitedReader{R: inner, N: want})
		total += n
		if limited {
			outer.N -= n
		}
		if err != nil || n < want {
			return total, err
		}
	}
}

// Hijack implements http.Hijacker (boxo's gateway resets a connection
// whose answer it had to cut short). The connection is then the caller's,
// deadlines included.
func (d *deadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return d.rc.Hijack() }

// Unwrap lets http.ResponseController reach the wrapped writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
