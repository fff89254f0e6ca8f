package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/store/storetest"
)

// TestImportSymlinkChains: add keeps links whose whole chain stays inside
// and refuses, naming the link, those that leave.
func TestImportSymlinkChains(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links [][2]string
		ok    bool
	}{
		{"inside chain", []string{"d"}, [][2]string{{"a", "d/b"}, {"d/b", "../file"}}, true},
		{"chain a -> b -> ../../x", []string{"d/e"}, [][2]string{{"a", "d/e/b"}, {"d/e/b", "../../../x"}}, false},
		{"a link up through a link to the top", nil, [][2]string{{"c", "."}, {"a", "c/../x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := storetest.LinkTree(t, tt.dirs, tt.links)
			_, err := store.Import(context.Background(), storetest.New(t).LocalDAG(), top, store.ImportOptions{})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("import: %v", err)
			case !tt.ok && !errors.Is(err, store.ErrLinkEscapes):
				t.Fatalf("import of a tree whose link leaves it: %v, want ErrLinkEscapes", err)
			}
		})
	}
}
