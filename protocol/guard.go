package protocol

import (
	"context"
	"log/slog"
	"sync"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of the Guard.
const (
	// MaxBadBlocks is how many blocks nobody asked for a peer may send
	// before it is cut off. A corrupt block arrives as one: bitswap names a
	// block by the hash of its bytes, and wrong bytes hash to a CID nobody
	// wanted. A few are forgiven for blocks of wants sent long ago.
	MaxBadBlocks = 4
	// maxRecentWants bounds the CIDs remembered as asked for; the oldest
	// are forgotten first.
	maxRecentWants = 1 << 16
	// maxBanned bounds the peers remembered as cut off.
	maxBanned = 4096
)

// GuardStats are the Guard's counters.
type GuardStats struct {
	// BadBlocks is blocks received that no want asked for.
	BadBlocks uint64 `json:"bad_blocks"`
	// BadBytes is their size. None of them is ever stored.
	BadBytes uint64 `json:"bad_bytes"`
	// Banned is the peers cut off for sending them.
	Banned int `json:"banned_peers"`
}

// Guard attributes blocks to the peers that sent them, which boxo bitswap
// does not do for blocks that fail verification: it watches the wants this
// node sends and the blocks it receives, counts per peer the blocks whose
// CID (computed from their bytes) was never asked for, and disconnects and
// bans a peer past MaxBadBlocks. Banned peers' messages are dropped and
// their new connections closed. A Guard is safe for concurrent use.
type Guard struct {
	h   host.Host
	log *slog.Logger

	mu      sync.Mutex
	wanted  map[string]struct{}
	order   []string // ring of wanted keys, oldest at next
	next    int
	bad     map[peer.ID]int
	banned  map[peer.ID]struct{}
	banList []peer.ID
	stats   GuardStats
}

// NewGuard returns a Guard that disconnects liars from h.
func NewGuard(h host.Host, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{
		h: h, log: log,
		wanted: make(map[string]struct{}),
		bad:    make(map[peer.ID]int),
		banned: make(map[peer.ID]struct{}),
	}
}

// Stats returns the counters.
func (g *Guard) Stats() GuardStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Banned = len(g.banned)
	return s
}

// IsBanned reports whether p was cut off.
func (g *Guard) IsBanned(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.banned[p]
	return ok
}

// noteWants remembers the CIDs an outgoing message asks for.
func (g *Guard) noteWants(msg bsmsg.BitSwapMessage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range msg.Wantlist() {
		if !e.Cancel {
			g.rememberLocked(e.Cid)
		}
	}
}

func (g *Guard) rememberLocked(c cid.Cid) {
	k := c.KeyString()
	if _, ok := g.wanted[k]; ok {
		return
	}
	if len(g.order) < maxRecentWants {
		g.order = append(g.order, k)
	} else {
		delete(g.wanted, g.order[g.next])
		g.order[g.next] = k
		g.next = (g.next + 1) % maxRecentWants
	}
	g.wanted[k] = struct{}{}
}

// checkBlocks counts the blocks in msg from p that were never asked for
// and reports whether p is (now) banned.
func (g *Guard) checkBlocks(p peer.ID, msg bsmsg.BitSwapMessage) (banned bool) {
	g.mu.Lock()
	if _, ok := g.banned[p]; ok {
		g.mu.Unlock()
		return true
	}
	bad, badBytes := 0, 0
	for _, b := range msg.Blocks() {
		if _, ok := g.wanted[b.Cid().KeyString()]; !ok {
			bad++
			badBytes += len(b.RawData())
		}
	}
	if bad == 0 {
		g.mu.Unlock()
		return false
	}
	g.stats.BadBlocks += uint64(bad)
	g.stats.BadBytes += uint64(badBytes)
	g.bad[p] += bad
	count := g.bad[p]
	banned = count > MaxBadBlocks
	if banned {
		g.banLocked(p)
	}
	g.mu.Unlock()
	if banned {
		g.log.Warn("peer sent blocks that match no want (corrupt or unsolicited); disconnected and banned", "peer", p.String(), "blocks", count)
		g.h.Network().ClosePeer(p)
	} else {
		g.log.Debug("peer sent blocks that match no want", "peer", p.String(), "blocks", count)
	}
	return banned
}

func (g *Guard) banLocked(p peer.ID) {
	if len(g.banList) >= maxBanned {
		delete(g.banned, g.banList[0])
		g.banList = g.banList[1:]
	}
	g.banned[p] = struct{}{}
	g.banList = append(g.banList, p)
	delete(g.bad, p)
}

// Wrap returns net with the Guard watching its traffic.
func (g *Guard) Wrap(net bsnetwork.BitSwapNetwork) bsnetwork.BitSwapNetwork {
	return &guardedNetwork{BitSwapNetwork: net, g: g}
}

type guardedNetwork struct {
	bsnetwork.BitSwapNetwork
	g *Guard
}

func (n *guardedNetwork) SendMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	n.g.noteWants(msg)
	return n.BitSwapNetwork.SendMessage(ctx, p, msg)
}

func (n *guardedNetwork) NewMessageSender(ctx context.Context, p peer.ID, opts *bsnetwork.MessageSenderOpts) (bsnetwork.MessageSender, error) {
	s, err := n.BitSwapNetwork.NewMessageSender(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	return &guardedSender{MessageSender: s, g: n.g}, nil
}

func (n *guardedNetwork) Start(rs ...bsnetwork.Receiver) {
	wrapped := make([]bsnetwork.Receiver, len(rs))
	for i, r := range rs {
		wrapped[i] = &guardedReceiver{Receiver: r, g: n.g}
	}
	n.BitSwapNetwork.Start(wrapped...)
}

type guardedSender struct {
	bsnetwork.MessageSender
	g *Guard
}

func (s *guardedSender) SendMsg(ctx context.Context, msg bsmsg.BitSwapMessage) error {
	s.g.noteWants(msg)
	return s.MessageSender.SendMsg(ctx, msg)
}

// guardedReceiver checks incoming blocks before bitswap sees them. bitswap
// registers one receiver for client and server, so each message is
// counted once.
type guardedReceiver struct {
	bsnetwork.Receiver
	g *Guard
}

func (r *guardedReceiver) ReceiveMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) {
	if r.g.checkBlocks(p, msg) {
		return
	}
	r.Receiver.ReceiveMessage(ctx, p, msg)
}

func (r *guardedReceiver) PeerConnected(p peer.ID) {
	if r.g.IsBanned(p) {
		r.g.h.Network().ClosePeer(p)
		return
	}
	r.Receiver.PeerConnected(p)
}
