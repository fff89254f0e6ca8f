package oci

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The distribution spec's patterns. Go's regexp runs in linear time, and
// lengths are checked before a pattern runs.
var (
	// namePattern is the spec's <name>: path components of lower-case
	// letters and digits, joined inside a component by one '.', one or two
	// '_', or any number of '-'.
	namePattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagPattern is the spec's <reference> as a tag.
	tagPattern = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// sha256Prefix starts every digest this package accepts.
const sha256Prefix = "sha256:"

// ValidName checks a repository name against the spec's pattern and
// MaxNameLength.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength || !namePattern.MatchString(name) {
		return fmt.Errorf("%w name %q: want lower-case path components of letters and digits joined by '.', '_', '__' or '-', at most %d characters",
			ErrInvalid, clip(name), MaxNameLength)
	}
	return nil
}

// ValidTag checks a tag against the spec's pattern (at most MaxTagLength
// characters).
func ValidTag(tag string) error {
	if len(tag) > MaxTagLength || !tagPattern.MatchString(tag) {
		return fmt.Errorf("%w tag %q: want letters, digits, '_', '.' and '-', not starting with '.' or '-', at most %d characters",
			ErrInvalid, clip(tag), MaxTagLength)
	}
	return nil
}

// ParseDigest accepts only sha256 digests: "sha256:" and 64 lower-case hex
// digits.
func ParseDigest(s string) (digest.Digest, error) {
	hex, ok := strings.CutPrefix(s, sha256Prefix)
	if !ok || !isLowerHex64(hex) {
		return "", fmt.Errorf("%w digest %q: want sha256: and 64 lower-case hex digits", ErrInvalid, clip(s))
	}
	return digest.Digest(s), nil
}

// ParseReference reads the reference of a manifest request: a digest if it
// contains a ':' (tags cannot), a tag otherwise.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		return Reference{Digest: d}, err
	}
	if err := ValidTag(s); err != nil {
		return Reference{}, err
	}
	return Reference{Tag: s}, nil
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxQuoted bounds how much of a bad input an error message repeats.
const maxQuoted = 80

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "…"
	}
	return s
}

// route is a parsed request path below /v2/.
type route struct {
	// kind is "base" (/v2/), "manifests", "blobs" or "tags".
	kind string
	name string
	// ref is the raw last segment of a manifests or blobs path.
	ref string
}

// parseRoute splits an escaped request path into name and operation. The
// name is everything between /v2/ and the operation's keyword counted from
// the end, so a repository may have a component called "blobs" or
// "manifests". Escapes ('%') never pass the name and reference checks, so
// the escaped path can be used as it is.
func parseRoute(escaped string) (route, bool) {
	if escaped == "/v2" || escaped == "/v2/" {
		return route{kind: "base"}, true
	}
	rest, ok := strings.CutPrefix(escaped, "/v2/")
	if !ok {
		return route{}, false
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: "tags", name: name}, true
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return route{}, false
	}
	head, ref := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return route{}, false
	}
	name, kind := head[:j], head[j+1:]
	if kind != "manifests" && kind != "blobs" {
		return route{}, false
	}
	return route{kind: kind, name: name, ref: ref}, true
}
