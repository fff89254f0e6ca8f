package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/allmende/allmende/node/p2p"
	"github.com/allmende/allmende/test/harness"
)

// Flood test parameters.
const (
	// floodConns is how many raw TCP connections hold the seeder's port.
	floodConns = 500
	// hammerMessages, each of hammerWants wants for blocks nobody has, is
	// what the hammering peer sends.
	hammerMessages = 300
	hammerWants    = 1024
	floodFileSize  = 32 << 20
	// rssBudget is the resource manager's memory budget in profile test
	// (resources.max_memory, 1 GiB): the daemon must stay below it.
	rssBudget = 1 << 30
)

// ignoreBitswap is a bitswap receiver that drops everything.
type ignoreBitswap struct{}

func (ignoreBitswap) ReceiveMessage(context.Context, peer.ID, bsmsg.BitSwapMessage) {}
func (ignoreBitswap) ReceiveError(error)                                            {}
func (ignoreBitswap) PeerConnected(peer.ID)                                         {}
func (ignoreBitswap) PeerDisconnected(peer.ID)                                      {}

// hammerer is a libp2p peer that sends a seeder wantlists full of CIDs
// nobody has, as fast as the seeder takes them.
type hammerer struct {
	close func() error
	net   bsnetwork.BitSwapNetwork
	to    peer.ID
}

// newHammerer connects a hammering peer to addr.
func newHammerer(ctx context.Context, addr string) (*hammerer, error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return nil, err
	}
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		h.Close()
		return nil, err
	}
	if err := h.Connect(ctx, *ai); err != nil {
		h.Close()
		return nil, err
	}
	net := bsnet.NewFromIpfsHost(h)
	net.Start(ignoreBitswap{})
	return &hammerer{close: func() error { net.Stop(); return h.Close() }, net: net, to: ai.ID}, nil
}

// run sends hammerMessages wantlists and reports how many went out.
func (hm *hammerer) run(ctx context.Context) (int, error) {
	for i := range hammerMessages {
		msg := bsmsg.New(true)
		for range hammerWants {
			var b [32]byte
			rand.Read(b[:])
			mh, _ := multihash.Sum(b[:], multihash.SHA2_256, -1)
			msg.AddEntry(cid.NewCidV1(cid.Raw, mh), 1, pb.Message_Wantlist_Block, true)
		}
		if err := hm.net.SendMessage(ctx, hm.to, msg); err != nil {
			return i, err
		}
	}
	return hammerMessages, nil
}

// quicAddr returns n's QUIC multiaddr.
func quicAddr(t *testing.T, n *harness.Node) string {
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/quic-v1/") {
			return a
		}
	}
	t.Fatal("no QUIC address")
	return ""
}

// tcpHostPort turns /ip4/A/tcp/P/p2p/ID into A:P.
func tcpHostPort(t *testing.T, addr string) string {
	f := strings.Split(addr, "/")
	if len(f) < 5 || f[1] != "ip4" || f[3] != "tcp" {
		t.Fatalf("not an /ip4/../tcp/.. address: %s", addr)
	}
	return net.JoinHostPort(f[2], f[4])
}

// noAllowList replaces profile test's loopback allow-list with a network
// nobody uses (TEST-NET-1, never dialled), so libp2p's per-IP connection
// limit applies to loopback as it would to any single address.
const noAllowList = "ALLMENDE_RESOURCES_ALLOW=/ip4/192.0.2.0/ipcidr/24"

// floodPair starts a seeder (with env) holding src and an honest fetcher
// connected to it. It returns both, the root, the seeder's TCP address and
// its RSS before any flood.
func floodPair(t *testing.T, src, env string) (seeder, fetcher *harness.Node, root, addr string, idle uint64) {
	t.Helper()
	seeder = harness.NewNode(t, env)
	seeder.Start()
	root = seeder.Add(src)
	addr = seeder.TCPAddr()
	idle, _ = seeder.RSS()
	fetcher = harness.NewNode(t)
	fetcher.Start()
	fetcher.MustRun("connect", addr)
	return seeder, fetcher, root, addr, idle
}

