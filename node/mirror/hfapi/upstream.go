package hfapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/allmende/allmende/node/mirror/upstreamhttp"
	"github.com/allmende/allmende/store/manifest"
)

// The rules for reaching an upstream: what Client sends, where it follows
// redirects and which addresses it dials.
//
//   - Repository names and revisions pass manifest.ValidName and
//     manifest.ValidRevision, file paths manifest.ValidatePath, before a
//     request is built; every path segment is escaped on its own.
//   - Redirects, tokens on redirects and the addresses dialled follow
//     package upstreamhttp (shared with the registry fills): https or the
//     upstream's own origin only, a token to that origin only, non-public
//     addresses only for a non-public upstream.

// Errors of the upstream rules.
var (
	// ErrBadRequest: a repository name, revision or file path breaks the
	// rules of manifest names (400 Bad Request). Nothing was sent upstream.
	ErrBadRequest = errors.New("bad request")
	// ErrRedirectRefused: the upstream redirected where upstreamhttp's
	// rules do not allow (a 502 to the client).
	ErrRedirectRefused = upstreamhttp.ErrRedirectRefused
	// ErrAddressRefused: a connection would have gone to a non-public
	// address upstreamhttp's rules do not allow.
	ErrAddressRefused = upstreamhttp.ErrAddressRefused
)

// repoPath is the escaped /{org}/{name} of a valid repository name.
func repoPath(name string) (string, error) {
	if err := manifest.ValidName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	org, n, _ := strings.Cut(name, "/")
	return "/" + url.PathEscape(org) + "/" + url.PathEscape(n), nil
}

// ValidRef checks a repository name and revision as a request carries them
// (an empty revision or HEAD means main), with the rules of manifests. It
// returns the revision to use.
func ValidRef(name, rev string) (string, error) {
	if err := manifest.ValidName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	rev = normRev(rev)
	if err := manifest.ValidRevision(rev); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return rev, nil
}

// escapePath escapes each segment of a valid file path.
func escapePath(p string) (string, error) {
	if err := manifest.ValidatePath(p); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/"), nil
}
