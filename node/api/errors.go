package api

import "errors"

// Error kinds that callers (and the CLI's exit status) tell apart with
// errors.Is. They survive the trip through the local HTTP API. Packages
// below the API keep their own sentinels (store.ErrNoSpace, ...); what
// implements API marks their errors with these kinds where they reach it.
var (
	// ErrBadInput: the request cannot succeed as given (an unparsable CID,
	// a missing path, an output path that exists). The CLI exits with 2.
	ErrBadInput = errors.New("bad input")
	// ErrNotFound: no peer answered for the content in time.
	ErrNotFound = errors.New("not found")
	// ErrNoSpace: a disk is too full for the operation. It is permanent:
	// nothing retries it; the user frees space and asks again.
	ErrNoSpace = errors.New("no space left on device")
	// ErrUnauthorized: the daemon refused the request's API token.
	ErrUnauthorized = errors.New("API token refused")
)

// BadInput marks err as ErrBadInput without changing its message: the one
// way to turn another package's error (an invalid manifest, a path the
// store refuses) into bad input. It returns nil for nil, and err itself if
// it is bad input already.
func BadInput(err error) error { return Mark(err, ErrBadInput) }

// BadInputIf is BadInput(err) if err is one of causes, and err otherwise.
func BadInputIf(err error, causes ...error) error {
	for _, c := range causes {
		if errors.Is(err, c) {
			return BadInput(err)
		}
	}
	return err
}

// Mark returns err marked as kind (one of the kinds above): errors.Is sees
// kind and everything err wraps, and the message is err's. It returns nil
// for nil, and err itself if it is of that kind already.
func Mark(err, kind error) error {
	if err == nil || errors.Is(err, kind) {
		return err
	}
	return marked{err: err, kind: kind}
}

// marked is an error that also counts as its kind.
type marked struct {
	err  error
	kind error
}

func (m marked) Error() string        { return m.err.Error() }
func (m marked) Unwrap() error        { return m.err }
func (m marked) Is(target error) bool { return target == m.kind }
