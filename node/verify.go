package node

import (
	"context"
	"fmt"
	"slices"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/store"
)

// Verify re-hashes every block in the store, quarantines corrupt ones and
// finds the blocks pins miss. With Repair it fetches the damaged roots again
// from connected peers and checks once more; the result is the final state.
//
// With Provenance it checks that model's local copy against the
// attestations of trusted keys instead (models.Registry.VerifyProvenance).
func (n *Node) verify(ctx context.Context, req api.VerifyRequest) (api.VerifyResult, error) {
	if req.Provenance != "" {
		rep, err := n.models.VerifyProvenance(ctx, req.Provenance)
		return api.VerifyResult{Provenance: &rep, Repaired: []string{}}, err
	}
	found, err := n.store.Verify(ctx)
	if err != nil {
		return api.VerifyResult{}, err
	}
	res := api.VerifyResult{VerifyReport: api.VerifyReport(found), Found: api.VerifyReport(found), Repaired: []string{}}
	if res.Denied, err = n.deniedPins(ctx); err != nil {
		return res, err
	}
	n.log.Info("store verified", "blocks", found.Blocks, "bytes", found.Bytes, "corrupt", len(found.Corrupt), "missing", len(found.Missing))
	if !req.Repair || len(found.Damaged) == 0 {
		return res, nil
	}
	if len(n.host.Network().Peers()) == 0 {
		res.RepairErrors = append(res.RepairErrors, "no peers connected: connect to a peer that holds the content, then repair again")
		return res, nil
	}
	for _, ref := range found.Damaged {
		if err := n.repairRoot(ctx, ref); err != nil {
			res.RepairErrors = append(res.RepairErrors, err.Error())
			continue
		}
		res.Repaired = append(res.Repaired, ref)
	}
	final, err := n.store.Verify(ctx)
	if err != nil {
		return res, err
	}
	res.VerifyReport = api.VerifyReport(final)
	return res, nil
}

// repairRoot fetches whatever is missing below a pinned root.
func (n *Node) repairRoot(ctx context.Context, ref string) error {
	root, err := api.ParseCID(ref)
	if err != nil {
		return err
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	if err := n.fetch.FetchDAG(ctx, root, 0); err != nil {
		return fmt.Errorf("repair %s: %w", root, err)
	}
	n.log.Info("repaired", "cid", ref)
	return nil
}

// deniedPins lists the pinned roots the node's policy now refuses to pass
// on (a denylist, or the licence policy for a model's files), each with
// the rule that refuses it.
func (n *Node) deniedPins(ctx context.Context) ([]string, error) {
	denied, err := n.findDenied(ctx)
	out := make([]string, 0, len(denied))
	for _, d := range denied {
		out = append(out, d.String())
	}
	return out, err
}

// deniedPin is a pinned root the policy refuses, with the refusal.
type deniedPin struct {
	pin store.Pin
	why error
}

// String names the pin as verify and gc --denied report it.
func (d deniedPin) String() string { return fmt.Sprintf("%s (%s)", d.pin.Name, d.why) }

// findDenied returns the pinned roots the gate refuses to re-seed.
func (n *Node) findDenied(ctx context.Context) ([]deniedPin, error) {
	pins, err := n.store.Pins(ctx)
	if err != nil {
		return nil, err
	}
	var out []deniedPin
	for _, p := range pins {
		if err := n.gate.Why(p.CID, policy.SurfaceReseed); err != nil {
			out = append(out, deniedPin{pin: p, why: err})
		}
	}
	return out, nil
}

// unpinDenied unpins every root findDenied returns, for gc --denied, and
// names the ones it unpinned; a model whose manifest is among them leaves
// the index (its name, its files' sha256s). Announcements follow at the
// next reconcile.
func (n *Node) unpinDenied(ctx context.Context) ([]string, error) {
	denied, err := n.findDenied(ctx)
	if err != nil {
		return nil, err
	}
	held := n.models.Index().List()
	var out []string
	for _, d := range denied {
		if slices.Contains(held, d.pin.CID.String()) {
			if m, err := models.ReadManifest(ctx, n.store.LocalDAG(), d.pin.CID); err == nil {
				if err := n.models.Index().Forget(d.pin.CID, m); err != nil {
					return out, fmt.Errorf("gc --denied: %w", err)
				}
			}
		}
		if err := n.store.Unpin(ctx, d.pin.CID); err != nil {
			return out, fmt.Errorf("gc --denied: %w", err)
		}
		n.log.Info("unpinned denied content", "cid", d.pin.CID, "name", d.pin.Name, "rule", d.why)
		out = append(out, d.String())
	}
	if len(out) > 0 {
		n.routing.ReconcileSoon()
	}
	return out, nil
}
