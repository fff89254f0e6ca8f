// Package gate applies a node's policy where content enters or leaves it:
// it asks the denylists (policy/denylist) and the licence policy
// (policy/license) about CIDs, whole-file sha256s, model names and
// licences, refuses with an error naming the list and line (or the licence
// setting), and counts every refusal by reason and surface for /metrics
// (policy.Refusals). It also derives, from the models the node holds, which
// blocks their rules reach: the file roots of a model whose name or licence
// is refused, or of a file whose sha256 is, so serving, announcing and the
// gateway refuse those blocks too. The packages that consult it (fetch,
// models, the mirror, the network) declare what they need of it; node
// wires it (docs/governance.md).
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/policy/denylist"
	"github.com/allmende/allmende/policy/license"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// RecheckInterval is how often the Gate looks whether the lists or the
// models held changed, to derive again which held blocks are refused.
const RecheckInterval = time.Second

// ErrRefused marks every refusal of a Gate: a denylist's
// (denylist.ErrBlocked) or the licence policy's (license.ErrDenied).
var ErrRefused = errors.New("refused by this node's policy")

// Held lists the manifests a node holds (by CID) and reads one.
type Held interface {
	// List returns the CIDs of the manifests held.
	List() []string
	// Manifest reads a held manifest.
	Manifest(ctx context.Context, c cid.Cid) (*manifest.Manifest, error)
}

// Config is what a Gate enforces.
type Config struct {
	// Blocker holds the denylists; nil enforces none.
	Blocker *denylist.Blocker
	// Licenses is the licence policy; nil allows every licence.
	Licenses *license.Policy
	// Refusals counts refusals; nil makes a new one.
	Refusals *policy.Refusals
	// Held are the models the node holds; nil derives nothing.
	Held Held
	// Changed, if set, is called after what the Gate refuses changed (the
	// lists, or what they reach of the models held): the node reconciles
	// what it announces.
	Changed func()
	// Log receives refusals (debug) and reloads; nil means slog.Default().
	Log *slog.Logger
}

// refusal is why a block of a held model is refused.
type refusal struct {
	reason policy.Reason
	// license: only serving surfaces refuse it (the licence policy says
	// what a node re-seeds, not what its user may fetch).
	license bool
	err     error
}

// Gate answers for a node's policy. A nil *Gate refuses nothing. Safe for
// concurrent use.
type Gate struct {
	cfg Config
	log *slog.Logger

	// rechecking serialises Recheck, so an older derivation never
	// replaces a newer one.
	rechecking sync.Mutex
	mu         sync.RWMutex
	derived    map[string]refusal // multihash → why
	manifests  map[string]*manifest.Manifest
	seenSet    *denylist.Set
	seenHeld   string
}

