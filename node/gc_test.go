package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/node/api"
	homedir "github.com/allmende/allmende/node/home"
)

// TestGCDenied: of two pinned roots, gc --denied unpins and collects only
// the one a denylist names, reports it with its rule, and verify is clean
// afterwards; a plain gc unpins nothing.
func TestGCDenied(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	dir := t.TempDir()
	writeProvideTree(t, dir, map[string]string{"keep": "weights anyone may share", "deny": "weights nobody may share"})
	n := newDHTNode(t, home)
	defer n.Close()
	keep, err := n.Add(ctx, filepath.Join(dir, "keep"), nil)
	if err != nil {
		t.Fatal(err)
	}
	deny, err := n.Add(ctx, filepath.Join(dir, "deny"), nil)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(homedir.Dir(home).Denylists(), "local.deny")
	if err := os.WriteFile(list, []byte("/ipfs/"+deny.CID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.gate.Blocker().Reload()
	n.gate.Recheck(ctx)

	plain, err := n.GC(ctx, api.GCRequest{})
	if err != nil || len(plain.Unpinned) != 0 || plain.Removed != 0 {
		t.Fatalf("plain gc: %+v, %v; want nothing unpinned or removed", plain, err)
	}
	res, err := n.GC(ctx, api.GCRequest{Denied: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unpinned) != 1 || !strings.Contains(res.Unpinned[0], list) || res.Removed == 0 || res.Kept == 0 {
		t.Errorf("gc --denied: %+v; want the denied root unpinned (naming %s), its blocks removed, the other kept", res, list)
	}
	pins, err := n.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].CID != keep.CID {
		t.Errorf("pins after gc --denied: %+v; want only %s", pins, keep.CID)
	}
	vr, err := n.Verify(ctx, api.VerifyRequest{})
	if err != nil || len(vr.Denied) != 0 || !vr.OK() {
		t.Errorf("verify after gc --denied: %+v, %v; want clean", vr, err)
	}
}
