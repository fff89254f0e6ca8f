package fsutil_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/store/fsutil"
	"github.com/allmende/allmende/store/storetest"
)

func TestResolveInside(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string
		links [][2]string
		check string // the link to resolve
		want  string // resolved, relative to top; "" means refused
	}{
		{"a plain link to a file inside", nil, [][2]string{{"l", "file"}}, "l", "file"},
		{"a link into a sub-directory and back up stays inside", []string{"d"}, [][2]string{{"d/l", "../file"}}, "d/l", "file"},
		{"a dangling link that stays inside is kept", nil, [][2]string{{"l", "missing/name"}}, "l", "missing/name"},
		{"an inside chain a -> b -> file", []string{"d"}, [][2]string{{"a", "d/b"}, {"d/b", "../file"}}, "a", "file"},
		{"one link straight out", nil, [][2]string{{"l", "../x"}}, "l", ""},
		{"an absolute target", nil, [][2]string{{"l", "/etc/passwd"}}, "l", ""},
		{"the chain a -> b -> ../../x leaves on its second link", []string{"d/e"}, [][2]string{{"a", "d/e/b"}, {"d/e/b", "../../../x"}}, "a", ""},
		// Lexically c/.. is top itself; but c is top, so c/.. is outer.
		{"a link up through a link to the top leaves", nil, [][2]string{{"c", "."}, {"a", "c/../x"}}, "a", ""},
		// Lexically up/../../x leaves; but up is d/e, and d/e/../../x is x.
		{"a link back up from a directory link resolves where the kernel does", []string{"d/e"}, [][2]string{{"up", "d/e"}, {"a", "up/../../x"}}, "a", "x"},
		{"a loop ends at MaxLinkHops", nil, [][2]string{{"a", "b"}, {"b", "a"}}, "a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := storetest.LinkTree(t, tt.dirs, tt.links)
			got, err := fsutil.ResolveInside(top, filepath.Join(top, tt.check))
			if tt.want == "" {
				if !errors.Is(err, fsutil.ErrBadInput) {
					t.Fatalf("resolved to %q, %v; want ErrBadInput", got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(top, tt.want) {
				t.Fatalf("resolved to %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
