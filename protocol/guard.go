package protocol

import (
	"context"
	"log/slog"
	"sync"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
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
	// BitswapStallAfter is how long a peer may hold a want-block without
	// sending it while sending no block at all. Then the Guard answers
	// for it with DONT_HAVE, so the fetch's session asks other peers.
	// boxo does the same on its own timeout, but a HAVE from the peer (it
	// answers the session's periodic want-have broadcast) cancels that
	// timeout: a peer that says HAVE and never sends held a fetch forever.
	BitswapStallAfter = 5 * time.Second
	// StallerDemotedFor is how long a peer reported stalling (ReportStall,
	// which the bulk fetcher calls only while other peers could serve) has
	// its want-blocks handed on at once (a DONT_HAVE for each at the next
	// stall check), so sessions ask others without waiting, unless it
	// sends a block meanwhile. Its HAVEs still count, and its want-blocks
	// stay with it: when it is the only holder — the next fetch may be of
	// a root nobody else has — its blocks still arrive and end the
	// demotion. (Reading its HAVEs as DONT_HAVEs, as before, stalled such
	// a fetch for the whole minute: issue 15.) A slow peer that is the
	// only holder is never demoted by bitswap's own stall watch, which
	// cannot tell whether others could serve.
	StallerDemotedFor = time.Minute
	// stallCheckInterval is how often pending want-blocks are checked.
	stallCheckInterval = 500 * time.Millisecond
	// maxPendingPerPeer bounds the want-blocks remembered per peer.
	maxPendingPerPeer = 4 * MaxWantlistPerPeer
)

// Protocols the Guard tells apart in its counters.
const (
	// GuardBitswap is bitswap: a bad block is one no want asked for.
	GuardBitswap = "bitswap"
	// GuardBulk is the bulk protocol (BulkID): a bad block is one that
	// does not match the CID it was sent for.
	GuardBulk = "bulk"
	// GuardResolve is the resolve protocol (ResolveID): a bad answer is a
	// file CID given for a whole-file sha256 whose content has another
	// sha256 (or size).
	GuardResolve = "resolve"
)

// GuardProtoStats are the Guard's counters for one protocol.
type GuardProtoStats struct {
	// BadBlocks is corrupt or unsolicited blocks received. None of them
	// is ever stored.
	BadBlocks uint64 `json:"bad_blocks"`
	// BadBytes is their size.
	BadBytes uint64 `json:"bad_bytes"`
	// Stalls is the times a peer promised blocks and sent none while
	// other peers could serve them, and was set aside.
	Stalls uint64 `json:"stalls"`
}

// GuardStats are the Guard's counters.
type GuardStats struct {
	// BadBlocks is bad blocks received over any protocol.
	BadBlocks uint64 `json:"bad_blocks"`
	// BadBytes is their size. None of them is ever stored.
	BadBytes uint64 `json:"bad_bytes"`
	// Banned is the peers cut off now (at most maxBanned are remembered).
	Banned int `json:"banned_peers"`
	// Bans is the peers cut off since the Guard started.
	Bans uint64 `json:"bans"`
	// Bitswap, Bulk and Resolve split the counters by protocol. For
	// Resolve, BadBlocks counts false answers and BadBytes the content
	// fetched in vain because of them.
	Bitswap GuardProtoStats `json:"bitswap"`
	Bulk    GuardProtoStats `json:"bulk"`
	Resolve GuardProtoStats `json:"resolve"`
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
	// pending are the want-blocks sent to each peer and not yet answered
	// (block, DONT_HAVE or cancel), with when they were sent; lastBlock
	// is when each peer last sent a block.
	pending   map[peer.ID]map[cid.Cid]time.Time
	lastBlock map[peer.ID]time.Time
	// demoted are peers caught stalling, until when (StallerDemotedFor).
	demoted map[peer.ID]time.Time
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

		pending:   make(map[peer.ID]map[cid.Cid]time.Time),
		lastBlock: make(map[peer.ID]time.Time),
		demoted:   make(map[peer.ID]time.Time),
	}
}

// noteSent remembers the want-blocks msg asks of p and forgets cancelled
// ones.
func (g *Guard) noteSent(p peer.ID, msg bsmsg.BitSwapMessage) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range msg.Wantlist() {
		pend := g.pending[p]
		switch {
		case e.Cancel:
			delete(pend, e.Cid)
		case e.WantType == pb.Message_Wantlist_Block:
			if pend == nil {
				pend = make(map[cid.Cid]time.Time)
				g.pending[p] = pend
			}
			if _, ok := pend[e.Cid]; !ok && len(pend) < maxPendingPerPeer {
				pend[e.Cid] = now
			}
		}
	}
}

