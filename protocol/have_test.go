package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/allmende/allmende/internal/p2ptest"
	"github.com/allmende/allmende/protocol/swarm"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testRoot is a root CID for have tests.
func testRoot(t testing.TB, seed string) cid.Cid {
	t.Helper()
	return p2ptest.RawBlocks(1, len(seed)+8)[0].Cid()
}

func pieces(n int, xs ...int) *swarm.Bitfield {
	b := swarm.NewBitfield(n)
	for _, x := range xs {
		b.Set(x)
	}
	return b
}

func TestHelloRoundTrip(t *testing.T) {
	root := testRoot(t, "a")
	cases := []struct {
		name  string
		hello Hello
	}{
		{"a fetcher with a few pieces", Hello{Root: root, Pieces: 20, Have: pieces(20, 0, 7, 19)}},
		{"a fetcher with none (nil bitfield)", Hello{Root: root, Pieces: 9}},
		{"a seeder: no bitfield on the wire", Hello{Root: root, Pieces: MaxHavePieces, Complete: true}},
		{"a super-seeder announcing nothing yet", Hello{Root: root, Pieces: 64, SuperSeed: true}},
		{"an empty root", Hello{Root: root, Pieces: 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := appendHello(nil, tc.hello)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseHello(p)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Root.Equals(root) || got.Pieces != tc.hello.Pieces || got.Complete != tc.hello.Complete || got.SuperSeed != tc.hello.SuperSeed {
				t.Fatalf("got %+v, want %+v", got, tc.hello)
			}
			if !bytes.Equal(got.Holds().Bytes(), tc.hello.Holds().Bytes()) {
				t.Fatal("the announced pieces changed on the way")
			}
		})
	}
}

func TestHaveRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		pieces []int
	}{
		{"keep-alive", nil},
		{"piece 0 alone", []int{0}},
		{"ascending with gaps", []int{3, 4, 100, 4000}},
		{"a full batch", seq(MaxHaveBatch)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHave(appendHave(nil, tc.pieces), MaxHavePieces)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.pieces) && len(got)+len(tc.pieces) > 0 {
				t.Fatalf("got %v, want %v", got, tc.pieces)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func uv(xs ...uint64) []byte {
	var out []byte
	for _, x := range xs {
		out = binary.AppendUvarint(out, x)
	}
	return out
}

func TestHaveRefusesBadMessages(t *testing.T) {
	root := testRoot(t, "b").Bytes()
	hello := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rootField := append(uv(uint64(len(root))), root...)
	cases := []struct {
		name    string
		hello   bool // parse as HELLO, else as HAVE of 10 pieces
		payload []byte
	}{
		{"HAVE: piece past the end", false, uv(1, 10)},
		{"HAVE: a repeat (distance 0)", false, uv(2, 3, 0)},
		{"HAVE: count over MaxHaveBatch", false, uv(MaxHaveBatch + 1)},
		{"HAVE: count larger than the bytes", false, uv(5, 1)},
		{"HAVE: trailing bytes", false, append(uv(1, 2), 0)},
		{"HAVE: truncated varint", false, []byte{1, 0x80}},
		{"HELLO: no CID", true, uv(0)},
		{"HELLO: CID longer than the limit", true, uv(MaxHaveCIDLen + 1)},
		{"HELLO: CID cut short", true, hello(uv(uint64(len(root))), root[:4])},
		{"HELLO: too many pieces", true, hello(rootField, uv(MaxHavePieces+1), []byte{flagComplete})},
		{"HELLO: unknown flag", true, hello(rootField, uv(8), []byte{0x80, 0})},
		{"HELLO: no flags byte", true, hello(rootField, uv(8))},
		{"HELLO: bitfield of the wrong size", true, hello(rootField, uv(8), []byte{0, 0xff, 0})},
		{"HELLO: bits past the last piece", true, hello(rootField, uv(4), []byte{0, 0x0f})},
		{"HELLO: bytes after a complete HELLO", true, hello(rootField, uv(8), []byte{flagComplete, 0})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.hello {
				_, err = parseHello(tc.payload)
			} else {
				_, err = parseHave(tc.payload, 10)
			}
			if !errors.Is(err, ErrHaveMessage) {
				t.Fatalf("err = %v, want ErrHaveMessage", err)
			}
		})
	}
}

func TestReadHaveMsgLimits(t *testing.T) {
	cases := []struct {
		name    string
		stream  []byte
		wantTyp byte
		wantErr bool
	}{
		{"an unknown type is skipped", append(append([]byte{9}, uv(2)...), 1, 2, msgHave, 1, 0), msgHave, false},
		{"an unknown type over MaxHaveOtherLen", append([]byte{9}, uv(MaxHaveOtherLen+1)...), 0, true},
		{"a HAVE over its limit, refused before reading it", append([]byte{msgHave}, uv(maxHaveLen+1)...), 0, true},
		{"a HELLO over its limit", append([]byte{msgHello}, uv(maxHelloLen+1)...), 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			typ, _, err := readHaveMsg(bufio.NewReader(bytes.NewReader(tc.stream)), &buf)
			if tc.wantErr {
				if !errors.Is(err, ErrHaveMessage) {
					t.Fatalf("err = %v, want ErrHaveMessage", err)
				}
				if cap(buf) > 0 {
					t.Fatalf("allocated %d bytes for a message it refused", cap(buf))
				}
				return
			}
			if err != nil || typ != tc.wantTyp {
				t.Fatalf("type %d, err %v", typ, err)
			}
		})
	}
}

