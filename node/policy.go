package node

import (
	"context"
	"fmt"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/gate"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/models"
	"github.com/allmende/allmende/policy/denylist"
	"github.com/allmende/allmende/policy/license"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// openGate opens the denylists (HOME/denylists/*.deny, then the
// denylists key) and the licence policy (policy.licenses.*) of cfg, and
// returns the gate that enforces them. held is read only once the gate
// runs. The caller runs the gate (Run) or closes its blocker.
func openGate(cfg Config, held gate.Held) (*gate.Gate, error) {
	lic, err := license.NewPolicy(cfg.LicenseAllow, cfg.LicenseDeny, cfg.LicenseUnknown)
	if err != nil {
		return nil, api.BadInput(fmt.Errorf("policy.licenses: %w", err))
	}
	dir := home.Dir(cfg.Home)
	bl, err := denylist.Open(denylist.Config{Dir: dir.Denylists(), CacheDir: dir.DenylistsFetched(),
		Sources: cfg.Denylists, Refresh: cfg.DenylistsRefresh, Log: cfg.Logger.With("component", "denylist")})
	if err != nil {
		return nil, api.BadInput(fmt.Errorf("denylists: %w", err))
	}
	return gate.New(gate.Config{Blocker: bl, Licenses: lic, Held: held, Log: cfg.Logger.With("component", "gate")}), nil
}

// heldModels shows the gate the models the node holds, once the registry
// is open.
type heldModels struct{ n *Node }

// List implements gate.Held.
func (h heldModels) List() []string {
	if h.n.models == nil {
		return nil
	}
	return h.n.models.Index().List()
}

// Manifest implements gate.Held.
func (h heldModels) Manifest(ctx context.Context, c cid.Cid) (*manifest.Manifest, error) {
	return models.ReadManifest(ctx, h.n.store.LocalDAG(), c)
}
