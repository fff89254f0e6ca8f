package hfapi

import (
	"io"
	"log/slog"
	"net/http"
	"time"
)

// accessLog logs every request next answers at debug level, one line once
// the answer is sent: method, path, the Range asked for, status, body bytes
// and duration. It is how an operator (or a test) sees what a client asked,
// e.g. that a broken download was resumed with a Range request.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &loggedResponse{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.Debug("hub API request", "method", r.Method, "path", r.URL.EscapedPath(), "range", r.Header.Get("Range"),
			"status", rec.code(), "bytes", rec.bytes, "took", time.Since(start))
	})
}

// loggedResponse notes the status and body size of an answer. It passes
// ReadFrom on, so files still go out with sendfile, and Flush and Unwrap,
// for streamed answers and http.ResponseController.
type loggedResponse struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *loggedResponse) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *loggedResponse) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *loggedResponse) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *loggedResponse) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

func (r *loggedResponse) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *loggedResponse) Unwrap() http.ResponseWriter { return r.ResponseWriter }