func TestFlood(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, floodFileSize, 41)
	// The honest peer and the hammering peer connect first; then 500
	// connections that never finish a handshake arrive from the same
	// address.
	seeder, fetcher, root, addr, idle := floodPair(t, src, noAllowList)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hm, err := newHammerer(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hm.close()
	var wg sync.WaitGroup
	var hammerErr error
	var sent int
	wg.Add(1)
	go func() { defer wg.Done(); sent, hammerErr = hm.run(ctx) }()

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	hp := tcpHostPort(t, addr)
	for range floodConns {
		if c, err := net.Dial("tcp", hp); err == nil {
			conns = append(conns, c)
		}
	}

	var peak uint64
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := seeder.RSS(); err == nil {
				peak = max(peak, rss)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	out := filepath.Join(t.TempDir(), "out")
	fetcher.MustRun("fetch", root, "-o", out)
	if same, err := harness.FilesEqual(src, out); err != nil || !same {
		t.Errorf("fetch under flood: bytes differ (%v)", err)
	}
	wg.Wait()
	cancel()
	<-sampling
	t.Logf("the hammering peer sent %d of %d wantlists (%v)", sent, hammerMessages, hammerErr)
	var id map[string]any
	seeder.JSON(&id, "id", "--json") // still up and answering
	t.Logf("seeder RSS: %d MiB idle, %d MiB peak under %d raw connections and %dx%d junk wants", idle>>20, peak>>20, floodConns, hammerMessages, hammerWants)
	if peak > rssBudget {
		t.Errorf("seeder RSS peaked at %d MiB, over the %d MiB budget", peak>>20, rssBudget>>20)
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	late := harness.NewNode(t)
	late.Start()
	connectEventually(t, late, addr)
}

// connectEventually connects n to addr, retrying while the seeder still
// counts the flood's closed connections against its limits.
func connectEventually(t *testing.T, n *harness.Node, addr string) {
	t.Helper()
	const attempts = 50
	var r harness.Result
	for range attempts {
		if r = n.Run("connect", addr); r.Code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("a new peer cannot connect after the flood ended: %s", r.Stderr)
}

// floodFrom opens n raw TCP connections to hp from each of the local
// addresses srcs, none of which ever starts a handshake. It returns them
// once the seeder has had time to refuse what it refuses, with how many
// it still holds open.
func floodFrom(t *testing.T, hp string, srcs []string, n int) (conns []net.Conn, held int) {
	t.Helper()
	for _, src := range srcs {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		for range n {
			if c, err := d.Dial("tcp", hp); err == nil {
				conns = append(conns, c)
			}
		}
	}
	// A refused connection is closed at once; a held one waits for the
	// handshake after its multistream header.
	time.Sleep(500 * time.Millisecond)
	buf := make([]byte, 1024)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var err error
		for err == nil {
			_, err = c.Read(buf)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			held++
		}
	}
	return conns, held
}

// TestFloodAllowListed floods a seeder from networks in resources.allow,
// which libp2p exempts from its per-address limits (a LAN mirror must let
// a classroom in): the finite limits for allowed networks keep the
// flooders from taking every inbound slot, so an honest fetch completes
// and a new peer connects while the flood holds its connections.
func TestFloodAllowListed(t *testing.T) {
	cases := []struct {
		why      string
		allow    string // resources.allow; loopback 127.0.0.1 is in it or not
		flooders int    // addresses 127.0.1.1, 127.0.1.2, ... each sending its share
	}{
		{"one LAN machine floods; another LAN machine still connects", "/ip4/127.0.0.0/ipcidr/8", 1},
		{"the whole LAN floods; a peer outside the LAN still connects", "/ip4/127.0.1.0/ipcidr/24", 50},
	}
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, floodFileSize, 43)
	for _, tc := range cases {
		t.Run(tc.why, func(t *testing.T) {
			seeder, fetcher, root, addr, idle := floodPair(t, src, "ALLMENDE_RESOURCES_ALLOW="+tc.allow)

			var srcs []string
			for i := range tc.flooders {
				srcs = append(srcs, fmt.Sprintf("127.0.1.%d", i+1))
			}
			conns, held := floodFrom(t, tcpHostPort(t, addr), srcs, floodConns/tc.flooders)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			var peak uint64
			if rss, err := seeder.RSS(); err == nil {
				peak = rss
			}

			// While the flood holds its connections (libp2p's accept
			// timeout is 15 s): a new peer connects, and the honest peer
			// fetches.
			start := time.Now()
			late := harness.NewNode(t)
			late.Start()
			r := late.Run("connect", addr)
			connectTook := time.Since(start)
			out := filepath.Join(t.TempDir(), "out")
			fr := fetcher.Run("fetch", root, "-o", out)
			if rss, err := seeder.RSS(); err == nil {
				peak = max(peak, rss)
			}
			t.Logf("%d flood connections from %d address(es): the seeder held %d open; a new peer connected: %v (%s); honest fetch of %d MiB completed: %v; seeder RSS %d MiB idle, %d MiB peak",
				len(conns), tc.flooders, held, r.Code == 0, connectTook.Round(time.Millisecond), floodFileSize>>20, fr.Code == 0, idle>>20, peak>>20)
			if r.Code != 0 {
				t.Errorf("a new peer could not connect during the flood: %s", r.Stderr)
			}
			if fr.Code != 0 {
				t.Errorf("honest fetch during the flood failed: %s", fr.Stderr)
			} else if same, err := harness.FilesEqual(src, out); err != nil || !same {
				t.Errorf("fetch under flood: bytes differ (%v)", err)
			}
			if held > p2p.AllowedHandshakes {
				t.Errorf("the seeder held %d handshakes from allowed networks, more than p2p.AllowedHandshakes (%d)", held, p2p.AllowedHandshakes)
			}
			if peak > rssBudget {
				t.Errorf("seeder RSS peaked at %d MiB, over the %d MiB budget", peak>>20, rssBudget>>20)
			}
		})
	}
}
