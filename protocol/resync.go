package protocol

import (
	"context"
	"log/slog"
	"sync"
	"time"

	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PeerResyncInterval is how often bitswap's idea of which peers are
// connected is compared with libp2p's. A peer has to be out of step at two
// checks in a row before it is corrected, so a notification that is merely
// on its way is never overtaken.
const PeerResyncInterval = 5 * time.Second

// bitswapProtocols are the protocol IDs that make a peer a bitswap peer.
var bitswapProtocols = []protocol.ID{bsnet.ProtocolBitswap, bsnet.ProtocolBitswapOneOne, bsnet.ProtocolBitswapOneZero, bsnet.ProtocolBitswapNoVers}

// resyncNetwork keeps bitswap's view of the connected peers in step with
// libp2p's connections.
//
// boxo tells bitswap a peer is gone not only when its last connection
// closes but also when three sends to it fail in a row (it marks the peer
// "unresponsive"), and only a new connection or a message from that peer
// brings it back. A seeder never sends a leecher a message of its own, so a
// fetch whose seeder was lost that way, with the connection up, got no
// block from it at all until fetch.timeout; a lost connect notification
// would do the same. resyncNetwork watches the notifications bitswap gets
// and, every PeerResyncInterval, announces again a peer that libp2p has
// connected (not only over a limited relay connection) and that speaks
// bitswap, but that bitswap was last told is gone, and the other way round.
type resyncNetwork struct {
	bsnetwork.BitSwapNetwork
	h        host.Host
	log      *slog.Logger
	interval time.Duration
	stop     context.CancelFunc
	done     chan struct{}

	mu sync.Mutex
	// recv are bitswap's receivers, wrapped to record what they are told.
	recv []*resyncReceiver
	// told is what bitswap was last told of a peer: true for connected.
	told map[peer.ID]bool
	// suspect are the peers out of step at the last check.
	suspect map[peer.ID]bool
}

// newResyncNetwork wraps net; log gets a line for every correction.
func newResyncNetwork(h host.Host, net bsnetwork.BitSwapNetwork, log *slog.Logger) *resyncNetwork {
	if log == nil {
		log = slog.Default()
	}
	return &resyncNetwork{BitSwapNetwork: net, h: h, log: log, interval: PeerResyncInterval, told: make(map[peer.ID]bool)}
}

// Start wraps the receivers, starts the inner network and the checks.
func (n *resyncNetwork) Start(rs ...bsnetwork.Receiver) {
	wrapped := make([]bsnetwork.Receiver, len(rs))
	n.mu.Lock()
	for i, r := range rs {
		w := &resyncReceiver{Receiver: r, n: n}
		n.recv = append(n.recv, w)
		wrapped[i] = w
	}
	n.mu.Unlock()
	n.BitSwapNetwork.Start(wrapped...)
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.done = cancel, make(chan struct{})
	go n.loop(ctx)
}

// Stop ends the checks, then the inner network.
func (n *resyncNetwork) Stop() {
	if n.stop != nil {
		n.stop()
		<-n.done
	}
	n.BitSwapNetwork.Stop()
}

func (n *resyncNetwork) loop(ctx context.Context) {
	defer close(n.done)
	tick := time.NewTicker(n.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.check()
		}
	}
}

// check corrects the peers that are out of step now and were at the last
// check too.
func (n *resyncNetwork) check() {
	now := make(map[peer.ID]bool) // peer -> libp2p says connected
	for _, p := range n.h.Network().Peers() {
		if n.usable(p) {
			now[p] = true
		}
	}
	n.mu.Lock()
	out := make(map[peer.ID]bool)
	for p := range now {
		if !n.told[p] {
			out[p] = true
		}
	}
	for p, connected := range n.told {
		if connected && !now[p] && n.h.Network().Connectedness(p) != network.Connected {
			out[p] = false
		}
	}
	var fix []peer.ID
	for p := range out {
		if n.suspect[p] {
			fix = append(fix, p)
		}
	}
	n.suspect = out
	recv := n.recv
	n.mu.Unlock()
	for _, p := range fix {
		n.log.Info("bitswap's view of a peer was out of step with libp2p; corrected", "peer", p.String(), "connected", out[p])
		for _, r := range recv {
			if out[p] {
				r.PeerConnected(p)
			} else {
				r.PeerDisconnected(p)
			}
		}
	}
}

// usable reports whether bitswap should be using p: p has a connection
// that is not limited (bitswap ignores relayed ones) and speaks bitswap.
func (n *resyncNetwork) usable(p peer.ID) bool {
	full := false
	for _, c := range n.h.Network().ConnsToPeer(p) {
		if !c.Stat().Limited {
			full = true
			break
		}
	}
	if !full {
		return false
	}
	ok, err := n.h.Peerstore().SupportsProtocols(p, bitswapProtocols...)
	return err == nil && len(ok) > 0
}

// note records what bitswap is being told of p.
func (n *resyncNetwork) note(p peer.ID, connected bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if connected {
		n.told[p] = true
	} else {
		delete(n.told, p)
	}
}

// resyncReceiver records the connect notifications on their way to
// bitswap.
type resyncReceiver struct {
	bsnetwork.Receiver
	n *resyncNetwork
}

func (r *resyncReceiver) PeerConnected(p peer.ID) {
	r.n.note(p, true)
	r.Receiver.PeerConnected(p)
}

func (r *resyncReceiver) PeerDisconnected(p peer.ID) {
	r.n.note(p, false)
	r.Receiver.PeerDisconnected(p)
}
