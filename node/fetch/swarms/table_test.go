package swarms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	dstest "github.com/ipfs/boxo/ipld/merkledag/test"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// leaf returns a raw leaf holding s, stored in dag.
func leaf(t *testing.T, dag ipld.DAGService, s string) cid.Cid {
	t.Helper()
	nd := merkledag.NewRawNode([]byte(s))
	if err := dag.Add(context.Background(), nd); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// inner returns a dag-pb node linking to children in order, stored in
// dag unless skip.
func inner(t *testing.T, dag ipld.DAGService, skip bool, children ...cid.Cid) cid.Cid {
	t.Helper()
	nd := new(merkledag.ProtoNode)
	for i, c := range children {
		if err := nd.AddRawLink(fmt.Sprint(i), &ipld.Link{Cid: c}); err != nil {
			t.Fatal(err)
		}
	}
	if !skip {
		if err := dag.Add(context.Background(), nd); err != nil {
			t.Fatal(err)
		}
	}
	return nd.Cid()
}

// TestListPieces: pieces are the raw leaves in depth-first link order, a
// leaf met twice is two pieces, and a missing inner node fails the list.
func TestListPieces(t *testing.T) {
	dag := dstest.Mock()
	a, b, c, d := leaf(t, dag, "a"), leaf(t, dag, "b"), leaf(t, dag, "c"), leaf(t, dag, "d")
	left := inner(t, dag, false, a, b)
	right := inner(t, dag, false, c, a)
	gone := inner(t, dag, true, d)
	cases := []struct {
		name string
		root cid.Cid
		want []cid.Cid
		err  bool
	}{
		{"one leaf", a, []cid.Cid{a}, false},
		{"flat", inner(t, dag, false, a, b, c), []cid.Cid{a, b, c}, false},
		{"nested, depth first, a repeated leaf", inner(t, dag, false, left, d, right), []cid.Cid{a, b, d, c, a}, false},
		{"an inner node not held", inner(t, dag, false, left, gone), nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := listPieces(context.Background(), dag, tc.root)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error: %v", err, tc.err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pieces = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLocalErrorUnwraps: a put error stays recognisable through the
// marker that tells it from a peer's.
func TestLocalErrorUnwraps(t *testing.T) {
	base := errors.New("disk full")
	var err error = localError{base}
	if !errors.Is(err, base) || err.Error() != base.Error() {
		t.Errorf("localError{%v} = %v, does not unwrap", base, err)
	}
}
