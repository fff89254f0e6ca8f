package hfapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of the resume tests.
const (
	resumeTestStall = 200 * time.Millisecond
	resumeTestWait  = time.Millisecond
	resumeTestSize  = 1 << 20
)

// step is what the scripted upstream does for one request.
type step struct {
	status      int    // an error answer instead of the bytes
	retryAfter  string // its Retry-After
	cut         int64  // drop the connection at this offset of the file
	stall       int64  // send nothing more from this offset on
	ignoreRange bool   // answer 200 with the whole file
}

// scripted serves data, doing steps[i] for the i-th request (the last
// step for every request after them), and records each request's Range
// and arrival time.
type scripted struct {
	data   []byte
	steps  []step
	done   chan struct{}
	mu     sync.Mutex
	ranges []string
	times  []time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.ranges)
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	st := s.steps[min(i, len(s.steps)-1)]
	if st.status != 0 {
		if st.retryAfter != "" {
			w.Header().Set("Retry-After", st.retryAfter)
		}
		w.WriteHeader(st.status)
		return
	}
	var start int64
	if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok && !st.ignoreRange {
		start, _ = strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.Itoa(len(s.data)-1)+"/"+strconv.Itoa(len(s.data)))
		w.Header().Set("Content-Length", strconv.FormatInt(int64(len(s.data))-start, 10))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
	}
	end := int64(len(s.data))
	if st.cut > start {
		end = st.cut
	}
	if st.stall > 0 {
		end = max(start, st.stall)
	}
	w.Write(s.data[start:end])
	w.(http.Flusher).Flush()
	switch {
	case st.stall > 0:
		<-s.done
	case end < int64(len(s.data)):
		panic(http.ErrAbortHandler)
	}
}

func (s *scripted) asked() ([]string, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), append([]time.Time(nil), s.times...)
}

// TestDownloadResumes: drops and stalls resume with Range from the first
// byte not read, 429 and 5xx are retried (after the upstream's
// Retry-After), other errors are not, and attempts that bring nothing are
// bounded.
func TestDownloadResumes(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), resumeTestSize/16)
	sum := sha256.Sum256(data)
	f := File{Path: "model.safetensors", Size: uint64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	third, half := int64(len(data)/3), int64(len(data)/2)
	r3, r2 := "bytes="+strconv.FormatInt(third, 10)+"-", "bytes="+strconv.FormatInt(half, 10)+"-"
	tests := []struct {
		name    string
		steps   []step
		wantErr error
		ranges  []string // the Range of each request
		wait    time.Duration
	}{
		{"whole at once", []step{{}}, nil, []string{""}, 0},
		{"two drops resume from where they cut", []step{{cut: third}, {cut: half}, {}}, nil, []string{"", r3, r2}, 0},
		{"a stall resumes", []step{{stall: half}, {}}, nil, []string{"", r2}, 0},
		{"an upstream ignoring Range has its repeat skipped", []step{{cut: half}, {ignoreRange: true}}, nil, []string{"", r2}, 0},
		{"503 is retried", []step{{status: 503}, {}}, nil, []string{"", ""}, 0},
		{"429 waits for Retry-After", []step{{status: 429, retryAfter: "1"}, {}}, nil, []string{"", ""}, time.Second},
		{"404 is not retried", []step{{status: 404}}, ErrUpstream, []string{""}, 0},
		{"5xx in a row give up", []step{{status: 502}}, ErrUpstream, []string{"", "", "", "", "", ""}, 0},
		{"stalls in a row give up", []step{{stall: half}}, ErrUpstreamTimeout, []string{"", r2, r2, r2, r2, r2, r2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &scripted{data: data, steps: tt.steps, done: make(chan struct{})}
			srv := httptest.NewServer(up)
			defer srv.Close()
			defer close(up.done)
			c, err := NewClient(srv.URL, Options{Stall: resumeTestStall, RetryWait: resumeTestWait})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var got []byte
			rc, err := c.Download(ctx, &Repo{Kind: Model, Name: "org/m", Commit: commit}, f)
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && !bytes.Equal(got, data)) {
				t.Fatalf("%d bytes, err %v; want all %d, err %v", len(got), err, len(data), tt.wantErr)
			}
			ranges, times := up.asked()
			if strings.Join(ranges, ",") != strings.Join(tt.ranges, ",") {
				t.Errorf("ranges asked %q, want %q", ranges, tt.ranges)
			}
			if tt.wait > 0 && len(times) > 1 && times[1].Sub(times[0]) < tt.wait-50*time.Millisecond {
				t.Errorf("asked again after %s, before the Retry-After of %s", times[1].Sub(times[0]), tt.wait)
			}
		})
	}
}

func TestRetryAfterAndBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-4", 0}, {"junk", 0}, {"86400", MaxRetryAfter},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
	} {
		h := http.Header{}
		h.Set("Retry-After", tt.header)
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("Retry-After %q: %s, want %s", tt.header, got, tt.want)
		}
	}
	for _, tt := range []struct {
		failures int
		after    time.Duration
		want     time.Duration
	}{
		{0, 0, 0}, {0, time.Minute, 0}, {1, 0, time.Second}, {3, 0, 4 * time.Second},
		{20, 0, MaxRetryWait}, {2, 7 * time.Second, 7 * time.Second},
	} {
		if got := backoff(time.Second, tt.failures, tt.after); got != tt.want {
			t.Errorf("backoff(%d, %s) = %s, want %s", tt.failures, tt.after, got, tt.want)
		}
	}
}
