package car

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

// block is one section of a CAR built by hand.
type block struct {
	cid  cid.Cid
	data []byte
}

// handCAR writes a CARv1 with the given roots and blocks, as they are.
func handCAR(t *testing.T, roots []cid.Cid, blocks ...block) []byte {
	t.Helper()
	hdr, err := encodeHeader(roots)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(hdr)
	for _, b := range blocks {
		if _, err := writeSection(&buf, b.cid, b.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// sum returns data's block under codec and hash function code.
func sum(t *testing.T, codec, code uint64, data []byte) block {
	t.Helper()
	mh, err := multihash.Sum(data, code, -1)
	if err != nil {
		t.Fatal(err)
	}
	return block{cid.NewCidV1(codec, mh), data}
}

// TestImportRefuses: blocks and headers this package does not accept,
// although their bytes may match their CIDs, are refused with ErrMalformed
// before anything of theirs is stored; an identity CID within the limit
// is accepted.
func TestImportRefuses(t *testing.T) {
	small := sum(t, cid.Raw, multihash.SHA2_256, []byte("fine"))
	id := func(n int) block { return sum(t, cid.Raw, multihash.IDENTITY, bytes.Repeat([]byte{'x'}, n)) }
	unknownHash, _ := multihash.Encode(bytes.Repeat([]byte{1}, 32), 0x3f0000)
	oversized := block{small.cid, make([]byte, MaxBlockSize+1)}
	manyRoots := make([]cid.Cid, MaxRoots+1)
	for i := range manyRoots {
		manyRoots[i] = sum(t, cid.Raw, multihash.SHA2_256, []byte{byte(i), byte(i >> 8)}).cid
	}
	// The header's two keys the other way round: valid CBOR, which
	// go-car reads, but not DAG-CBOR's canonical order.
	cb := small.cid.Bytes()
	swapped := append([]byte{0xa2, 0x67}, "version"...)
	swapped = append(swapped, 0x01, 0x65)
	swapped = append(swapped, "roots"...)
	swapped = append(swapped, 0x81, 0xd8, 0x2a, 0x58, byte(len(cb)+1), 0x00)
	swapped = append(swapped, cb...)
	swapped = append(varint.ToUvarint(uint64(len(swapped))), swapped...)

	tests := []struct {
		name string
		car  []byte
		ok   bool
	}{
		{"a SHA-1 CID (collisions are practical)", handCAR(t, []cid.Cid{small.cid}, sum(t, cid.Raw, multihash.SHA1, []byte("fine"))), false},
		{"an unknown hash function", handCAR(t, []cid.Cid{small.cid}, block{cid.NewCidV1(cid.Raw, unknownHash), []byte("x")}), false},
		{"a block over MaxBlockSize", handCAR(t, []cid.Cid{small.cid}, oversized), false},
		{"an identity CID over MaxIdentitySize", handCAR(t, []cid.Cid{small.cid}, id(MaxIdentitySize+1)), false},
		{"an identity CID within the limit, as the root", handCAR(t, []cid.Cid{id(MaxIdentitySize).cid}, id(MaxIdentitySize)), true},
		{"a codec whose links cannot be followed (json)", handCAR(t, []cid.Cid{small.cid}, sum(t, 0x0200, multihash.SHA2_256, []byte(`{}`))), false},
		{"DAG-PB bytes that do not decode", handCAR(t, []cid.Cid{small.cid}, sum(t, cid.DagProtobuf, multihash.SHA2_256, []byte{0xff, 0x01})), false},
		{"DAG-CBOR bytes that do not decode", handCAR(t, []cid.Cid{small.cid}, sum(t, cid.DagCBOR, multihash.SHA2_256, []byte{0xa1})), false},
		{"no roots", handCAR(t, nil, small), false},
		{"more than MaxRoots roots", handCAR(t, manyRoots, small), false},
		{"a non-canonical header", append(swapped, handCAR(t, []cid.Cid{small.cid}, small)[len(swapped):]...), false},
		{"the plain block, for contrast", handCAR(t, []cid.Cid{small.cid}, small), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := openStore(t)
			res, err := Import(context.Background(), dst, bytes.NewReader(tt.car), ImportOptions{})
			if tt.ok {
				if err != nil || !res.Complete() {
					t.Fatalf("%+v, %v; want it accepted", res, err)
				}
				return
			}
			checkRefused(t, dst, res, err)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if res.Stored != 0 {
				t.Fatalf("%d blocks stored from a refused CAR", res.Stored)
			}
		})
	}
}
