package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testTimeout bounds each exchange so a broken test fails instead of hanging.
const testTimeout = 30 * time.Second

// connectedPair returns a client host connected to a server host.
func connectedPair(t *testing.T) (client, server host.Host) {
	t.Helper()
	client, server = p2ptest.Host(t), p2ptest.Host(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// testBlocks makes n distinct blocks of about size bytes each.
func cidsOf(bs []blocks.Block) []cid.Cid {
	out := make([]cid.Cid, len(bs))
	for i, b := range bs {
		out[i] = b.Cid()
	}
	return out
}

func TestBulkGet(t *testing.T) {
	client, server := connectedPair(t)
	store := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	bs := p2ptest.RawBlocks(20, 256<<10)
	held, notHeld := bs[:15], bs[15:]
	if err := store.PutMany(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	srv := NewBulkServer(server, store, slog.Default())

	cases := []struct {
		name     string
		ask      []blocks.Block
		wantGot  int
		wantMiss int
	}{
		{"all held: streamed in order", held, len(held), 0},
		{"some not held: reported, the rest still sent", append(append([]blocks.Block{}, notHeld[:2]...), held[:3]...), 3, 2},
		{"single block", held[7:8], 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var got []blocks.Block
			missing, err := BulkGet(ctx, client, server.ID(), cidsOf(tc.ask), func(b blocks.Block) error {
				// The data is only valid during the call: keep a copy.
				kept, err := blocks.NewBlockWithCid(bytes.Clone(b.RawData()), b.Cid())
				got = append(got, kept)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantGot || len(missing) != tc.wantMiss {
				t.Fatalf("got %d blocks, %d missing; want %d, %d", len(got), len(missing), tc.wantGot, tc.wantMiss)
			}
			i := 0
			for _, b := range tc.ask {
				if i < len(got) && b.Cid().Equals(got[i].Cid()) {
					if !bytes.Equal(b.RawData(), got[i].RawData()) {
						t.Fatalf("block %s: data differs", b.Cid())
					}
					i++
				}
			}
			if i != len(got) {
				t.Fatalf("blocks arrived out of request order")
			}
		})
	}
	if sent, n := srv.Sent(); n == 0 || sent == 0 {
		t.Fatalf("server counted %d blocks, %d bytes sent", n, sent)
	}
}

// TestBulkGetRejectsBadPeer runs a server that answers with the wrong
// bytes: the client must refuse them and say the peer misbehaved.
func TestBulkGetRejectsBadPeer(t *testing.T) {
	client, server := connectedPair(t)
	bs := p2ptest.RawBlocks(2, 1024)
	server.SetStreamHandler(BulkID, func(st network.Stream) {
		defer st.Close()
		if _, err := readRequest(bufio.NewReader(st)); err != nil {
			st.Reset()
			return
		}
		data := bs[1].RawData() // the wrong block's bytes
		hdr := binary.AppendUvarint([]byte{statusBlock}, uint64(len(data)))
		st.Write(append(hdr, data...))
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	called := false
	_, err := BulkGet(ctx, client, server.ID(), cidsOf(bs[:1]), func(blocks.Block) error {
		called = true
		return nil
	})
	if !errors.Is(err, ErrBulkCorrupt) {
		t.Fatalf("BulkGet = %v, want ErrBulkCorrupt", err)
	}
	if called {
		t.Fatal("an unverified block was handed on")
	}
}

func TestReadRequestLimits(t *testing.T) {
	good := cidsOf(p2ptest.RawBlocks(3, 64))
	cases := []struct {
		name string
		wire []byte
		ok   bool
	}{
		{"well formed", encodeRequest(good), true},
		{"zero CIDs", binary.AppendUvarint(nil, 0), false},
		{"too many CIDs", binary.AppendUvarint(nil, MaxBulkCIDs+1), false},
		{"CID longer than the limit", binary.AppendUvarint(binary.AppendUvarint(nil, 1), MaxBulkCIDLen+1), false},
		{"truncated", encodeRequest(good)[:10], false},
		{"garbage CID", append(binary.AppendUvarint(binary.AppendUvarint(nil, 1), 3), 1, 2, 3), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readRequest(bufio.NewReader(bytes.NewReader(tc.wire)))
			if tc.ok != (err == nil) {
				t.Fatalf("readRequest err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && len(got) != len(good) {
				t.Fatalf("decoded %d CIDs, want %d", len(got), len(good))
			}
		})
	}
}

func encodeRequest(cids []cid.Cid) []byte {
	var buf bytes.Buffer
	writeRequest(&buf, cids)
	return buf.Bytes()
}

// FuzzReadRequest: no input may panic the decoder or make it allocate
// beyond its limits.
func FuzzReadRequest(f *testing.F) {
	f.Add(encodeRequest(cidsOf(p2ptest.RawBlocks(2, 64))))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, wire []byte) {
		cids, err := readRequest(bufio.NewReader(bytes.NewReader(wire)))
		if err == nil && (len(cids) == 0 || len(cids) > MaxBulkCIDs) {
			t.Fatalf("accepted %d CIDs", len(cids))
		}
	})
}
