package denylist

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/allmende/allmende/policy"
	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs-shipyard/nopfs"
	bpath "github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
)

// List is one parsed denylist: its IPIP-383 rules, held by a
// nopfs.Denylist, and its allmende extension rules. It is immutable and
// safe for concurrent use.
type List struct {
	source string
	header nopfs.DenylistHeader
	dl     *nopfs.Denylist
	// sha256 maps a lower-case hex sum to its rules in file order.
	sha256 map[string][]extRule
	// names are the name: rules in file order.
	names    []extRule
	rules    int
	skipped  int
	lineErrs []LineError
}

// extRule is one sha256: or name: rule.
type extRule struct {
	line  uint64
	rule  string
	allow bool
	// pattern is the lower-cased name pattern of a name: rule.
	pattern string
	hints   map[string]string
}

// LineError is a line of a list that was not understood; the rest of the
// list still applies (IPIP-383 leaves that choice to implementations).
type LineError struct {
	Line uint64
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Info describes a parsed list.
type Info struct {
	// Source is the file path or URL the list is known by.
	Source string
	// Name, Description and Author come from the list's header.
	Name, Description, Author string
	// Hints are the header's hints (read only).
	Hints map[string]string
	// Rules is how many rules apply; Skipped how many lines holding a
	// rule were not understood (the first MaxLineErrors of ours are in
	// LineErrors; nopfs logs its own).
	Rules, Skipped int
	LineErrors     []LineError
}

// ParseFile reads and parses the denylist file at file, refusing one larger
// than MaxListSize before reading it.
func ParseFile(file string) (*List, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("denylist %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("denylist %s: %w", file, err)
	}
	if st.Size() > MaxListSize {
		return nil, fmt.Errorf("denylist %s: %w: %d bytes, at most %d", file, ErrInvalid, st.Size(), MaxListSize)
	}
	return Parse(file, f)
}

// Parse reads a denylist (at most MaxListSize bytes) from r. source names
// it in every Match. A header that is not valid YAML, or names a version
// other than 1, refuses the whole list, as IPIP-383 asks; a rule line that
// is not understood is skipped and counted.
func Parse(source string, r io.Reader) (*List, error) {
	return parseLimited(source, r, MaxListSize)
}

// parseLimited is Parse with limit in place of MaxListSize.
func parseLimited(source string, r io.Reader, limit int64) (*List, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("denylist %s: %w", source, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("denylist %s: %w: larger than %d bytes", source, ErrInvalid, limit)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		// nopfs drops a last line without a newline (it waits for the rest
		// when following a file); a list's last rule must count.
		data = append(data, '\n')
	}
	l := &List{source: source, sha256: make(map[string][]extRule)}
	// First pass: take out the extension rules, turning their lines into
	// comments so nopfs keeps its line numbers and does not read them as
	// sub-path rules.
	body := headerEnd(data)
	ipfsRules := l.takeExtensions(data, body)
	dl, err := readNopfs(data)
	if err != nil {
		return nil, fmt.Errorf("denylist %s: %w: %v", source, ErrInvalid, err)
	}
	dl.Filename = source
	l.dl, l.header = dl, dl.Header
	if len(l.sha256) > 0 || len(l.names) > 0 {
		l.applyHeaderHints()
	}
	l.rules += len(dl.Entries)
	l.skipped += max(ipfsRules-len(dl.Entries), 0)
	return l, nil
}

// readNopfs parses data with nopfs, turning a panic of its parser into an
// error: a list comes from outside, and must not take the node down.
func readNopfs(data []byte) (dl *nopfs.Denylist, err error) {
	defer func() {
		if r := recover(); r != nil {
			dl, err = nil, fmt.Errorf("the IPIP-383 parser failed: %v", r)
		}
	}()
	return nopfs.NewDenylistReader(nopCloser{bytes.NewReader(data)})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// headerEnd returns where the rules start: after the first line that is
// exactly "---" within the first maxHeaderSize bytes, as nopfs reads it, or
// 0 if there is no header.
func headerEnd(data []byte) int {
	limit := data[:min(len(data), maxHeaderSize)]
	for off := 0; off < len(limit); {
		nl := bytes.IndexByte(limit[off:], '\n')
		if nl < 0 {
			return 0
		}
		if string(limit[off:off+nl]) == "---" {
			return off + nl + 1
		}
		off += nl + 1
	}
	return 0
}

// takeExtensions reads the rule lines from body on, keeps the sha256: and
// name: rules and blanks their lines (first byte '#') in data. It returns
// how many other rule lines there are, for nopfs.
func (l *List) takeExtensions(data []byte, body int) int {
	line := uint64(bytes.Count(data[:body], []byte{'\n'}))
	others := 0
	for off := body; off < len(data); {
		nl := bytes.IndexByte(data[off:], '\n') // data ends with '\n'
		text := data[off : off+nl]
		line++
		fields := strings.Fields(string(text))
		switch {
		case len(fields) == 0 && len(text) > 0:
			// Blank but for spaces: nopfs v0.0.14 indexes the first field
			// of every non-empty line and panics on this one.
			text[0] = '#'
		case len(fields) == 0 || text[0] == '#':
		case isExtension(fields[0]):
			l.addExtension(fields, line)
			text[0] = '#'
		default:
			others++
		}
		off += nl + 1
	}
	return others
}

// cutAllow strips the prefixes that make a rule an exception ('!', and
// '+' or '-' as nopfs also accepts).
func cutAllow(rule string) (string, bool) {
	for _, p := range []string{"!", "+", "-"} {
		if r, ok := strings.CutPrefix(rule, p); ok {
			return r, true
		}
	}
	return rule, false
}

func isExtension(field string) bool {
	rule, _ := cutAllow(field)
	return strings.HasPrefix(rule, SHA256Prefix) || strings.HasPrefix(rule, NamePrefix)
}

func (l *List) addExtension(fields []string, line uint64) {
	rule, allow := cutAllow(fields[0])
	e := extRule{line: line, rule: fields[0], allow: allow}
	for _, kv := range fields[1:] { // hints, key=value as nopfs reads them
		if k, v, ok := strings.Cut(kv, "="); ok {
			if e.hints == nil {
				e.hints = make(map[string]string, len(fields)-1)
			}
			e.hints[k] = v
		}
	}
	if err := l.addRule(e, rule); err != nil {
		l.skipped++
		if len(l.lineErrs) < MaxLineErrors {
			l.lineErrs = append(l.lineErrs, LineError{Line: line, Err: err})
		}
		return
	}
	l.rules++
}

func (l *List) addRule(e extRule, rule string) error {
	if sum, ok := strings.CutPrefix(rule, SHA256Prefix); ok {
		sum = strings.ToLower(sum)
		if !manifest.IsSHA256(sum) {
			return fmt.Errorf("%w: %q: want sha256: and 64 hex digits", ErrInvalid, rule)
		}
		l.sha256[sum] = append(l.sha256[sum], e)
		return nil
	}
	pattern := strings.ToLower(strings.TrimPrefix(rule, NamePrefix))
	if err := manifest.ValidNamePattern(pattern); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalid, rule, err)
	}
	if len(l.names) >= MaxNameRules {
		return fmt.Errorf("%w: more than %d name rules", ErrInvalid, MaxNameRules)
	}
	e.pattern = pattern
	l.names = append(l.names, e)
	return nil
}

