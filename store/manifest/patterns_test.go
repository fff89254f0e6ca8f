package manifest_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/allmende/allmende/store/manifest"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestNamePatterns(t *testing.T) {
	tests := []struct {
		why      string
		patterns []string
		name     string
		valid    bool // every pattern passes ValidNamePattern
		match    bool
	}{
		{"an org pattern covers the org's names", []string{"acme/*"}, "acme/tiny-llama", true, true},
		{"an org pattern covers no other org", []string{"acme/*"}, "evil/tiny-llama", true, false},
		{"* never crosses the slash: acme* is not acme-evil/x's org", []string{"acme/*"}, "acme-evil/x", true, false},
		{"an org prefix pattern is explicit", []string{"acme*/*"}, "acme-evil/x", true, true},
		{"an exact name", []string{"acme/tiny"}, "acme/tiny", true, true},
		{"an exact name covers no sibling", []string{"acme/tiny"}, "acme/tiny2", true, false},
		{"any of several patterns", []string{"acme/*", "friends/model"}, "friends/model", true, true},
		{"*/* is every name", []string{"*/*"}, "anyone/anything", true, true},
		{"no patterns match nothing", nil, "acme/tiny", true, false},
		{"a bare * is not org/name", []string{"*"}, "acme/tiny", false, false},
		{"two slashes are no name", []string{"acme/*/x"}, "acme/tiny", false, false},
		{"an unclosed bracket", []string{"acme/[a"}, "acme/a", false, false},
		{"a backslash escape is refused", []string{`acme/\*`}, "acme/*", false, false},
		{"an empty org", []string{"/*"}, "acme/tiny", false, false},
	}
	for _, tt := range tests {
		valid := true
		for _, p := range tt.patterns {
			if err := manifest.ValidNamePattern(p); err != nil {
				valid = false
				if !errors.Is(err, manifest.ErrInvalid) {
					t.Errorf("%s: %q: error %v is not ErrInvalid", tt.why, p, err)
				}
			}
		}
		if valid != tt.valid {
			t.Errorf("%s: valid = %v, want %v", tt.why, valid, tt.valid)
		}
		if tt.valid {
			if got := manifest.MatchName(tt.patterns, tt.name); got != tt.match {
				t.Errorf("%s: MatchName(%q, %q) = %v, want %v", tt.why, tt.patterns, tt.name, got, tt.match)
			}
		}
	}
	if got := manifest.OrgPattern("acme/tiny"); got != "acme/*" {
		t.Errorf("OrgPattern = %q, want acme/*", got)
	}
}

func TestValidNameRefusesDoubleDash(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		why  string
	}{
		{"acme/tiny-llama", true, "single dashes are fine"},
		{"a--b/c", false, "models--a--b--c would also be a/b--c's cache folder"},
		{"a/b--c", false, "the other half of that pair"},
		{"acme/x..y", false, "the hub refuses .. too"},
	}
	for _, tt := range tests {
		if err := manifest.ValidName(tt.name); (err == nil) != tt.ok {
			t.Errorf("%s (%s): err = %v", tt.name, tt.why, err)
		}
	}
}

func TestRecordSeqBound(t *testing.T) {
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	tests := []struct {
		why string
		seq uint64
		ok  bool
	}{
		{"an ordinary sequence number", uint64(time.Now().UnixNano()), true},
		{"the highest that leaves room for a later record", manifest.MaxSeq, true},
		{"max uint64 could never be superseded", math.MaxUint64, false},
	}
	for _, tt := range tests {
		r := &manifest.Record{Name: "acme/tiny", Revision: "main", Manifest: testCID, Seq: tt.seq, Expires: time.Now().Add(time.Hour).UTC()}
		if err := r.Sign(sk); err != nil {
			t.Fatal(err)
		}
		raw, _ := r.Encode()
		_, err := manifest.DecodeRecord(raw, time.Now())
		if (err == nil) != tt.ok || (!tt.ok && !errors.Is(err, manifest.ErrInvalid)) {
			t.Errorf("%s: seq %d: err = %v", tt.why, tt.seq, err)
		}
	}
}
