package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of names (the files live where package home says).
const (
	// DefaultRecordValidity is how long a published record is valid.
	DefaultRecordValidity = 365 * 24 * time.Hour
)

// Name errors, checked with errors.Is.
var (
	// ErrUntrusted: the only valid records come from untrusted publishers.
	ErrUntrusted = errors.New("untrusted publisher")
	// ErrTampered: records were found but none verifies.
	ErrTampered = errors.New("invalid record")
)

// bindTrust binds a trusted key that has no name patterns yet to the
// names under name's org, and returns the patterns the key has now.
func (reg *Registry) bindTrust(key, name string) ([]string, error) {
	reg.trustMu.Lock()
	defer reg.trustMu.Unlock()
	var names []string
	err := trust.Update(reg.home, func(keys []trust.Key) []trust.Key {
		for i, k := range keys {
			if k.Key == key {
				if len(k.Names) == 0 {
					keys[i].Names = []string{manifest.OrgPattern(name)}
				}
				names = keys[i].Names
			}
		}
		return keys
	})
	return names, err
}

// recordPath is where the record for name@rev lives in dir.
func recordPath(dir home.Dir, name, rev string) string {
	file := strings.ReplaceAll(name, "/", "--") + "@" + strings.ReplaceAll(rev, "/", "--") + ".json"
	return filepath.Join(dir.Records(), file)
}

func readRecord(dir home.Dir, name, rev string) ([]byte, bool) {
	raw, err := os.ReadFile(recordPath(dir, name, rev))
	if err != nil || len(raw) > manifest.MaxRecordSize {
		return nil, false
	}
	return raw, true
}

func writeRecord(dir home.Dir, r *manifest.Record) error {
	raw, err := r.Encode()
	if err != nil {
		return err
	}
	path := recordPath(dir, r.Name, r.Revision)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("store record: %w", err)
	}
	return fsutil.WriteFileAtomic(path, raw, 0o644)
}

// maxAttestationsKept bounds the attestations one resolve collects from
// all peers.
const maxAttestationsKept = 64

// Resolved is the outcome of resolving a name: the record chosen, and
// whether its publisher is trusted for the name.
type Resolved struct {
	Record  *manifest.Record
	Trusted bool
	// Attestations are what the peers sent with their records: signed
	// provenance attestations, not yet checked.
	Attestations [][]byte
}

// resolveName collects records for name@rev from this node and every
// connected peer, verifies them, and picks one (see pickRecord). A trusted
// key not yet bound to names is bound to the org of the first record of
// it accepted here.
func (reg *Registry) resolveName(ctx context.Context, name, rev string, trustAny bool) (*Resolved, error) {
	keys, err := trust.List(reg.home)
	if err != nil {
		return nil, err
	}
	type found struct {
		raw  []byte
		from string
	}
	var all []found
	if raw, ok := readRecord(reg.home, name, rev); ok {
		all = append(all, found{raw, "this node"})
	}
	var mu sync.Mutex
	var attestations [][]byte
	reg.askPeers(ctx, &protocol.ResolveRequest{Name: name, Revision: rev}, func(p peer.ID, r *protocol.ResolveResponse) {
		mu.Lock()
		defer mu.Unlock()
		for _, raw := range r.Records {
			all = append(all, found{raw, "peer " + p.String()})
		}
		if len(attestations) < maxAttestationsKept {
			attestations = append(attestations, r.Attestations...)
		}
	})
	var valid []*manifest.Record
	var bad []string
	now := time.Now()
	for _, f := range all {
		rec, err := manifest.DecodeRecord(f.raw, now)
		if err == nil && (rec.Name != name || rec.Revision != rev) {
			err = fmt.Errorf("record is for %s@%s", rec.Name, rec.Revision)
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("from %s: %v", f.from, err))
			continue
		}
		valid = append(valid, rec)
	}
	pick := pickRecord(valid, keys, name, trustAny)
	// Each round binds one key; a key bound meanwhile (by another resolve)
	// to another org makes the choice again. Bounded: each round leaves
	// one unbound key fewer.
	for range len(valid) {
		if pick.best == nil || !pick.bind {
			break
		}
		names, err := reg.bindTrust(pick.best.Record.Publisher, name)
		if err != nil {
			return nil, err
		}
		reg.log.Info("trusted publisher bound to the names of its first accepted record", "publisher", pick.best.Record.Publisher, "names", strings.Join(names, ","))
		if manifest.MatchName(names, name) {
			break
		}
		if keys, err = trust.List(reg.home); err != nil {
			return nil, err
		}
		pick = pickRecord(valid, keys, name, trustAny)
	}
	switch {
	case pick.best != nil:
		for _, b := range bad {
			reg.log.Warn("ignored invalid name record", "name", name+"@"+rev, "err", b)
		}
		pick.best.Attestations = attestations
		return pick.best, nil
	case len(pick.outside) > 0:
		return nil, fmt.Errorf("%s@%s: refused: signed only by publishers not trusted for this name: %s; run `allmende trust add <key> --names ...` to widen a key's names, or pass --trust-any: %w",
			name, rev, strings.Join(dedup(append(pick.outside, pick.untrusted...)), "; "), ErrUntrusted)
	case len(pick.untrusted) > 0:
		return nil, fmt.Errorf("%s@%s: refused: signed only by untrusted publisher %s; run `allmende trust add %s` or pass --trust-any: %w",
			name, rev, strings.Join(dedup(pick.untrusted), ", "), pick.untrusted[0], ErrUntrusted)
	case len(bad) > 0:
		return nil, fmt.Errorf("%s@%s: refused: no record verifies (%s): %w", name, rev, strings.Join(bad, "; "), ErrTampered)
	}
	return nil, fmt.Errorf("%s@%s: %w: no connected peer has a record for this name", name, rev, api.ErrNotFound)
}

