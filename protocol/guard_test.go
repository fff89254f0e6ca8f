package protocol

import (
	"log/slog"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestGuardCutsOffLiars(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := NewGuard(h, slog.New(slog.DiscardHandler))
	honest, liar := peer.ID("honest"), peer.ID("liar")

	wanted := blocks.NewBlock([]byte("wanted block"))
	want := bsmsg.New(false)
	want.AddEntry(wanted.Cid(), 1, pb.Message_Wantlist_Block, true)
	g.noteWants(want)

	// step is one message from one peer; each says why it is there.
	type step struct {
		name   string
		from   peer.ID
		block  blocks.Block
		banned bool
	}
	tests := []step{
		{"a wanted block is fine", honest, wanted, false},
		{"a wanted block again (a late duplicate) is fine", honest, wanted, false},
	}
	for i := range MaxBadBlocks {
		tests = append(tests, step{"a few unwanted blocks are forgiven", liar, blocks.NewBlock([]byte{byte(i)}), false})
	}
	tests = append(tests,
		step{"one more and the peer is cut off", liar, blocks.NewBlock([]byte("corrupt")), true},
		step{"once banned, even wanted blocks are dropped", liar, wanted, true},
	)
	for _, tt := range tests {
		msg := bsmsg.New(false)
		msg.AddBlock(tt.block)
		if got := g.checkBlocks(tt.from, msg); got != tt.banned {
			t.Errorf("%s: banned = %v, want %v", tt.name, got, tt.banned)
		}
	}
	if g.IsBanned(honest) || !g.IsBanned(liar) {
		t.Errorf("banned: honest %v, liar %v", g.IsBanned(honest), g.IsBanned(liar))
	}
	if st := g.Stats(); st.BadBlocks != MaxBadBlocks+1 || st.Banned != 1 {
		t.Errorf("stats = %+v, want %d bad blocks and 1 banned peer", st, MaxBadBlocks+1)
	}
}

func TestGuardCountsPerProtocol(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := NewGuard(h, slog.New(slog.DiscardHandler))
	liar, staller := peer.ID("liar"), peer.ID("staller")

	// step is one report; report returns whether the peer is banned.
	type step struct {
		name   string
		report func() bool
		banned bool
	}
	tests := []step{
		{"a stall is counted, never a strike", func() bool { g.ReportStall(staller, GuardBulk); return g.IsBanned(staller) }, false},
		{"a corrupt bulk block is a strike", func() bool { return g.ReportBulk(liar, 100) }, false},
	}
	for i := range MaxBadBlocks - 1 {
		bad := blocks.NewBlock([]byte{byte(i)})
		tests = append(tests, step{"bitswap strikes add to bulk ones", func() bool {
			msg := bsmsg.New(false)
			msg.AddBlock(bad)
			return g.checkBlocks(liar, msg)
		}, false})
	}
	tests = append(tests, step{"the strike past MaxBadBlocks bans, whatever the protocol", func() bool { return g.ReportBulk(liar, 100) }, true})
	for _, tt := range tests {
		if got := tt.report(); got != tt.banned {
			t.Errorf("%s: banned = %v, want %v", tt.name, got, tt.banned)
		}
	}
	st := g.Stats()
	if st.Bulk.BadBlocks != 2 || st.Bulk.BadBytes != 200 || st.Bitswap.BadBlocks != MaxBadBlocks-1 || st.Bulk.Stalls != 1 {
		t.Errorf("per protocol = bitswap %+v, bulk %+v", st.Bitswap, st.Bulk)
	}
	if st.BadBlocks != MaxBadBlocks+1 || st.Bans != 1 || st.Banned != 1 {
		t.Errorf("totals = %+v, want %d bad blocks and 1 ban", st, MaxBadBlocks+1)
	}
}

// TestGuardDemotesStallers checks that a peer reported stalling has its
// pending want-blocks handed on at once until it sends a block, while its
// HAVEs still pass (it may be the only holder).
func TestGuardDemotesStallers(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := NewGuard(h, slog.New(slog.DiscardHandler))
	staller, honest := peer.ID("staller"), peer.ID("honest")
	held := blocks.NewBlock([]byte("held"))
	want := bsmsg.New(false)
	want.AddEntry(held.Cid(), 1, pb.Message_Wantlist_Block, true)
	g.noteSent(staller, want)
	if got := g.stalled(time.Now()); len(got) != 0 {
		t.Fatalf("stalled = %v before BitswapStallAfter", got)
	}
	g.ReportStall(staller, GuardBulk)
	if got := g.stalled(time.Now()); len(got[staller]) != 1 {
		t.Fatalf("stalled = %v, want the reported staller's want-block handed on at once", got)
	}

	tests := []struct {
		name    string
		from    peer.ID
		block   bool // the message carries a block too
		demoted bool // the staller is still demoted afterwards
	}{
		{"an honest peer's HAVE passes", honest, false, true},
		{"a staller's HAVE passes too: it may be the only holder", staller, false, true},
		{"a block from the staller ends its demotion", staller, true, false},
		{"and its HAVEs pass as before", staller, false, false},
	}
	for _, tt := range tests {
		msg := bsmsg.New(false)
		msg.AddHave(held.Cid())
		if tt.block {
			msg.AddBlock(blocks.NewBlock([]byte("other")))
		}
		g.demote(tt.from, msg)
		if len(msg.Haves()) != 1 || len(msg.DontHaves()) != 0 {
			t.Errorf("%s: haves %v, don't-haves %v; want the HAVE untouched", tt.name, msg.Haves(), msg.DontHaves())
		}
		g.noteSent(staller, want)
		if got := len(g.stalled(time.Now())[staller]) == 1; got != tt.demoted {
			t.Errorf("%s: want-block handed on at once = %v, want %v", tt.name, got, tt.demoted)
		}
	}
}

// TestGuardBansFalseAnswerAtOnce: one sha256 answer proved false bans its
// peer, where bad blocks are forgiven up to MaxBadBlocks; it is counted
// under the resolve protocol and in the totals.
func TestGuardBansFalseAnswerAtOnce(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := NewGuard(h, slog.New(slog.DiscardHandler))
	liar, other := peer.ID("liar"), peer.ID("other")
	if !g.ReportFalseAnswer(liar, 1000) || !g.IsBanned(liar) {
		t.Fatal("a false sha256 answer did not ban its peer")
	}
	if !g.ReportFalseAnswer(liar, 1000) {
		t.Error("a banned peer is reported as not banned")
	}
	if g.IsBanned(other) {
		t.Error("another peer was banned")
	}
	st := g.Stats()
	if st.Resolve.BadBlocks != 1 || st.Resolve.BadBytes != 1000 || st.BadBlocks != 1 || st.Bans != 1 || st.Banned != 1 {
		t.Errorf("stats = %+v, want one false answer of 1000 bytes and one ban", st)
	}
}