// noteAnswers forgets the want-blocks that msg from p answers.
func (g *Guard) noteAnswers(p peer.ID, msg bsmsg.BitSwapMessage) {
	bs, dh := msg.Blocks(), msg.DontHaves()
	if len(bs) == 0 && len(dh) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(bs) > 0 {
		g.lastBlock[p] = time.Now()
	}
	pend := g.pending[p]
	for _, b := range bs {
		delete(pend, b.Cid())
	}
	for _, c := range dh {
		delete(pend, c)
	}
}

// forget drops what the Guard keeps about a disconnected peer's wants.
func (g *Guard) forget(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pending, p)
	delete(g.lastBlock, p)
}

// stalled returns, per peer, the want-blocks it has held for
// BitswapStallAfter while sending no block for as long, and forgets them.
func (g *Guard) stalled(now time.Time) map[peer.ID][]cid.Cid {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out map[peer.ID][]cid.Cid
	for p, pend := range g.pending {
		// A demoted peer (caught stalling before) gets no grace.
		after := BitswapStallAfter
		if until, ok := g.demoted[p]; ok && now.Before(until) {
			after = 0
		}
		if now.Sub(g.lastBlock[p]) < after {
			continue
		}
		var held []cid.Cid
		for c, sent := range pend {
			if now.Sub(sent) >= after {
				held = append(held, c)
			}
		}
		if len(held) == 0 {
			continue
		}
		for _, c := range held {
			delete(pend, c)
		}
		if out == nil {
			out = make(map[peer.ID][]cid.Cid)
		}
		out[p] = held
		g.stats.Bitswap.Stalls++
	}
	for p, until := range g.demoted {
		if now.After(until) {
			delete(g.demoted, p)
		}
	}
	return out
}

// demote ends the demotion of a peer caught stalling once it sends a
// block (or StallerDemotedFor is over). Its HAVEs pass untouched: hiding
// them made a peer that alone holds a root unaskable (see
// StallerDemotedFor).
func (g *Guard) demote(p peer.ID, msg bsmsg.BitSwapMessage) {
	g.mu.Lock()
	until, ok := g.demoted[p]
	over := ok && (len(msg.Blocks()) > 0 || time.Now().After(until))
	if over {
		delete(g.demoted, p)
	}
	g.mu.Unlock()
	if over {
		g.log.Debug("demoted peer sent a block or its time is up; demotion over", "peer", p.String())
	}
}

// watchStalls answers, every stallCheckInterval until stop closes, for
// peers that hold want-blocks (see stalled) with a DONT_HAVE handed to r.
func (g *Guard) watchStalls(r bsnetwork.Receiver, stop <-chan struct{}) {
	tick := time.NewTicker(stallCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			for p, held := range g.stalled(now) {
				g.log.Debug("peer holds wanted blocks and sends none; asking others", "peer", p.String(), "blocks", len(held))
				msg := bsmsg.New(false)
				for _, c := range held {
					msg.AddDontHave(c)
				}
				r.ReceiveMessage(context.Background(), p, msg)
			}
		}
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
	return g.strikeUnlock(p, &g.stats.Bitswap, bad, badBytes, "peer sent blocks that match no want (corrupt or unsolicited)")
}

// ReportBulk counts a block from p over the bulk protocol that did not
// match the CID it was sent for (or broke the wire format), toward the
// same limit as bitswap's bad blocks, and reports whether p is (now)
// banned.
func (g *Guard) ReportBulk(p peer.ID, badBytes int) (banned bool) {
	g.mu.Lock()
	if _, ok := g.banned[p]; ok {
		g.mu.Unlock()
		return true
	}
	return g.strikeUnlock(p, &g.stats.Bulk, 1, badBytes, "peer sent a bulk block that does not match its CID")
}

