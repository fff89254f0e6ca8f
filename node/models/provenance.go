package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/trust"
	"github.com/allmende/allmende/policy/provenance"
	"github.com/allmende/allmende/protocol"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// MaxAttestationBytes bounds the attestations one resolve answer carries,
// well within protocol.MaxResolveResponse.
const MaxAttestationBytes = 1 << 20

// ErrUnattested means no attestation from a trusted key describes a
// model's manifest.
var ErrUnattested = errors.New("no trusted attestation")

// SignFill vouches for a revision this node filled from an upstream: it
// signs, with the publisher key, a provenance attestation that the
// manifest m (stored as mc) is up's revision, and a version 2 name record
// for m.Name at up.Revision (the branch asked for, e.g. main; the commit
// if none) with a sequence number above the last one (manifest.NextSeq),
// and keeps both to serve to peers (HOME/attestations, HOME/models/records).
func (reg *Registry) SignFill(mc cid.Cid, m *manifest.Manifest, up provenance.Upstream) error {
	sk, err := trust.LoadPublisherKey(reg.home)
	if err != nil {
		return err
	}
	now := time.Now()
	a := provenance.New(mc, m, up, now)
	if err := a.Sign(sk); err != nil {
		return fmt.Errorf("sign attestation: %w", err)
	}
	if err := provenance.Save(reg.home.Attestations(), a); err != nil {
		return err
	}
	rev := up.Revision
	if rev == "" {
		rev = m.Commit
	}
	var prev *manifest.Record
	if raw, ok := readRecord(reg.home, m.Name, rev); ok {
		// An expired record still holds the last sequence number.
		if old, err := manifest.DecodeRecord(raw, now); old != nil && (err == nil || errors.Is(err, manifest.ErrExpired)) {
			prev = old
		}
	}
	if prev != nil && prev.Manifest == mc.String() && prev.Expires.Sub(now) > DefaultRecordValidity/2 {
		return nil // signed before, and not close to expiring
	}
	seq, err := manifest.NextSeq(prev, now)
	if err != nil {
		return err
	}
	rec := &manifest.Record{Name: m.Name, Revision: rev, Manifest: mc.String(), Kind: m.Kind, Commit: m.Commit,
		Seq: seq, Expires: now.Add(DefaultRecordValidity).UTC().Truncate(time.Second)}
	if err := rec.Sign(sk); err != nil {
		return fmt.Errorf("sign record: %w", err)
	}
	if err := writeRecord(reg.home, rec); err != nil {
		return err
	}
	reg.log.Info("signed the revision filled", "name", m.Name+"@"+rev, "commit", m.Commit, "manifest", mc.String(), "publisher", rec.Publisher)
	return nil
}

// attestationsFor returns the attestations kept for the manifest that the
// record raw names, encoded, for a resolve answer: at most
// protocol.MaxAttestations, within MaxAttestationBytes.
func (reg *Registry) attestationsFor(raw []byte) [][]byte {
	rec, err := manifest.DecodeRecord(raw, time.Now())
	if err != nil {
		return nil
	}
	mc, err := cid.Decode(rec.Manifest)
	if err != nil {
		return nil
	}
	as, _ := provenance.ForManifest(reg.home.Attestations(), mc)
	var out [][]byte
	total := 0
	for _, a := range as {
		enc, err := a.Encode()
		if err != nil || total+len(enc) > MaxAttestationBytes || len(out) == protocol.MaxAttestations {
			continue
		}
		total += len(enc)
		out = append(out, enc)
	}
	return out
}

// keepAttestations keeps the attestations peers sent for the manifest m
// (stored as mc) that verify and describe it, whoever signed them: whether
// a signer is trusted is asked when they are used (VerifyProvenance).
func (reg *Registry) keepAttestations(mc cid.Cid, m *manifest.Manifest, raws [][]byte) {
	for _, raw := range raws {
		a, err := provenance.Decode(raw, time.Now())
		if err == nil {
			err = a.Describes(mc, m)
		}
		if err == nil {
			err = provenance.Save(reg.home.Attestations(), a)
		}
		if err != nil {
			reg.log.Warn("attestation from a peer not kept", "name", m.Name, "manifest", mc.String(), "err", err)
		}
	}
}

