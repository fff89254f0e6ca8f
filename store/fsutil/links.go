package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBadInput marks errors caused by what the caller asked for (a path
// that leaves its tree), as opposed to failures. store.ErrBadInput is the
// same error.
var ErrBadInput = errors.New("bad input")

// MaxLinkHops bounds the symlinks followed while resolving one link, as
// the kernel's MAXSYMLINKS (40) does: a longer chain is a loop.
const MaxLinkHops = 40

// ErrLinkEscapes means a symlink resolves, after following the links in
// its chain, to a location outside the directory it belongs to.
var ErrLinkEscapes = errors.New("symlink leaves the directory")

// ResolveInside follows the symlink at link, which lies under the
// directory root, the way the kernel would: component by component, each
// ".." applied to the directory reached so far, each symlink met on the way
// (under root, on disk) replaced by its target, up to MaxLinkHops links.
// It never looks at anything outside root: a step that would leave root,
// through "..", an absolute target, or a link in the chain, fails with
// ErrLinkEscapes (and ErrBadInput) naming link and the target that left.
// Components that do not exist are taken as they stand, so a dangling link
// that stays inside is accepted. It returns the resolved path.
//
// root must be absolute and clean; link must be under it, and the
// directories between root and link must not be symlinks (an importer
// walking root reaches link only through real directories).
func ResolveInside(root, link string) (string, error) {
	rel, err := filepath.Rel(root, filepath.Dir(link))
	if err != nil || !isLocalPath(rel) {
		return "", fmt.Errorf("%s: %w: %w: not under %s", link, ErrBadInput, ErrLinkEscapes, root)
	}
	r := linkResolver{root: root, link: link}
	for _, c := range splitPath(rel) {
		r.stack = append(r.stack, c)
	}
	todo := []string{filepath.Base(link)}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		more, err := r.step(c)
		if err != nil {
			return "", err
		}
		todo = append(more, todo...)
	}
	return filepath.Join(append([]string{root}, r.stack...)...), nil
}

// linkResolver is the state of one ResolveInside: the real directories
// reached below root and the links followed.
type linkResolver struct {
	root, link string
	stack      []string
	hops       int
}

// step applies one path component and returns the components a symlink
// there expands to (nil for anything else).
func (r *linkResolver) step(c string) ([]string, error) {
	switch c {
	case "", ".":
		return nil, nil
	case "..":
		if len(r.stack) == 0 {
			return nil, r.escapes("..")
		}
		r.stack = r.stack[:len(r.stack)-1]
		return nil, nil
	}
	p := filepath.Join(append(append([]string{r.root}, r.stack...), c)...)
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		// A real entry, or one that does not exist (a dangling link's
		// remainder is taken literally).
		r.stack = append(r.stack, c)
		return nil, nil
	}
	if r.hops++; r.hops > MaxLinkHops {
		return nil, fmt.Errorf("%s: %w: more than %d symlinks in its chain (a loop?)", r.link, ErrBadInput, MaxLinkHops)
	}
	target, err := os.Readlink(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.link, err)
	}
	if filepath.IsAbs(target) {
		return nil, r.escapes(target)
	}
	return splitPath(target), nil
}

func (r *linkResolver) escapes(at string) error {
	target, _ := os.Readlink(r.link)
	return fmt.Errorf("symlink %s -> %s: %w: %w %s (reached %q following its chain)", r.link, target, ErrBadInput, ErrLinkEscapes, r.root, at)
}

// splitPath splits a relative path into its components.
func splitPath(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(filepath.ToSlash(p), "/")
}

// isLocalPath reports whether the relative path rel stays where it starts
// (no leading "..", not absolute).
func isLocalPath(rel string) bool {
	return rel == "." || filepath.IsLocal(rel)
}
