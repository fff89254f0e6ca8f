package node

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/node/api"
	"go.uber.org/goleak"
)

// testFetchTimeout bounds a fetch between two in-process test nodes.
const testFetchTimeout = 30 * time.Second

// newTestNode starts a node like profile test does: loopback only, port 0,
// no bootstrap, no mDNS, no DHT, no NAT traversal. Each change, if any,
// alters that configuration first.
func newTestNode(t *testing.T, changes ...func(*Config)) *Node {
	t.Helper()
	home := t.TempDir()
	if err := InitHome(home, nil, ""); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Home:         home,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		APIAddr:      "127.0.0.1:0",
		DHTMode:      "off",
		AllowNets:    []string{"/ip4/127.0.0.0/ipcidr/8"},
		FetchTimeout: testFetchTimeout,
		Logger:       slog.New(slog.DiscardHandler),
	}
	for _, change := range changes {
		change(&cfg)
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNodesCloseWithoutLeaks runs two in-process nodes, fetches a file
// between them, closes both, and checks that no goroutine outlives them.
func TestNodesCloseWithoutLeaks(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	a, b := newTestNode(t), newTestNode(t)
	closed := false
	defer func() {
		if !closed {
			a.Close()
			b.Close()
		}
	}()
	src := filepath.Join(t.TempDir(), "weights.bin")
	data := bytes.Repeat([]byte("allmende "), 400_000) // several blocks
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	added, err := a.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctx, id.Addrs[0]); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := b.Fetch(ctx, api.FetchRequest{Ref: added.CID, Out: out}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched file differs (%v)", err)
	}
	closed = true
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if err := a.Close(); err != nil {
		t.Error(err)
	}
}

// TestOfflineNode: an offline node listens nowhere and dials no one, yet
// reads its store; content it lacks is not found without waiting for peers.
func TestOfflineNode(t *testing.T) {
	ctx := context.Background()
	online := newTestNode(t)
	defer online.Close()
	n := newTestNode(t, func(c *Config) { c.Offline = true; c.DHTMode = DHTServer; c.MDNS = true })
	defer n.Close()

	if addrs := n.host.Addrs(); len(addrs) != 0 {
		t.Errorf("offline host listens on %v", addrs)
	}
	peer, err := online.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Connect(ctx, peer.Addrs[0]); err == nil {
		t.Errorf("offline node dialled %s", peer.Addrs[0])
	}
	if n.routing != nil {
		t.Error("offline node runs a DHT")
	}
	src := filepath.Join(t.TempDir(), "weights.bin")
	if err := os.WriteFile(src, bytes.Repeat([]byte("offline "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	added, err := online.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Inspect(ctx, api.InspectRequest{Ref: added.CID})
	if err != nil || len(res.Files) != 1 || res.Files[0].Error == "" {
		t.Errorf("inspect of a CID only a peer holds: %+v, %v; want a per-file not-found error", res, err)
	}
	own, err := n.Add(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	pins, err := n.List(ctx)
	if err != nil || len(pins) != 1 || pins[0].CID != own.CID {
		t.Errorf("List = %v, %v; want %s", pins, err, own.CID)
	}
}
