package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// resyncTestInterval makes the checks fast; resyncQuiet is how long a test
// waits to see that nothing happens.
const (
	resyncTestInterval = 20 * time.Millisecond
	resyncQuiet        = 20 * resyncTestInterval
)

// silentNetwork is an inner bitswap network that delivers no notification
// unless the test asks it to, as if boxo had lost them.
type silentNetwork struct {
	bsnetwork.BitSwapNetwork
	recv []bsnetwork.Receiver
}

func (s *silentNetwork) Start(rs ...bsnetwork.Receiver) { s.recv = rs }
func (s *silentNetwork) Stop()                          {}

// connEvent is one notification a receiver got.
type connEvent struct {
	p         peer.ID
	connected bool
}

// eventReceiver records the connect notifications bitswap would get.
type eventReceiver struct {
	bsnetwork.Receiver
	events chan connEvent
}

func (r *eventReceiver) PeerConnected(p peer.ID)    { r.events <- connEvent{p, true} }
func (r *eventReceiver) PeerDisconnected(p peer.ID) { r.events <- connEvent{p, false} }

func TestResyncNetwork(t *testing.T) {
	tests := []struct {
		name string
		// bitswap: the remote peer speaks bitswap; told: the inner network
		// delivered the connect notification itself.
		bitswap, told bool
		// want: the wrapper announces the peer to bitswap.
		want bool
	}{
		{"a connected bitswap peer bitswap was not told of is announced", true, false, true},
		{"a peer bitswap knows is left alone", true, true, false},
		{"a peer that does not speak bitswap is never announced", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local, remote := p2ptest.Host(t), p2ptest.Host(t)
			if tt.bitswap {
				remote.SetStreamHandler(bsnet.ProtocolBitswap, func(s network.Stream) { s.Reset() })
			}
			inner := &silentNetwork{}
			n := newResyncNetwork(local, inner, nil)
			n.interval = resyncTestInterval
			recv := &eventReceiver{events: make(chan connEvent, 16)}
			n.Start(recv)
			defer n.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			if err := local.Connect(ctx, peer.AddrInfo{ID: remote.ID(), Addrs: remote.Addrs()}); err != nil {
				t.Fatal(err)
			}
			if tt.told {
				inner.recv[0].PeerConnected(remote.ID())
				<-recv.events
			}
			select {
			case ev := <-recv.events:
				if !tt.want || ev != (connEvent{remote.ID(), true}) {
					t.Fatalf("got %+v, want no event", ev)
				}
			case <-time.After(resyncQuiet):
				if tt.want {
					t.Fatalf("no PeerConnected within %s", resyncQuiet)
				}
				return
			}
			// Now bitswap believes the peer is connected: when it goes, the
			// wrapper tells bitswap, since boxo no longer will.
			local.Network().ClosePeer(remote.ID())
			select {
			case ev := <-recv.events:
				if ev != (connEvent{remote.ID(), false}) {
					t.Fatalf("got %+v after the peer left, want PeerDisconnected", ev)
				}
			case <-time.After(resyncQuiet):
				t.Fatalf("no PeerDisconnected within %s of the peer leaving", resyncQuiet)
			}
		})
	}
}

// TestBitswapFetchesFromPeerMarkedUnresponsive reproduces a fetch stall:
// the fetcher connects to a seeder before the seeder's bitswap is up, its
// first want fails with "protocol not supported", and boxo marks the
// seeder unresponsive, telling bitswap it is gone. The seeder then starts
// bitswap but never sends the fetcher a message of its own, so without the
// resync the fetcher, connected all along, never asks it again.
func TestBitswapFetchesFromPeerMarkedUnresponsive(t *testing.T) {
	fetcher, seeder := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := BitswapConfig{PeerResync: resyncTestInterval}
	fbs := NewBitswap(ctx, fetcher, nil, blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())), cfg)
	defer fbs.Close()

	blk := p2ptest.RawBlocks(1, 1024)[0]
	got := make(chan error, 1)
	go func() {
		_, err := fbs.GetBlock(ctx, blk.Cid())
		got <- err
	}()
	// The want goes out and fails: the seeder has no bitswap handler yet.
	time.Sleep(10 * resyncTestInterval)
	store := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	if err := store.Put(ctx, blk); err != nil {
		t.Fatal(err)
	}
	sbs := NewBitswap(ctx, seeder, nil, store, cfg)
	defer sbs.Close()
	if err := <-got; err != nil {
		t.Fatalf("the fetcher never got the block from its connected seeder: %v", err)
	}
}