// ReportFalseAnswer counts an answer from p over the resolve protocol that
// proved false once checked (a sha256 lookup answered with the CID of other
// content, whose badBytes were fetched in vain) and bans p at once: an
// honest node's answer comes from a file it hashed itself, so unlike a bad
// block (a want sent long ago, a flipped bit on the way) a false answer is
// no accident. It reports whether p is (now) banned.
func (g *Guard) ReportFalseAnswer(p peer.ID, badBytes int) (banned bool) {
	g.mu.Lock()
	if _, ok := g.banned[p]; ok {
		g.mu.Unlock()
		return true
	}
	g.bad[p] = max(g.bad[p], MaxBadBlocks)
	return g.strikeUnlock(p, &g.stats.Resolve, 1, badBytes, "peer answered a sha256 lookup with the CID of other content")
}

// ReportStall counts a peer set aside over proto (GuardBitswap or
// GuardBulk) for promising blocks and sending none. A stall is not a
// strike: a slow or overloaded peer looks the same.
func (g *Guard) ReportStall(p peer.ID, proto string) {
	g.mu.Lock()
	// A peer that stalls on one protocol is not trusted to deliver on
	// the other: its want-blocks are handed to others at once.
	g.demoted[p] = time.Now().Add(StallerDemotedFor)
	switch proto {
	case GuardBitswap:
		g.stats.Bitswap.Stalls++
	case GuardBulk:
		g.stats.Bulk.Stalls++
	}
	g.mu.Unlock()
	g.log.Debug("peer demoted for stalling: its want-blocks go to others at once until it sends a block", "peer", p.String(), "protocol", proto, "for", StallerDemotedFor)
}

// strikeUnlock counts bad blocks from p into ps, bans p past MaxBadBlocks
// and unlocks g.mu, which the caller holds.
func (g *Guard) strikeUnlock(p peer.ID, ps *GuardProtoStats, bad, badBytes int, what string) (banned bool) {
	ps.BadBlocks += uint64(bad)
	ps.BadBytes += uint64(badBytes)
	g.stats.BadBlocks += uint64(bad)
	g.stats.BadBytes += uint64(badBytes)
	g.bad[p] += bad
	count := g.bad[p]
	banned = count > MaxBadBlocks
	if banned {
		g.banLocked(p)
		g.stats.Bans++
	}
	g.mu.Unlock()
	if banned {
		g.log.Warn(what+"; disconnected and banned", "peer", p.String(), "blocks", count)
		g.h.Network().ClosePeer(p)
	} else {
		g.log.Debug(what, "peer", p.String(), "blocks", count)
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
	// stop ends the stall watch started by Start.
	stop chan struct{}
}

func (n *guardedNetwork) SendMessage(ctx context.Context, p peer.ID, msg bsmsg.BitSwapMessage) error {
	n.g.noteWants(msg)
	n.g.noteSent(p, msg)
	return n.BitSwapNetwork.SendMessage(ctx, p, msg)
}

func (n *guardedNetwork) NewMessageSender(ctx context.Context, p peer.ID, opts *bsnetwork.MessageSenderOpts) (bsnetwork.MessageSender, error) {
	s, err := n.BitSwapNetwork.NewMessageSender(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	return &guardedSender{MessageSender: s, g: n.g, p: p}, nil
}

func (n *guardedNetwork) Start(rs ...bsnetwork.Receiver) {
	wrapped := make([]bsnetwork.Receiver, len(rs))
	for i, r := range rs {
		wrapped[i] = &guardedReceiver{Receiver: r, g: n.g}
	}
	n.BitSwapNetwork.Start(wrapped...)
	if len(rs) > 0 {
		n.stop = make(chan struct{})
		go n.g.watchStalls(rs[0], n.stop)
	}
}

func (n *guardedNetwork) Stop() {
	if n.stop != nil {
		close(n.stop)
		n.stop = nil
	}
	n.BitSwapNetwork.Stop()
}

type guardedSender struct {
	bsnetwork.MessageSender
	g *Guard
	p peer.ID
}

func (s *guardedSender) SendMsg(ctx context.Context, msg bsmsg.BitSwapMessage) error {
	s.g.noteWants(msg)
	s.g.noteSent(s.p, msg)
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
	r.g.demote(p, msg)
	r.g.noteAnswers(p, msg)
	r.Receiver.ReceiveMessage(ctx, p, msg)
}

func (r *guardedReceiver) PeerDisconnected(p peer.ID) {
	r.g.forget(p)
	r.Receiver.PeerDisconnected(p)
}

func (r *guardedReceiver) PeerConnected(p peer.ID) {
	if r.g.IsBanned(p) {
		r.g.h.Network().ClosePeer(p)
		return
	}
	r.Receiver.PeerConnected(p)
}
