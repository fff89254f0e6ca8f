package pace

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/allmende/allmende/store/storetest"
)

// TestNoLimit: bandwidth 0 means no limiter, and nothing is wrapped.
func TestNoLimit(t *testing.T) {
	if lim := NewLimiter(0); lim != nil {
		t.Fatalf("NewLimiter(0) = %v, want nil", lim)
	}
	if err := Wait(context.Background(), nil, 1<<40); err != nil {
		t.Errorf("Wait without a limiter: %v", err)
	}
	bs := storetest.MemBlockstore()
	if Reads(bs, nil) != bs {
		t.Error("Reads without a limiter wrapped the block store")
	}
	h := http.NotFoundHandler()
	if got := Uploads(nil, h); got == nil {
		t.Error("Uploads without a limiter returned nil")
	}
}

// TestPacedReadsPassBytesThrough: paced reads return the stored bytes,
// and a read that cannot be paced before its deadline fails at once
// instead of hanging.
func TestPacedReadsPassBytesThrough(t *testing.T) {
	ctx := context.Background()
	bs := storetest.MemBlockstore()
	blks := p2ptest.RawBlocks(2, 4096)
	if err := bs.PutMany(ctx, blks); err != nil {
		t.Fatal(err)
	}
	paced := Reads(bs, NewLimiter(1<<30)).(*pacedBlockstore)
	got, err := paced.Get(ctx, blks[0].Cid())
	if err != nil || !bytes.Equal(got.RawData(), blks[0].RawData()) {
		t.Fatalf("Get: %v", err)
	}
	data, err := paced.ReadBlock(ctx, blks[1].Cid(), nil)
	if err != nil || !bytes.Equal(data, blks[1].RawData()) {
		t.Fatalf("ReadBlock: %v", err)
	}
	slow := NewLimiter(1) // a byte a second: 2 bursts take ~12 days
	short, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := Wait(short, slow, 2*rateBurst); err == nil {
		t.Error("a wait past its deadline succeeded")
	}
}

// TestUploadsKeepBodies: a paced answer arrives whole, streamed or not.
func TestUploadsKeepBodies(t *testing.T) {
	body := strings.Repeat("allmende ", 300_000) // > rateBurst
	h := Uploads(NewLimiter(1<<30), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body[:10]))
		w.(http.Flusher).Flush()
		w.Write([]byte(body[10:]))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Body.String() != body {
		t.Errorf("got %d bytes, want %d", rec.Body.Len(), len(body))
	}
}
