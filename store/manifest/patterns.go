package manifest

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// MaxNamePatterns bounds the name patterns one trusted publisher key
// carries.
const MaxNamePatterns = 64

// namePatternRE is org/name where each part is made of name characters
// and path.Match wildcards (*, ?, [...]).
var namePatternRE = regexp.MustCompile(`^[A-Za-z0-9._*?\[\]^-]{1,96}/[A-Za-z0-9._*?\[\]^-]{1,96}$`)

// ValidNamePattern checks a pattern of the names a publisher is trusted
// to sign: org/name, where either part may use path.Match wildcards, which
// never match "/" ("acme/*" is every name under acme, "*/*" every name).
func ValidNamePattern(p string) error {
	if !namePatternRE.MatchString(p) {
		return fmt.Errorf("%w: name pattern %q must be org/name, with * ? [...] as wildcards (e.g. acme/*)", ErrInvalid, p)
	}
	if _, err := path.Match(p, "a/b"); err != nil {
		return fmt.Errorf("%w: name pattern %q: %v", ErrInvalid, p, err)
	}
	return nil
}

// MatchName reports whether the org/name name matches one of patterns.
func MatchName(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// OrgPattern is the pattern of every name under name's org: "org/*".
func OrgPattern(name string) string {
	org, _, _ := strings.Cut(name, "/")
	return org + "/*"
}
