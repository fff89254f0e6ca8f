package hfapi

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a log destination the server's goroutines may write
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAccessLog(t *testing.T) {
	size := len(newTestBackend().content["w"])
	tests := []struct {
		name   string
		level  slog.Level
		method string
		path   string
		rng    string
		want   string // "" : no line at all
	}{
		{"a resumed download shows its range, 206 and the bytes sent", slog.LevelDebug, "GET", "/org/tiny/resolve/main/weights/model.safetensors", "bytes=1000-",
			`method=GET path=/org/tiny/resolve/main/weights/model.safetensors range="bytes=1000-" status=206 bytes=2000`},
		{"a whole download", slog.LevelDebug, "GET", "/org/tiny/resolve/main/weights/model.safetensors", "",
			`range="" status=200 bytes=` + strconv.Itoa(size)},
		{"a HEAD sends no body", slog.LevelDebug, "HEAD", "/org/tiny/resolve/main/config.json", "", `method=HEAD path=/org/tiny/resolve/main/config.json range="" status=200 bytes=0`},
		{"an error shows its status", slog.LevelDebug, "GET", "/org/nope/resolve/main/config.json", "", `status=401`},
		{"above debug level nothing is logged", slog.LevelInfo, "GET", "/org/tiny/resolve/main/config.json", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedBuffer
			srv := httptest.NewServer(Handler(newTestBackend(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tt.level}))))
			defer srv.Close()
			hdr := map[string]string{}
			if tt.rng != "" {
				hdr["Range"] = tt.rng
			}
			do(t, tt.method, srv.URL+tt.path, hdr, nil)
			srv.Close() // the line is written once the answer is sent
			got := logs.String()
			switch {
			case tt.want == "" && strings.Contains(got, "hub API request"):
				t.Errorf("logged %q", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("log %q lacks %q", got, tt.want)
			}
		})
	}
}
