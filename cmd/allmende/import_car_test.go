package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestCARUsage: export and import of CARs refuse what cannot be meant,
// with exit status 2, before any node is opened.
func TestCARUsage(t *testing.T) {
	tests := []struct {
		why, line, says string
	}{
		{"a folder among CARs", "import a.car dir", "dir is not a .car file"},
		{"a folder's flag with a CAR", "import a.car --name acme/x", "--name is for folders"},
		{"--copy with --car", "import --car a b --copy", "--copy is for folders"},
		{"two folders", "import dir1 dir2", "one folder at a time"},
		{"export without -o", "export bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "-o FILE.car is required"},
		{"import of nothing", "import --car", "requires at least 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(append([]string{"--home", t.TempDir()}, strings.Fields(tt.line)...))
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			err := root.ExecuteContext(context.Background())
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%q: err %v (exit %d), want exit 2 saying %q", tt.line, err, exitCode(err), tt.says)
			}
		})
	}
}

// TestIsCARPath: which arguments import reads as CARs without --car.
func TestIsCARPath(t *testing.T) {
	for path, want := range map[string]bool{"a.car": true, "/media/stick/MODEL.CAR": true, "car": false, "a.car/": false, "dir": false, "a.carx": false} {
		if got := isCARPath(path); got != want {
			t.Errorf("isCARPath(%q) = %v, want %v", path, got, want)
		}
	}
}