// applyHeaderHints gives every extension rule the header's hints under its
// own, as nopfs does for its rules.
func (l *List) applyHeaderHints() {
	merge := func(e *extRule) {
		if len(l.header.Hints) == 0 {
			return
		}
		if e.hints == nil {
			e.hints = l.header.Hints // shared, read only
			return
		}
		for k, v := range l.header.Hints {
			if _, ok := e.hints[k]; !ok {
				e.hints[k] = v
			}
		}
	}
	for _, rules := range l.sha256 {
		for i := range rules {
			merge(&rules[i])
		}
	}
	for i := range l.names {
		merge(&l.names[i])
	}
}

// Source is the file path or URL the list is known by.
func (l *List) Source() string { return l.source }

// Info describes the list.
func (l *List) Info() Info {
	return Info{Source: l.source, Name: l.header.Name, Description: l.header.Description, Author: l.header.Author,
		Hints: l.header.Hints, Rules: l.rules, Skipped: l.skipped, LineErrors: l.lineErrs}
}

// CID is the list's verdict on the block c: a /ipfs/ rule for its
// multihash (any CID version or codec), or a double-hashed rule for it
// (legacy sha256 of "<CIDv1 base32>/", or the multihash of its base58
// multihash).
func (l *List) CID(c cid.Cid) Match {
	return l.match(l.dl.IsCidBlocked(c), policy.ReasonDenyCID)
}

// Path is the list's verdict on the path subpath below c (an IPFS path
// /ipfs/<c>/<subpath>, subpath slash-separated, "" for c itself), by path
// rules (/ipfs/<cid>/<path>, with * prefixes and exceptions) and double
// hashes of "<base58 multihash>/<path>" or "<CIDv1 base32>/<path>". It does
// not check the CIDs along the path: callers check each block with CID.
func (l *List) Path(c cid.Cid, subpath string) Match {
	subpath = strings.Trim(subpath, "/")
	p := "/ipfs/" + c.String()
	if subpath != "" {
		p += "/" + subpath
	}
	return l.ContentPath(p)
}

