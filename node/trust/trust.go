// Package trust owns a HOME's trust list, trust.json: the publisher keys
// this node accepts name records from, each bound to the name patterns it
// may sign; and the node's own publisher key. The model registry
// (node/models) judges records against it; the CLI's "trust" commands
// edit it.
package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/manifest"
	"github.com/libp2p/go-libp2p/core/crypto"
)

// MaxFile bounds the trust file.
const MaxFile = 1 << 20

// Key is one publisher this node trusts, and for which names.
type Key struct {
	Key   string `json:"key"`
	Label string `json:"label,omitempty"`
	// Names are the patterns (manifest.ValidNamePattern, e.g. "acme/*")
	// of the names this key may sign. Empty means not bound yet: the
	// first record from the key that this node accepts binds it to the
	// names under that record's org ("org/*"), written to the trust file
	// then. Entries written before names existed start that way too.
	Names []string `json:"names,omitempty"`
}

// PublisherKey returns the publisher key ID of the home directory dir,
// creating the key (ed25519, written atomically with mode 0600) on first
// use.
func PublisherKey(dir string) (string, error) {
	sk, err := LoadPublisherKey(home.Dir(dir))
	if err != nil {
		return "", err
	}
	return manifest.KeyID(sk.GetPublic())
}

// LoadPublisherKey returns dir's publisher key, creating it on first use.
func LoadPublisherKey(dir home.Dir) (crypto.PrivKey, error) {
	path := dir.PublisherKey()
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, fmt.Errorf("publisher key: %w", err)
		}
		if raw, err = crypto.MarshalPrivateKey(sk); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("publisher key: %w", err)
		}
		if err := fsutil.WriteFileAtomic(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("publisher key: %w", err)
		}
		return sk, nil
	}
	if err != nil {
		return nil, fmt.Errorf("publisher key: %w", err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("publisher key %s: %w", path, err)
	}
	return sk, nil
}

// Trusted lists the publisher keys trusted in the home directory dir.
func Trusted(dir string) ([]Key, error) { return List(home.Dir(dir)) }

// List reads dir's trust list (none when the file does not exist).
func List(dir home.Dir) ([]Key, error) {
	raw, err := os.ReadFile(dir.Trust())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	if len(raw) > MaxFile {
		return nil, fmt.Errorf("trust: %s larger than %d bytes", dir.Trust(), MaxFile)
	}
	var keys []Key
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("trust: %s: %w", dir.Trust(), err)
	}
	return keys, nil
}

// Add adds a publisher key (k51... or 12D3Koo...) to home's trust list,
// trusted for the names matching patterns (manifest.ValidNamePattern);
// with no patterns, for the names under the org of the first record from
// it this node accepts (see Key.Names). Adding a key already
// trusted replaces its patterns when patterns are given, and its label
// when one is. It returns the key's canonical ID.
func Add(dir, key, label string, patterns []string) (string, error) {
	canon, _, err := manifest.ParseKeyID(key)
	if err != nil {
		return "", api.BadInput(fmt.Errorf("trust: %w", err))
	}
	if len(patterns) > manifest.MaxNamePatterns {
		return "", fmt.Errorf("trust: %w: %d name patterns, at most %d", api.ErrBadInput, len(patterns), manifest.MaxNamePatterns)
	}
	for _, p := range patterns {
		if err := manifest.ValidNamePattern(p); err != nil {
			return "", api.BadInput(fmt.Errorf("trust: %w", err))
		}
	}
	return canon, Update(home.Dir(dir), func(keys []Key) []Key {
		for i, k := range keys {
			if k.Key != canon {
				continue
			}
			if len(patterns) > 0 {
				keys[i].Names = sortedUnique(patterns)
			}
			if label != "" {
				keys[i].Label = label
			}
			return keys
		}
		return append(keys, Key{Key: canon, Label: label, Names: sortedUnique(patterns)})
	})
}

// Update rewrites dir's trust list with change applied, atomically.
func Update(dir home.Dir, change func([]Key) []Key) error {
	keys, err := List(dir)
	if err != nil {
		return err
	}
	keys = change(keys)
	sort.Slice(keys, func(i, j int) bool { return keys[i].Key < keys[j].Key })
	raw, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(dir.Trust(), raw, 0o600)
}

// Find returns the trust list's entry for id.
func Find(keys []Key, id string) (Key, bool) {
	for _, k := range keys {
		if k.Key == id {
			return k, true
		}
	}
	return Key{}, false
}

// sortedUnique is patterns sorted, without repeats, in a new slice.
func sortedUnique(patterns []string) []string {
	out := slices.Clone(patterns)
	slices.Sort(out)
	return slices.Compact(out)
}