// recordPick is pickRecord's verdict.
type recordPick struct {
	// best is the record chosen, nil if none may be used.
	best *Resolved
	// bind: best's publisher is trusted but not yet bound to names.
	bind bool
	// untrusted are the publishers of records refused as untrusted;
	// outside describes trusted keys refused for signing a name outside
	// their patterns.
	untrusted, outside []string
}

// pickRecord chooses among valid records for name: the highest sequence
// number among publishers trusted for name (in the trust list, and name
// matching the key's patterns, or the key not bound to names yet). Only
// when there is none, and trustAny, the highest among the others: a record
// from a trusted publisher always wins over untrusted ones, whatever their
// sequence numbers. A key trusted for other names counts as untrusted.
func pickRecord(recs []*manifest.Record, keys []trust.Key, name string, trustAny bool) recordPick {
	var pick recordPick
	var bestTrusted, bestOther *manifest.Record
	for _, rec := range recs {
		k, ok := trust.Find(keys, rec.Publisher)
		switch {
		case ok && (len(k.Names) == 0 || manifest.MatchName(k.Names, name)):
			if bestTrusted == nil || rec.Seq > bestTrusted.Seq {
				bestTrusted = rec
			}
			continue
		case ok:
			pick.outside = append(pick.outside, fmt.Sprintf("%s is trusted only for %s", rec.Publisher, strings.Join(k.Names, ", ")))
		default:
			pick.untrusted = append(pick.untrusted, rec.Publisher)
		}
		if bestOther == nil || rec.Seq > bestOther.Seq {
			bestOther = rec
		}
	}
	switch {
	case bestTrusted != nil:
		k, _ := trust.Find(keys, bestTrusted.Publisher)
		pick.best, pick.bind = &Resolved{Record: bestTrusted, Trusted: true}, len(k.Names) == 0
	case trustAny && bestOther != nil:
		pick.best = &Resolved{Record: bestOther}
	}
	return pick
}

func dedup(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// askPeers sends req to every connected peer at once (but those the Guard
// banned) and calls answer for each answer (concurrently).
func (reg *Registry) askPeers(ctx context.Context, req *protocol.ResolveRequest, answer func(peer.ID, *protocol.ResolveResponse)) {
	var wg sync.WaitGroup
	for _, p := range reg.host.Network().Peers() {
		if reg.guard.IsBanned(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := protocol.AskResolve(ctx, reg.host, p, req)
			if err != nil {
				reg.log.Debug("resolve request failed", "peer", p.String(), "err", err)
				return
			}
			if resp.Error == "" {
				answer(p, resp)
			}
		}()
	}
	wg.Wait()
}

// Publish signs a record mapping name@revision to the manifest this node
// imported or fetched for it, with a sequence number above any earlier
// record of its own, and serves it to peers.
func (reg *Registry) Publish(ctx context.Context, req api.PublishRequest) (api.PublishResult, error) {
	if req.Revision == "" {
		req.Revision = "main"
	}
	if req.Validity <= 0 {
		req.Validity = DefaultRecordValidity
	}
	mc, ok := reg.index.ByName(req.Name, req.Revision)
	if !ok {
		return api.PublishResult{}, fmt.Errorf("publish %s@%s: %w: no such model here; import it first", req.Name, req.Revision, api.ErrBadInput)
	}
	sk, err := trust.LoadPublisherKey(reg.home)
	if err != nil {
		return api.PublishResult{}, err
	}
	seq := uint64(time.Now().UnixNano())
	if raw, ok := readRecord(reg.home, req.Name, req.Revision); ok {
		// An expired record still holds the last sequence number: a
		// clock set back must not make the new record look older.
		if old, err := manifest.DecodeRecord(raw, time.Now()); old != nil && (err == nil || errors.Is(err, manifest.ErrExpired)) && old.Seq >= seq {
			if old.Seq >= manifest.MaxSeq {
				return api.PublishResult{}, fmt.Errorf("publish %s@%s: the last record's sequence number %d leaves no room for a later one", req.Name, req.Revision, old.Seq)
			}
			seq = old.Seq + 1
		}
	}
	rec := &manifest.Record{Name: req.Name, Revision: req.Revision, Manifest: mc.String(), Seq: seq,
		Expires: time.Now().Add(req.Validity).UTC().Truncate(time.Second)}
	if err := rec.Sign(sk); err != nil {
		return api.PublishResult{}, fmt.Errorf("publish: sign: %w", err)
	}
	if err := writeRecord(reg.home, rec); err != nil {
		return api.PublishResult{}, err
	}
	reg.log.Info("published", "name", req.Name+"@"+req.Revision, "cid", rec.Manifest, "publisher", rec.Publisher)
	return api.PublishResult{Name: rec.Name, Revision: rec.Revision, Manifest: rec.Manifest, Seq: rec.Seq,
		Expires: rec.Expires, Publisher: rec.Publisher}, nil
}
