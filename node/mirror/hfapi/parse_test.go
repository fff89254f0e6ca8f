package hfapi

import (
	"path"
	"strings"
	"testing"
)

func TestParseFileRequest(t *testing.T) {
	tests := []struct {
		name    string
		escaped string
		ok      bool
		want    fileRequest
	}{
		{"plain model file", "/org/m/resolve/main/a/b.bin", true, fileRequest{kind: Model, name: "org/m", op: "resolve", rev: "main", path: "a/b.bin"}},
		{"revision with an encoded slash stays one revision", "/org/m/resolve/refs%2Fpr%2F1/x", true, fileRequest{kind: Model, name: "org/m", op: "resolve", rev: "refs/pr/1", path: "x"}},
		{"dataset prefix", "/datasets/org/d/raw/v1/x.csv", true, fileRequest{kind: Dataset, name: "org/d", op: "raw", rev: "v1", path: "x.csv"}},
		{"unknown operation", "/org/m/blob/main/x", false, fileRequest{}},
		{"no file path", "/org/m/resolve/main", false, fileRequest{}},
		{"dot-dot segment", "/org/m/resolve/main/../x", false, fileRequest{}},
		{"encoded NUL", "/org/m/resolve/main/a%00b", false, fileRequest{}},
		{"empty segment", "/org/m/resolve/main/a//b", false, fileRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseFileRequest(tt.escaped)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseFileRequest checks that no URL path yields a file path that
// could leave the repository.
func FuzzParseFileRequest(f *testing.F) {
	for _, s := range []string{"/org/m/resolve/main/a/b", "/datasets/o/d/raw/r%2Fx/..%2F..", "/a/b/resolve/c/%2e%2e/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		req, ok := parseFileRequest(escaped)
		if !ok {
			return
		}
		if req.path == "" || path.IsAbs(req.path) || path.Clean(req.path) != req.path ||
			req.path == ".." || strings.HasPrefix(req.path, "../") || strings.ContainsRune(req.path, 0) {
			t.Fatalf("unsafe path %q from %q", req.path, escaped)
		}
	})
}
