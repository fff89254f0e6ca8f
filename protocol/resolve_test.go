package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestResolveRoundTrip(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	a, _ := mn.GenPeer()
	b, _ := mn.GenPeer()
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	ServeResolve(b, slog.Default(), func(_ context.Context, from peer.ID, req *ResolveRequest) *ResolveResponse {
		switch {
		case req.SHA256 != "":
			return &ResolveResponse{CID: "bafkfile", Size: 42}
		case req.Name != "":
			return &ResolveResponse{Records: [][]byte{[]byte(req.Name + "@" + req.Revision)}}
		}
		return &ResolveResponse{Data: bytes.Repeat([]byte{7}, int(req.Length)+1)} // one byte too many
	})
	ctx := context.Background()
	cases := []struct {
		req     ResolveRequest
		wantErr bool
		why     string
	}{
		{ResolveRequest{SHA256: "ab"}, false, "sha256 question"},
		{ResolveRequest{Name: "acme/x", Revision: "main"}, false, "name question"},
		{ResolveRequest{CID: "bafk", Length: 10}, true, "an answer longer than the range asked for is refused"},
		{ResolveRequest{SHA256: "ab", Name: "acme/x"}, true, "two questions in one request"},
		{ResolveRequest{CID: "bafk", Length: MaxRangeLength + 1}, true, "range above MaxRangeLength"},
	}
	for _, c := range cases {
		resp, err := AskResolve(ctx, a, b.ID(), &c.req)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.why, err, c.wantErr)
		}
		if err == nil && c.req.SHA256 != "" && (resp.CID != "bafkfile" || resp.Size != 42) {
			t.Errorf("%s: %+v", c.why, resp)
		}
	}
}

func TestReadMsgBounds(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxResolveRequest+1)
	var v ResolveRequest
	err := readMsg(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(make([]byte, 10))), MaxResolveRequest, &v)
	if !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized length prefix: err = %v, want ErrProtocol before allocating", err)
	}
}

func FuzzResolveRequest(f *testing.F) {
	var buf bytes.Buffer
	writeMsg(&buf, &ResolveRequest{Name: "acme/x", Revision: "main"})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ResolveRequest
		if readMsg(bytes.NewReader(b), MaxResolveRequest, &req) == nil {
			req.Validate()
		}
	})
}
