package denylist_test

import (
	"io"
	"testing"

	"github.com/allmende/allmende/policy/denylist"
	"github.com/ipfs-shipyard/nopfs/tester"
	bpath "github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
)

// conformance runs the IPIP-383 reference suite (nopfs's tester, the
// fixture the spec names) against List: taking out allmende's extension
// rules must leave the standard ones answering as the spec says.
type conformance struct{ l *denylist.List }

type header struct{ info denylist.Info }

func (h header) Name() string             { return h.info.Name }
func (h header) Hints() map[string]string { return h.info.Hints }

func (c *conformance) ReadHeader(r io.Reader) (tester.Header, error) {
	l, err := denylist.Parse("header", r)
	if err != nil {
		return nil, err
	}
	return header{l.Info()}, nil
}

func (c *conformance) ReadDenylist(r io.ReadSeekCloser) error {
	l, err := denylist.Parse("test.deny", r)
	c.l = l
	return err
}

func (c *conformance) IsPathBlocked(p bpath.Path) bool { return c.l.ContentPath(p.String()).Blocked() }
func (c *conformance) IsCidBlocked(k cid.Cid) bool     { return c.l.CID(k).Blocked() }

func TestIPIP383Conformance(t *testing.T) {
	s := tester.Suite{TestHeader: true, TestCID: true, TestCIDPath: true, TestIPNSPath: true,
		TestDoubleHashLegacy: true, TestDoubleHash: true}
	if err := s.Run(&conformance{}); err != nil {
		t.Fatal(err)
	}
}
