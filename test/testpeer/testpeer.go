// Package testpeer has what the test tree's peer programs (test/liar,
// test/skewpeer) share: a throw-away store to serve from.
package testpeer

import (
	"context"
	"os"

	"github.com/allmende/allmende/store"
)

// TempStore creates and opens a store in a new temporary directory whose
// name starts with prefix. The returned function closes the store and
// removes the directory.
func TempStore(ctx context.Context, prefix string) (*store.Store, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	if err := store.Init(dir); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return st, func() { st.Close(); os.RemoveAll(dir) }, nil
}
