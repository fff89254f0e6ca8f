package protocol

import (
	"log/slog"
	"testing"

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
