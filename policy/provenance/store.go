package provenance

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/ipfs/go-cid"
)

// MaxPerManifest bounds how many attestations are read for one manifest.
const MaxPerManifest = 64

// fileExt ends an attestation's file name.
const fileExt = ".json"

// Where attestations lie: dir/<manifest CID>/<signer key ID>.json, one per
// manifest and signer (HOME/attestations; the node passes the folder). Both
// names are base32/base36, safe in any file system.

func manifestDir(dir string, mc cid.Cid) string { return filepath.Join(dir, mc.String()) }

// Save keeps a signed, valid attestation, replacing an older one by the
// same signer for the same manifest (by Time; an equal or newer one on
// disk stays). The write is atomic.
func Save(dir string, a *Attestation) error {
	raw, err := a.Encode()
	if err != nil {
		return err
	}
	if _, err := Decode(raw, time.Now()); err != nil {
		return fmt.Errorf("save attestation: %w", err)
	}
	mc, _ := cid.Decode(a.Manifest) // checked by Decode
	mdir := manifestDir(dir, mc)
	path := filepath.Join(mdir, a.Signer+fileExt)
	if old, err := readFile(path); err == nil && !old.Time.Before(a.Time) {
		return nil
	}
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return fmt.Errorf("save attestation: %w", err)
	}
	return fsutil.WriteFileAtomic(path, raw, 0o644)
}

func readFile(path string) (*Attestation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	a, err := Decode(raw, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ForManifest returns the attestations kept for the manifest mc, each
// decoded and its signature verified, by signer. Files that do not verify,
// or are not for mc, or are not named after their signer, are left out
// and reported in the error, which may come with attestations that did
// verify. Whether a signer is trusted is the caller's question.
func ForManifest(dir string, mc cid.Cid) ([]*Attestation, error) {
	entries, err := os.ReadDir(manifestDir(dir, mc))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("attestations of %s: %w", mc, err)
	}
	var out []*Attestation
	var bad []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, fileExt) || strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		if len(out)+len(bad) >= MaxPerManifest {
			bad = append(bad, fmt.Errorf("attestations of %s: more than %d, the rest not read", mc, MaxPerManifest))
			break
		}
		a, err := readFile(filepath.Join(manifestDir(dir, mc), name))
		switch {
		case err != nil:
			bad = append(bad, err)
		case a.Manifest != mc.String() || a.Signer+fileExt != name:
			bad = append(bad, fmt.Errorf("%s: attestation of %s by %s filed in the wrong place", name, a.Manifest, a.Signer))
		default:
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Signer < out[j].Signer })
	return out, errors.Join(bad...)
}