// ContentPath is the list's verdict on a content path as a gateway gets
// it: /ipfs/<cid>[/<path>] (see Path) or /ipns/<name>[/<path>] (IPNS and
// DNSLink rules and their double hashes). A path that does not parse is
// never blocked here; the gateway refuses it anyway.
func (l *List) ContentPath(p string) Match {
	pp, err := bpath.NewPath(p)
	if err != nil {
		return Match{}
	}
	return l.match(l.dl.IsPathBlocked(pp), policy.ReasonDenyCID)
}

func (l *List) match(r nopfs.StatusResponse, reason policy.Reason) Match {
	var st Status
	switch r.Status {
	case nopfs.StatusBlocked:
		st = Blocked
	case nopfs.StatusAllowed:
		st = Allowed
	default: // not found, or a path nopfs could not read
		return Match{}
	}
	rule, _, _ := strings.Cut(strings.TrimSpace(r.Entry.RawValue), " ")
	return Match{Status: st, List: l.source, Line: r.Entry.Line, Rule: rule, Reason: reason, Hints: r.Entry.Hints}
}

func (l *List) ext(e extRule, reason policy.Reason) Match {
	st := Blocked
	if e.allow {
		st = Allowed
	}
	return Match{Status: st, List: l.source, Line: e.line, Rule: e.rule, Reason: reason, Hints: e.hints}
}

// SHA256 is the list's verdict on a file whose whole-content sha256 is
// sum (hex): a sha256:<sum> rule, or a /ipfs/ rule for the CID allmende
// announces such a file under (manifest.SHA256CID), whichever comes later
// in the list. A sum that is not 64 hex digits is never blocked.
func (l *List) SHA256(sum string) Match {
	sum = strings.ToLower(sum)
	if !manifest.IsSHA256(sum) {
		return Match{}
	}
	var m Match
	if rules := l.sha256[sum]; len(rules) > 0 {
		m = l.ext(rules[len(rules)-1], policy.ReasonDenySHA256)
	}
	raw, _ := hex.DecodeString(sum)
	if c, err := manifest.SHA256CID(raw); err == nil {
		if byCID := l.CID(c); byCID.Status != NotFound && byCID.Line > m.Line {
			m = byCID
			m.Reason = policy.ReasonDenySHA256
		}
	}
	return m
}

// Name is the list's verdict on the model or dataset org/name: the last
// name: rule whose pattern matches it, compared without regard to case
// (the Hugging Face Hub treats names so).
func (l *List) Name(name string) Match {
	name = strings.ToLower(name)
	for i := len(l.names) - 1; i >= 0; i-- {
		if ok, err := path.Match(l.names[i].pattern, name); err == nil && ok {
			return l.ext(l.names[i], policy.ReasonDenyName)
		}
	}
	return Match{}
}

// Set is an ordered collection of lists, answering for all of them: the
// last list (in order) with a verdict decides, so a later list's exception
// overrides an earlier list's block and the other way round, as IPIP-383
// orders lists. Immutable; safe for concurrent use.
type Set struct {
	lists []*List
}

// NewSet returns the lists as a Set, in the given order.
func NewSet(lists ...*List) *Set { return &Set{lists: append([]*List(nil), lists...)} }

// Lists are the set's lists in order.
func (s *Set) Lists() []*List { return append([]*List(nil), s.lists...) }

func (s *Set) first(ask func(*List) Match) Match {
	for i := len(s.lists) - 1; i >= 0; i-- {
		if m := ask(s.lists[i]); m.Status != NotFound {
			return m
		}
	}
	return Match{}
}

// CID is the set's verdict on the block c (see List.CID).
func (s *Set) CID(c cid.Cid) Match { return s.first(func(l *List) Match { return l.CID(c) }) }

// Path is the set's verdict on the path subpath below c (see List.Path).
func (s *Set) Path(c cid.Cid, subpath string) Match {
	return s.first(func(l *List) Match { return l.Path(c, subpath) })
}

// ContentPath is the set's verdict on a gateway's content path (see
// List.ContentPath).
func (s *Set) ContentPath(p string) Match {
	return s.first(func(l *List) Match { return l.ContentPath(p) })
}

// SHA256 is the set's verdict on a file with whole-file sha256 sum (hex;
// see List.SHA256).
func (s *Set) SHA256(sum string) Match { return s.first(func(l *List) Match { return l.SHA256(sum) }) }

// Name is the set's verdict on the model or dataset name org/name (see
// List.Name).
func (s *Set) Name(name string) Match { return s.first(func(l *List) Match { return l.Name(name) }) }