// TestHaveBetweenHosts: two libp2p hosts join one root's swarm, exchange
// HELLOs and HAVEs both ways; a peer outside the swarm and a peer with
// another piece count are refused.
func TestHaveBetweenHosts(t *testing.T) {
	client, server := connectedPair(t)
	root, other := testRoot(t, "c"), testRoot(t, "longer seed")
	const n = 100
	serverHello := Hello{Root: root, Pieces: n, Have: pieces(n, 1, 2), SuperSeed: true}
	got := make(chan []int, 4)
	ServeHave(server, func(remote peer.ID, theirs Hello) (Hello, bool) {
		return serverHello, remote == client.ID() && theirs.Root.Equals(root)
	}, func(s *HaveStream) {
		defer s.Close()
		if !s.Theirs.Holds().Has(5) {
			t.Errorf("server: the client's HELLO lost piece 5")
		}
		xs, err := s.Recv()
		if err != nil {
			t.Errorf("server Recv: %v", err)
			return
		}
		got <- xs
		if err := s.Send(42, 41); err != nil {
			t.Errorf("server Send: %v", err)
		}
		s.Recv() // until the client closes
	})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := OpenHave(ctx, client, server.ID(), Hello{Root: root, Pieces: n, Have: pieces(n, 5)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Theirs.SuperSeed || !s.Theirs.Holds().Has(2) || s.Theirs.Holds().Count() != 2 {
		t.Fatalf("client got HELLO %+v", s.Theirs)
	}
	if err := s.Send(); err != nil { // keep-alive, skipped by Recv
		t.Fatal(err)
	}
	if err := s.Send(99, 7, 3, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(n); err == nil {
		t.Fatal("sent a piece past the end")
	}
	if xs := <-got; !slices.Equal(xs, []int{3, 7, 99}) {
		t.Fatalf("server got %v, want [3 7 99]", xs)
	}
	xs, err := s.Recv()
	if err != nil || !slices.Equal(xs, []int{41, 42}) {
		t.Fatalf("client got %v, %v; want [41 42]", xs, err)
	}

	refused := []struct {
		name  string
		hello Hello
		want  error
	}{
		{"not in that swarm", Hello{Root: other, Pieces: n}, ErrHaveRefused},
		{"another piece count", Hello{Root: root, Pieces: n + 1}, ErrHaveRefused},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenHave(ctx, client, server.ID(), tc.hello); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzHave: whatever bytes a peer sends on a have stream, reading them
// allocates within the limits, never panics, and every message accepted
// encodes back to the same bytes (one encoding per message).
func FuzzHave(f *testing.F) {
	root := p2ptest.RawBlocks(1, 16)[0].Cid()
	h, _ := appendHello(nil, Hello{Root: root, Pieces: 20, Have: pieces(20, 0, 19)})
	var seed bytes.Buffer
	writeHaveMsg(&seed, msgHello, h)
	writeHaveMsg(&seed, msgHave, appendHave(nil, []int{1, 5, 19}))
	writeHaveMsg(&seed, 7, []byte("later"))
	f.Add(seed.Bytes())
	f.Add([]byte{msgHave, 3, 1, 0, 0})
	f.Add([]byte{msgHello, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		var buf []byte
		n := -1
		for range 64 {
			typ, p, err := readHaveMsg(r, &buf)
			if err != nil {
				return
			}
			if cap(buf) > maxHelloLen {
				t.Fatalf("buffer of %d bytes", cap(buf))
			}
			switch typ {
			case msgHello:
				hl, err := parseHello(p)
				if err != nil {
					continue
				}
				n = hl.Pieces
				again, err := appendHello(nil, hl)
				if err != nil || !bytes.Equal(again, p) {
					t.Fatalf("HELLO %x re-encodes as %x (%v)", p, again, err)
				}
			case msgHave:
				if n < 0 {
					continue
				}
				xs, err := parseHave(p, n)
				if err != nil {
					continue
				}
				if again := appendHave(nil, xs); !bytes.Equal(again, p) {
					t.Fatalf("HAVE %x re-encodes as %x", p, again)
				}
			}
		}
	})
}