// VerifyProvenance checks the local copy of a model (org/name[@rev])
// against the attestations kept for its manifest: each must verify,
// describe the manifest, and come from a key in the trust list trusted for
// the name. It fails with ErrUnattested when none does, saying why each
// was refused.
func (reg *Registry) VerifyProvenance(ctx context.Context, ref string) (api.ProvenanceReport, error) {
	name, rev, err := ParseModelRef(ref)
	if err != nil {
		return api.ProvenanceReport{}, err
	}
	mc, ok := reg.index.ByName(name, rev)
	if !ok {
		return api.ProvenanceReport{}, fmt.Errorf("verify --provenance %s: %w: no such model here", ref, api.ErrBadInput)
	}
	m, err := ReadManifest(ctx, reg.store.LocalDAG(), mc)
	if err != nil {
		return api.ProvenanceReport{}, err
	}
	keys, err := trust.List(reg.home)
	if err != nil {
		return api.ProvenanceReport{}, err
	}
	rep := api.ProvenanceReport{Name: m.Name, Revision: m.Revision, Commit: m.Commit, Manifest: mc.String()}
	as, ferr := provenance.ForManifest(reg.home.Attestations(), mc)
	if ferr != nil {
		rep.Refused = append(rep.Refused, ferr.Error())
	}
	for _, a := range as {
		if err := accept(keys, a, mc, m); err != nil {
			rep.Refused = append(rep.Refused, fmt.Sprintf("%s: %v", a.Signer, err))
			continue
		}
		rep.Accepted = append(rep.Accepted, attestationInfo(a, true))
	}
	if len(rep.Accepted) == 0 {
		why := "none is kept here"
		if len(rep.Refused) > 0 {
			why = "refused: " + strings.Join(rep.Refused, "; ")
		}
		return rep, fmt.Errorf("verify --provenance %s: %w describes manifest %s (%s)", ref, ErrUnattested, mc, why)
	}
	return rep, nil
}

// accept is why verify --provenance refuses the attestation a of the
// manifest m (stored as mc), nil if a key of the trust list, trusted for
// m.Name, signed it and it describes m.
func accept(keys []trust.Key, a *provenance.Attestation, mc cid.Cid, m *manifest.Manifest) error {
	k, ok := trust.Find(keys, a.Signer)
	switch {
	case !ok:
		return errors.New("signer not in the trust list")
	case len(k.Names) > 0 && !manifest.MatchName(k.Names, m.Name):
		return fmt.Errorf("signer not trusted for %s", m.Name)
	}
	return a.Describes(mc, m)
}

// Attestations lists every attestation kept for the manifest mc that
// verifies, trusted or not (for inspect and the web page); with m, the
// manifest, each one verify --provenance would accept is marked Trusted.
func (reg *Registry) Attestations(mc cid.Cid, m *manifest.Manifest) []api.Attestation {
	as, _ := provenance.ForManifest(reg.home.Attestations(), mc)
	var keys []trust.Key
	if m != nil && len(as) > 0 {
		keys, _ = trust.List(reg.home) // an unreadable trust list trusts no one
	}
	out := make([]api.Attestation, 0, len(as))
	for _, a := range as {
		out = append(out, attestationInfo(a, m != nil && accept(keys, a, mc, m) == nil))
	}
	return out
}

func attestationInfo(a *provenance.Attestation, trusted bool) api.Attestation {
	return api.Attestation{Signer: a.Signer, Trusted: trusted, Upstream: a.Upstream.URL, Name: a.Upstream.Name,
		Revision: a.Upstream.Revision, Commit: a.Upstream.Commit, Files: len(a.Files), Time: a.Time}
}
