package license

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrDenied marks an error refusing something for its licence.
var ErrDenied = errors.New("refused by the licence policy")

// ErrInvalid means a policy setting is malformed.
var ErrInvalid = errors.New("invalid licence policy")

// Settings for licences the policy cannot name (policy.licenses.unknown).
const (
	UnknownAllow = "allow"
	UnknownDeny  = "deny"
)

// MaxPatterns bounds the allow and deny lists together.
const MaxPatterns = 256

// Policy says which licences a node re-seeds and fills: policy.licenses.
// The zero value allows everything. Immutable; safe for concurrent use.
type Policy struct {
	allow, deny []string // lower-case patterns
	denyUnknown bool
}

// NewPolicy builds a policy from the config's lists of SPDX ids (a Hub tag
// is normalised: "apache-2.0" means Apache-2.0) or patterns with the
// wildcards * ? [...] ("CC-BY-NC-*"), matched without regard to case, and
// the setting for unknown licences (UnknownAllow, UnknownDeny, or "" for
// allow).
func NewPolicy(allow, deny []string, unknown string) (*Policy, error) {
	if len(allow)+len(deny) > MaxPatterns {
		return nil, fmt.Errorf("%w: %d licence patterns, at most %d", ErrInvalid, len(allow)+len(deny), MaxPatterns)
	}
	p := &Policy{}
	switch strings.ToLower(strings.TrimSpace(unknown)) {
	case "", UnknownAllow:
	case UnknownDeny:
		p.denyUnknown = true
	default:
		return nil, fmt.Errorf("%w: policy.licenses.unknown %q: want allow or deny", ErrInvalid, unknown)
	}
	var err error
	if p.allow, err = patterns("policy.licenses.allow", allow); err != nil {
		return nil, err
	}
	if p.deny, err = patterns("policy.licenses.deny", deny); err != nil {
		return nil, err
	}
	return p, nil
}

func patterns(key string, in []string) ([]string, error) {
	var out []string
	for _, raw := range in {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		if !strings.ContainsAny(s, "*?[") {
			if s = Normalize(s); s == "" {
				return nil, fmt.Errorf("%w: %s %q: an unknown licence is set by policy.licenses.unknown", ErrInvalid, key, raw)
			}
		}
		s = strings.ToLower(s)
		if len(s) > MaxIDLen {
			return nil, fmt.Errorf("%w: %s %q: longer than %d bytes", ErrInvalid, key, raw, MaxIDLen)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrInvalid, key, raw, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Decision is the policy's verdict on a licence.
type Decision struct {
	Allowed bool
	// License is the licence decided on, normalised ("" if unknown).
	License string
	// Why says which setting decided, for messages and logs.
	Why string
}

// Err is nil if the decision allows; otherwise a *DeniedError about what.
func (d Decision) Err(what string) error {
	if d.Allowed {
		return nil
	}
	return &DeniedError{What: what, Decision: d}
}

// DeniedError refuses something for its licence; errors.Is(err,
// ErrDenied) holds.
type DeniedError struct {
	What     string
	Decision Decision
}

func (e *DeniedError) Error() string { return e.What + ": " + e.Decision.Why }

// Unwrap makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Decide says whether the policy allows the licence expr: one licence (as
// a manifest or card has it, normalised here), or an SPDX expression of
// licences joined by OR (allowed if any alternative is) and AND (allowed
// if every part is), without parentheses. A licence is denied when it
// matches a deny pattern, or when allow patterns exist and it matches
// none; an unknown one as policy.licenses.unknown says.
func (p *Policy) Decide(expr string) Decision {
	alts := splitExpr(expr, " OR ")
	var last Decision
	for _, alt := range alts {
		last = p.decideAll(splitExpr(alt, " AND "))
		if last.Allowed {
			return last
		}
	}
	return last
}

// decideAll allows a conjunction if it allows every part.
func (p *Policy) decideAll(parts []string) Decision {
	var d Decision
	for _, part := range parts {
		if d = p.decideOne(part); !d.Allowed {
			return d
		}
	}
	if len(parts) > 1 {
		ids := make([]string, len(parts))
		for i, part := range parts {
			ids[i] = Normalize(part)
		}
		d.License = strings.Join(ids, " AND ")
	}
	return d
}

func (p *Policy) decideOne(tag string) Decision {
	id := Normalize(tag)
	low := strings.ToLower(id)
	switch {
	case id == "" && p.denyUnknown:
		return Decision{Why: "the licence is unknown and policy.licenses.unknown is deny"}
	case id == "":
		return Decision{Allowed: true, Why: "the licence is unknown and policy.licenses.unknown is allow"}
	}
	if pat, ok := matchAny(p.deny, low); ok {
		return Decision{License: id, Why: fmt.Sprintf("licence %s is denied by policy.licenses.deny (%s)", id, pat)}
	}
	if len(p.allow) == 0 {
		return Decision{Allowed: true, License: id, Why: "no policy.licenses.allow list: every licence not denied is allowed"}
	}
	if pat, ok := matchAny(p.allow, low); ok {
		return Decision{Allowed: true, License: id, Why: fmt.Sprintf("licence %s is allowed by policy.licenses.allow (%s)", id, pat)}
	}
	return Decision{License: id, Why: fmt.Sprintf("licence %s is not in policy.licenses.allow", id)}
}

func matchAny(patterns []string, id string) (string, bool) {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, id); ok {
			return pat, true
		}
	}
	return "", false
}

// splitExpr splits an expression at sep (an ASCII word between spaces,
// in any case), at most MaxExprTerms terms; the rest stays in the last.
func splitExpr(expr, sep string) []string {
	var out []string
	for len(out) < MaxExprTerms-1 {
		i := indexASCIIFold(expr, sep)
		if i < 0 {
			break
		}
		out = append(out, expr[:i])
		expr = expr[i+len(sep):]
	}
	return append(out, expr)
}

// indexASCIIFold is strings.Index ignoring ASCII case; byte offsets stay
// those of s whatever else s holds.
func indexASCIIFold(s, sep string) int {
	for i := 0; i+len(sep) <= len(s); i++ {
		j := 0
		for j < len(sep) && lowerASCII(s[i+j]) == lowerASCII(sep[j]) {
			j++
		}
		if j == len(sep) {
			return i
		}
	}
	return -1
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
