// Command liar is a test peer that lies: it imports a file or directory
// into a throwaway store and serves it over bitswap, but every leaf block
// it sends is wrong (bytes flipped, truncated or padded), or, in stall mode,
// it says it has every leaf and never sends one. With -bulk it serves
// allmende's bulk protocol the same way. In honest mode it sends true
// blocks and lies elsewhere: with -claim-sha256 it answers a lookup of that
// whole-file sha256 with the CID of the content it serves (other bytes),
// and with -links it serves, instead of path, a directory whose symlinks
// each stay inside but together lead out of it. End-to-end tests run it
// beside honest daemons to show that no wrong byte is ever written and that
// no liar holds a fetch up.
//
// It listens on 127.0.0.1 only, prints one line
//
//	LIAR <multiaddr with /p2p/id> <root cid>
//
// when ready, and on SIGTERM or SIGINT prints "LIES <blocks> <bytes>" (the
// wrong blocks it handed out, or in stall mode the reads it held up) and
// exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/test/testpeer"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Ways to lie about a block.
const (
	modeFlip     = "flip"     // same length, one byte changed
	modeTruncate = "truncate" // the first half only
	modePad      = "pad"      // the block and then padding
	modeStall    = "stall"    // claims the block (HAVE, bulk request taken), never sends it
	modeHonest   = "honest"   // true blocks (to lie with -claim-sha256 or -links)
	padBytes     = 4096
)

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", modeFlip, "how to lie about blocks: flip, truncate, pad, stall or honest")
	flag.BoolVar(&o.bulk, "bulk", false, "also serve allmende's bulk protocol, lying the same way")
	flag.StringVar(&o.claim, "claim-sha256", "", "answer a lookup of this whole-file sha256 (hex) with the served content's CID")
	flag.Int64Var(&o.claimSize, "claim-size", -1, "with -claim-sha256: the size to claim (default: the served content's)")
	flag.BoolVar(&o.links, "links", false, "serve a directory whose symlink chain leads out of it instead of <path>")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: liar [-mode flip|truncate|pad|stall|honest] [-bulk] [-claim-sha256 HEX] [-links] <path>")
		os.Exit(2)
	}
	if err := run(o, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "liar:", err)
		os.Exit(1)
	}
}

// options are the liar's flags.
type options struct {
	mode, claim string
	claimSize   int64
	bulk, links bool
}

func run(o options, path string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	st, done, err := testpeer.TempStore(ctx, "liar-store-")
	if err != nil {
		return err
	}
	defer done()
	var root ipld.Node
	if o.links {
		root, err = escapingLinks(ctx, st.LocalDAG())
	} else {
		root, err = store.Import(ctx, st.LocalDAG(), abs, store.ImportOptions{})
	}
	if err != nil {
		return err
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		return err
	}
	defer h.Close()
	lies := &lyingBlockstore{Blockstore: st.Blockstore(), mode: o.mode, done: ctx.Done()}
	bs := protocol.NewBitswap(ctx, h, nil, lies, protocol.BitswapConfig{})
	defer bs.Close()
	if o.bulk {
		protocol.NewBulkServer(h, lies, slog.Default())
	}
	if o.claim != "" {
		size, err := root.Size()
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
			size = uint64(fi.Size())
		}
		if o.claimSize >= 0 {
			size = uint64(o.claimSize)
		}
		protocol.ServeResolve(h, slog.Default(), func(_ context.Context, _ peer.ID, req *protocol.ResolveRequest) *protocol.ResolveResponse {
			if req.SHA256 != o.claim {
				return &protocol.ResolveResponse{}
			}
			lies.blocks.Add(1) // a false answer
			return &protocol.ResolveResponse{CID: root.Cid().String(), Size: size}
		})
	}
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return err
	}
	fmt.Printf("LIAR %s %s\n", addrs[0], root.Cid())
	<-ctx.Done()
	fmt.Printf("LIES %d %d\n", lies.blocks.Load(), lies.bytes.Load())
	return nil
}

// escapingLinks stores a directory whose symlinks each stay inside it,
// "c" -> "." and "a" -> "c/../escaped", but "a" leads out through "c",
// next to a plain file, and returns its root.
func escapingLinks(ctx context.Context, dag ipld.DAGService) (ipld.Node, error) {
	dir := unixfs.EmptyDirNode()
	if err := dir.SetCidBuilder(merkledag.V1CidPrefix()); err != nil {
		return nil, err
	}
	file := merkledag.NewRawNode([]byte("inside\n"))
	entries := map[string]ipld.Node{"file": file}
	for name, target := range map[string]string{"a": "c/../escaped", "c": "."} {
		data, err := unixfs.SymlinkData(target)
		if err != nil {
			return nil, err
		}
		entries[name] = merkledag.NodeWithData(data)
	}
	for name, nd := range entries {
		if err := dag.Add(ctx, nd); err != nil {
			return nil, err
		}
		if err := dir.AddNodeLink(name, nd); err != nil {
			return nil, err
		}
	}
	return dir, dag.Add(ctx, dir)
}

// lyingBlockstore serves every leaf (raw block) with wrong content under
// its CID, or in stall mode holds every read of a leaf until done closes
// while Has and GetSize answer truthfully (so bitswap says HAVE). It tells
// the truth about the DAG's inner nodes, so a fetcher learns which leaves
// to want and asks the liar for them.
type lyingBlockstore struct {
	blockstore.Blockstore
	mode string
	// done ends stalled reads when the liar exits.
	done          <-chan struct{}
	blocks, bytes atomic.Uint64
}

func (l *lyingBlockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := l.Blockstore.Get(ctx, c)
	if err != nil || c.Prefix().Codec != cid.Raw || l.mode == modeHonest {
		return b, err
	}
	if l.mode == modeStall {
		l.blocks.Add(1) // a block promised and withheld
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.done:
			return nil, context.Canceled
		}
	}
	data := append([]byte(nil), b.RawData()...)
	switch l.mode {
	case modeTruncate:
		data = data[:len(data)/2]
	case modePad:
		data = append(data, make([]byte, padBytes)...)
	default:
		if len(data) == 0 {
			data = []byte{0}
		}
		data[len(data)/2] ^= 0xff
	}
	l.blocks.Add(1)
	l.bytes.Add(uint64(len(data)))
	return blocks.NewBlockWithCid(data, c)
}