// New returns a Gate for cfg. Call Run to keep it current.
func New(cfg Config) *Gate {
	if cfg.Refusals == nil {
		cfg.Refusals = policy.NewRefusals()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Gate{cfg: cfg, log: cfg.Log, derived: map[string]refusal{}, manifests: map[string]*manifest.Manifest{}}
}

// Refusals is the refusal counter, for the /metrics registry.
func (g *Gate) Refusals() *policy.Refusals { return g.cfg.Refusals }

// Blocker is the denylists enforced (nil if none).
func (g *Gate) Blocker() *denylist.Blocker {
	if g == nil {
		return nil
	}
	return g.cfg.Blocker
}

// Run keeps the lists current (denylist.Blocker.Run) and derives again
// which held blocks they reach whenever the lists or the models held
// change, until ctx ends.
func (g *Gate) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if g.cfg.Blocker != nil {
		wg.Go(func() {
			if err := g.cfg.Blocker.Run(ctx); err != nil {
				g.log.Warn("denylists not kept current", "err", err)
			}
		})
	}
	tick := time.NewTicker(RecheckInterval)
	defer tick.Stop()
	for {
		g.Recheck(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Recheck derives the refused blocks of the models held again if the
// lists or the models changed since the last time.
func (g *Gate) Recheck(ctx context.Context) {
	g.rechecking.Lock()
	defer g.rechecking.Unlock()
	var set *denylist.Set
	if g.cfg.Blocker != nil {
		set = g.cfg.Blocker.Set()
	}
	var held []string
	if g.cfg.Held != nil {
		held = g.cfg.Held.List()
	}
	slices.Sort(held)
	key := strings.Join(held, ",")
	g.mu.RLock()
	same := set == g.seenSet && key == g.seenHeld
	g.mu.RUnlock()
	if same {
		return
	}
	derived := map[string]refusal{}
	manifests := map[string]*manifest.Manifest{}
	for _, s := range held {
		m := g.manifest(ctx, s)
		if m == nil {
			continue
		}
		manifests[s] = m
		g.derive(derived, s, m)
	}
	g.mu.Lock()
	changed := set != g.seenSet || !sameKeys(derived, g.derived)
	g.derived, g.manifests, g.seenSet, g.seenHeld = derived, manifests, set, key
	g.mu.Unlock()
	if changed && g.cfg.Changed != nil {
		g.cfg.Changed()
	}
}

// sameKeys reports whether a and b refuse the same blocks.
func sameKeys(a, b map[string]refusal) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// manifest returns the held manifest s, from the cache or the store.
func (g *Gate) manifest(ctx context.Context, s string) *manifest.Manifest {
	g.mu.RLock()
	m := g.manifests[s]
	g.mu.RUnlock()
	if m != nil {
		return m
	}
	c, err := cid.Decode(s)
	if err != nil {
		return nil
	}
	m, err = g.cfg.Held.Manifest(ctx, c)
	if err != nil {
		g.log.Debug("gate: held manifest not read", "cid", s, "err", err)
		return nil
	}
	return m
}

// derive records in out which blocks of the held manifest m (CID mc) the
// lists or the licence policy refuse.
func (g *Gate) derive(out map[string]refusal, mc string, m *manifest.Manifest) {
	whole := func(r refusal) {
		for _, s := range append([]string{mc, m.Root}, fileCIDs(m)...) {
			if c, err := cid.Decode(s); err == nil {
				if _, ok := out[string(c.Hash())]; !ok || !r.license {
					out[string(c.Hash())] = r
				}
			}
		}
	}
	if g.cfg.Licenses != nil {
		if d := g.cfg.Licenses.Decide(m.License); !d.Allowed {
			whole(refusal{reason: policy.ReasonLicense, license: true, err: d.Err(m.Name)})
		}
	}
	if g.cfg.Blocker != nil {
		if match := g.cfg.Blocker.Name(m.Name); match.Blocked() {
			whole(refusal{reason: policy.ReasonDenyName, err: match.Err(m.Name)})
		}
		for _, f := range m.Files {
			if match := g.cfg.Blocker.SHA256(f.SHA256); match.Blocked() {
				if c, err := cid.Decode(f.CID); err == nil {
					out[string(c.Hash())] = refusal{reason: policy.ReasonDenySHA256, err: match.Err(m.Name + "/" + f.Path)}
				}
			}
		}
	}
}

func fileCIDs(m *manifest.Manifest) []string {
	out := make([]string, 0, len(m.Files))
	for _, f := range m.Files {
		out = append(out, f.CID)
	}
	return out
}

// serving reports whether where sends content to others (where the
// licence policy applies), rather than fetching it for this node's user.
func serving(where policy.Surface) bool {
	return where != policy.SurfaceFetch
}

// refuse counts a refusal and returns err marked as ErrRefused.
func (g *Gate) refuse(reason policy.Reason, where policy.Surface, err error) error {
	g.cfg.Refusals.Refused(reason, where)
	g.log.Debug("refused", "surface", string(where), "reason", string(reason), "err", err)
	return &Error{Reason: reason, Surface: where, Err: err}
}

// Error is a refusal by a Gate: errors.Is(err, ErrRefused) holds, and
// denylist.ErrBlocked or license.ErrDenied per its cause.
type Error struct {
	Reason  policy.Reason
	Surface policy.Surface
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRefused) true.
func (e *Error) Is(target error) bool { return target == ErrRefused }

// CID refuses the block c on where if a list blocks it, or it is a block
// of a held model the lists (or, when serving, the licence policy) refuse.
func (g *Gate) CID(c cid.Cid, where policy.Surface) error {
	if g == nil {
		return nil
	}
	if g.cfg.Blocker != nil {
		if m := g.cfg.Blocker.CID(c); m.Blocked() {
			return g.refuse(m.Reason, where, m.Err(c.String()))
		}
	}
	g.mu.RLock()
	r, ok := g.derived[string(c.Hash())]
	g.mu.RUnlock()
	if ok && (!r.license || serving(where)) {
		return g.refuse(r.reason, where, fmt.Errorf("%s: %w", c, r.err))
	}
	return nil
}

// Blocked reports whether CID would refuse c on where, without counting.
func (g *Gate) Blocked(c cid.Cid, where policy.Surface) bool { return g.Why(c, where) != nil }

// Why is the reason CID would refuse c on where (nil if it would not),
// without counting a refusal: for reports such as verify's.
func (g *Gate) Why(c cid.Cid, where policy.Surface) error {
	if g == nil {
		return nil
	}
	if g.cfg.Blocker != nil {
		if m := g.cfg.Blocker.CID(c); m.Blocked() {
			return m.Err(c.String())
		}
	}
	g.mu.RLock()
	r, ok := g.derived[string(c.Hash())]
	g.mu.RUnlock()
	if ok && (!r.license || serving(where)) {
		return fmt.Errorf("%s: %w", c, r.err)
	}
	return nil
}

// Name refuses the model or dataset name (org/name) on where if a list
// blocks it.
func (g *Gate) Name(name string, where policy.Surface) error {
	if g == nil || g.cfg.Blocker == nil {
		return nil
	}
	if m := g.cfg.Blocker.Name(name); m.Blocked() {
		return g.refuse(m.Reason, where, m.Err(name))
	}
	return nil
}

// SHA256 refuses a file whose whole-file sha256 is sum on where if a list
// blocks it; what names the file in the error.
func (g *Gate) SHA256(sum, what string, where policy.Surface) error {
	if g == nil || g.cfg.Blocker == nil {
		return nil
	}
	if m := g.cfg.Blocker.SHA256(sum); m.Blocked() {
		if what == "" {
			what = denylist.SHA256Prefix + sum
		}
		return g.refuse(m.Reason, where, m.Err(what))
	}
	return nil
}

// License refuses the licence expr of what (a model name) on where if the
// licence policy does. Fetching for this node's user is never refused for
// a licence.
func (g *Gate) License(expr, what string, where policy.Surface) error {
	if g == nil || g.cfg.Licenses == nil || !serving(where) {
		return nil
	}
	if d := g.cfg.Licenses.Decide(expr); !d.Allowed {
		return g.refuse(policy.ReasonLicense, where, d.Err(what))
	}
	return nil
}

// Manifest refuses the manifest m (whose CID is mc, or cid.Undef) on where
// for its name, its licence, its CID or any of its files' sha256s and
// CIDs.
func (g *Gate) Manifest(m *manifest.Manifest, mc cid.Cid, where policy.Surface) error {
	if g == nil {
		return nil
	}
	if err := g.Name(m.Name, where); err != nil {
		return err
	}
	if err := g.License(m.License, m.Name, where); err != nil {
		return err
	}
	for _, s := range append([]string{m.Root}, fileCIDs(m)...) {
		if c, err := cid.Decode(s); err == nil {
			if err := g.CID(c, where); err != nil {
				return err
			}
		}
	}
	if mc.Defined() {
		if err := g.CID(mc, where); err != nil {
			return err
		}
	}
	for _, f := range m.Files {
		if err := g.SHA256(f.SHA256, m.Name+"/"+f.Path, where); err != nil {
			return err
		}
	}
	return nil
}
