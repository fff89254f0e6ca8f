package node

import (
	"context"
	"fmt"

	"github.com/allmende/allmende/store"
)

// VerifyRequest says how to check the store.
type VerifyRequest struct {
	// Repair fetches missing and quarantined blocks again from peers.
	Repair bool `json:"repair,omitempty"`
}

// VerifyResult is the store's state after a check (and repair).
type VerifyResult struct {
	store.VerifyReport
	// Found is what the first pass found before any repair.
	Found store.VerifyReport `json:"found"`
	// Repaired are the roots fetched whole again.
	Repaired []string `json:"repaired"`
	// RepairErrors say why a damaged root could not be repaired.
	RepairErrors []string `json:"repair_errors,omitempty"`
}

// Verify re-hashes every block in the store, quarantines corrupt ones and
// finds the blocks pins miss. With Repair it fetches the damaged roots again
// from connected peers and checks once more; the result is the final state.
func (n *Node) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	found, err := n.store.Verify(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{VerifyReport: found, Found: found, Repaired: []string{}}
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
	res.VerifyReport = final
	return res, nil
}

// repairRoot fetches whatever is missing below a pinned root.
func (n *Node) repairRoot(ctx context.Context, ref string) error {
	root, err := ParseCID(ref)
	if err != nil {
		return err
	}
	unlock := n.store.Blockstore().PinLock(ctx)
	defer unlock.Unlock(ctx)
	if err := n.fetchDAG(ctx, root, n.cfg.FetchTimeout, nil); err != nil {
		return fmt.Errorf("repair %s: %w", root, err)
	}
	n.log.Info("repaired", "cid", ref)
	return nil
}
