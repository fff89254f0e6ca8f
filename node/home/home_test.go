package home

import (
	"path/filepath"
	"testing"
)

// TestPathsAreDistinctAndInside: every path is inside HOME and no two
// files share one.
func TestPathsAreDistinctAndInside(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "home"))
	paths := map[string]string{
		"identity": d.Identity(), "config": d.Config(), "api": d.APIFile(), "token": d.Token(),
		"lock": d.Lock(), "store": d.Store(), "mirror": d.MirrorFile(), "mirror cache": d.MirrorCache(),
		"fills": d.Fills(), "fill kept": d.FillKept(), "model index": d.ModelIndex(), "records": d.Records(),
		"publisher key": d.PublisherKey(), "trust": d.Trust(), "denylists": d.Denylists(),
		"fetched denylists": d.DenylistsFetched(), "attestations": d.Attestations(),
	}
	seen := map[string]string{}
	for name, p := range paths {
		rel, err := filepath.Rel(string(d), p)
		if err != nil || !filepath.IsLocal(rel) {
			t.Errorf("%s: %s is not inside %s", name, p, d)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share %s", name, other, p)
		}
		seen[p] = name
	}
}
