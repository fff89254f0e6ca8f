// Package denylist owns the denylists a node enforces: files in the IPFS
// compact denylist format (IPIP-383, parsed by nopfs as Kubo does) in a
// folder and fetched from https URLs, with allmende's two extensions,
// whole-file sha256 rules (sha256:<hex>) and model name rules
// (name:org/model, with wildcards). It answers whether a CID, a CID path,
// a whole-file sha256 or a model name is blocked, naming the list and line
// that block it; it watches its files so a list added or changed applies
// at once, and keeps fetched lists on disk so they hold offline. It knows
// nothing of the node: the node asks it (docs/governance.md).
package denylist

import (
	"errors"
	"fmt"
	"time"

	"github.com/allmende/allmende/policy"
)

// Limits, checked before anything is allocated for a list.
const (
	// MaxListSize is the largest denylist file or download accepted.
	// badbits, the largest public list, is about a third of it.
	MaxListSize = 128 << 20
	// MaxLists is the most lists (files and URLs) one node enforces.
	MaxLists = 256
	// MaxNameRules is the most name: rules one list may hold; each name
	// lookup walks them.
	MaxNameRules = 10_000
	// MaxLineErrors is how many unparsable lines of one list are kept to
	// report; the rest are only counted.
	MaxLineErrors = 20
	// maxHeaderSize is where the header separator must be found by (the
	// IPIP-383 limit).
	maxHeaderSize = 1 << 20
)

// Defaults.
const (
	// DefaultRefresh is how often lists from URLs are fetched again when
	// the config sets no denylists_refresh.
	DefaultRefresh = time.Hour
	// MinRefresh is the shortest refresh interval accepted.
	MinRefresh = time.Minute
	// FetchTimeout bounds one download of a list.
	FetchTimeout = 5 * time.Minute
	// ReloadDelay is how long after the last change to a watched file the
	// lists are read again, so a file written in several steps is read
	// once, whole.
	ReloadDelay = 200 * time.Millisecond
	// RescanInterval is how often the files are checked for changes even
	// without a watcher event (a missed event, a folder created later).
	RescanInterval = 30 * time.Second
)

// Extension rule prefixes (docs/governance.md).
const (
	// SHA256Prefix starts a whole-file sha256 rule: sha256:<64 hex>.
	SHA256Prefix = "sha256:"
	// NamePrefix starts a model name rule: name:org/model, where either
	// part may use the wildcards * ? [...] (manifest.ValidNamePattern).
	NamePrefix = "name:"
)

// Errors, checked with errors.Is.
var (
	// ErrBlocked marks an error refusing something a denylist blocks.
	ErrBlocked = errors.New("blocked by a denylist")
	// ErrInvalid means a list, a rule or a source is malformed.
	ErrInvalid = errors.New("invalid denylist")
)

// Status is a list's verdict on an item.
type Status int

// Statuses. Only Blocked refuses.
const (
	// NotFound: no rule of the list matches.
	NotFound Status = iota
	// Blocked: the last matching rule blocks.
	Blocked
	// Allowed: the last matching rule is an exception (!rule).
	Allowed
)

func (s Status) String() string {
	switch s {
	case Blocked:
		return "blocked"
	case Allowed:
		return "allowed"
	}
	return "not found"
}

// Match is an answer: the verdict and, unless NotFound, the rule that gave
// it.
type Match struct {
	Status Status
	// List names the list: its file path, or its URL for a fetched list.
	List string
	// Line is the rule's line in the list (1 is the first line).
	Line uint64
	// Rule is the rule as written, without its hints.
	Rule string
	// Reason is the kind of rule: policy.ReasonDenyCID (CID, CID path,
	// double hash), ReasonDenySHA256 or ReasonDenyName.
	Reason policy.Reason
	// Hints are the rule's hints, the list's header hints included (e.g.
	// gateway_status); read only.
	Hints map[string]string
}

// Blocked reports whether the match refuses.
func (m Match) Blocked() bool { return m.Status == Blocked }

// String says which rule decided, e.g. `blocked by denylist
// /home/u/.allmende/denylists/local.deny (line 3: sha256:ab12...)`.
func (m Match) String() string {
	if m.Status == NotFound {
		return "not on any denylist"
	}
	return fmt.Sprintf("%s by denylist %s (line %d: %s)", m.Status, m.List, m.Line, m.Rule)
}

// Err is nil unless the match blocks; then a *BlockedError about what,
// e.g. Err("bafy...") or Err("acme/tiny").
func (m Match) Err(what string) error {
	if !m.Blocked() {
		return nil
	}
	return &BlockedError{What: what, Match: m}
}

// BlockedError refuses something because of a denylist rule. It matches
// ErrBlocked with errors.Is.
type BlockedError struct {
	What  string
	Match Match
}

func (e *BlockedError) Error() string { return e.What + ": " + e.Match.String() }

// Unwrap makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Unwrap() error { return ErrBlocked }
