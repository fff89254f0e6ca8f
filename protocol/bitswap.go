// Package protocol owns what allmende nodes say to each other on the wire:
// bitswap (boxo) for blocks, compatible with every IPFS node, tuned for
// allmende's 1 MiB blocks; allmende's own bulk, resolve and have protocols
// (the have protocol carries a swarm's piece announcements; its policy is
// package swarm). It knows nothing of disks layouts, CLIs or HTTP.
package protocol

import (
	"context"
	"log/slog"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnetwork "github.com/ipfs/boxo/bitswap/network"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Bitswap defaults tuned for 1 MiB blocks. boxo's default send allowance
// (1 MiB per peer) caps a transfer at about one block per round trip; 32 MiB
// roughly doubles loopback throughput.
const (
	// DefaultSendAllowance is the bytes a server queues per peer.
	DefaultSendAllowance = 32 << 20
	// DefaultEngineWorkers is the number of server goroutines sending blocks.
	DefaultEngineWorkers = 16
	// DefaultClientWorkers is the number of client goroutines handling
	// incoming messages.
	DefaultClientWorkers = 16
	// MaxWantlistPerPeer bounds what one peer may ask of us at once.
	MaxWantlistPerPeer = 1024
	// PeerSearchInterval is how often a fetch's session offers one of its
	// wants to every connected peer (and looks for providers of it). A
	// session otherwise only uses the peers that answered its first
	// broadcast: a seeder that answered late, or connected later, stayed
	// idle for the whole fetch (seen in the swarming test). boxo's default
	// is a minute.
	PeerSearchInterval = 10 * time.Second
)

// BitswapConfig configures NewBitswap. Zero fields take the defaults above.
type BitswapConfig struct {
	// SendAllowance is the bytes the server queues for one peer.
	SendAllowance int
	// Guard, if set, counts corrupt blocks per peer and cuts liars off.
	Guard *Guard
	// Log gets the corrections of bitswap's view of connected peers (see
	// resyncNetwork); nil means slog's default logger.
	Log *slog.Logger
	// PeerResync is how often that view is checked (PeerResyncInterval).
	PeerResync time.Duration
}

// NewBitswap starts a bitswap client and server on h, serving blocks from
// bs and storing nothing itself (the caller's block service stores what it
// fetches). router finds providers of wanted blocks; it may be nil, then
// only connected peers are asked.
func NewBitswap(ctx context.Context, h host.Host, router routing.ContentDiscovery, bs blockstore.Blockstore, cfg BitswapConfig) *bitswap.Bitswap {
	allowance := cfg.SendAllowance
	if allowance <= 0 {
		allowance = DefaultSendAllowance
	}
	resync := newResyncNetwork(h, bsnet.NewFromIpfsHost(h), cfg.Log)
	if cfg.PeerResync > 0 {
		resync.interval = cfg.PeerResync
	}
	var net bsnetwork.BitSwapNetwork = resync
	if cfg.Guard != nil {
		net = cfg.Guard.Wrap(net)
	}
	return bitswap.New(ctx, net, router, bs,
		bitswap.MaxOutstandingBytesPerPeer(allowance),
		bitswap.EngineTaskWorkerCount(DefaultEngineWorkers),
		bitswap.TaskWorkerCount(DefaultClientWorkers),
		bitswap.MaxQueuedWantlistEntriesPerPeer(MaxWantlistPerPeer),
		bitswap.RebroadcastDelay(PeerSearchInterval),
		bitswap.SetSendDontHaves(true),
	)
}
