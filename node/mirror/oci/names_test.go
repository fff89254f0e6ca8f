package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		why  string
		name string
		ok   bool
	}{
		{"Ollama's library namespace", "library/llama3.2", true},
		{"one component", "tiny", true},
		{"separators inside a component", "a.b/c_d/e__f/g---h", true},
		{"the longest name", strings.Repeat("a", MaxNameLength), true},
		{"one more", strings.Repeat("a", MaxNameLength+1), false},
		{"empty", "", false},
		{"upper case", "Library/x", false},
		{"three underscores", "a___b", false},
		{"a separator at the end", "a-", false},
		{"a leading slash", "/a", false},
		{"an empty component", "a//b", false},
		{"dot-dot", "a/../b", false},
		{"a dot component", "a/./b", false},
		{"an escape", "a%2fb", false},
		{"a colon", "a:b", false},
		{"NUL", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			err := ValidName(tt.name)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	tests := []struct {
		why  string
		ref  string
		want Reference
		ok   bool
	}{
		{"a tag", "latest", Reference{Tag: "latest"}, true},
		{"Ollama's size tags", "1.5b-q4_K_M", Reference{Tag: "1.5b-q4_K_M"}, true},
		{"a tag may start with '_'", "_x", Reference{Tag: "_x"}, true},
		{"the longest tag", strings.Repeat("t", MaxTagLength), Reference{Tag: strings.Repeat("t", MaxTagLength)}, true},
		{"one more", strings.Repeat("t", MaxTagLength+1), Reference{}, false},
		{"a tag starting with '.'", ".x", Reference{}, false},
		{"an empty tag", "", Reference{}, false},
		{"a sha256 digest", "sha256:" + hex, Reference{Digest: digest.Digest("sha256:" + hex)}, true},
		{"sha512", "sha512:" + hex + hex, Reference{}, false},
		{"upper-case hex", "sha256:" + strings.ToUpper(hex), Reference{}, false},
		{"one digit short", "sha256:" + hex[1:], Reference{}, false},
		{"one digit long", "sha256:" + hex + "0", Reference{}, false},
		{"not hex", "sha256:" + strings.Repeat("g", 64), Reference{}, false},
		{"a digest in Ollama's file spelling is just a tag", "sha256-" + hex, Reference{Tag: "sha256-" + hex}, true},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, err := ParseReference(tt.ref)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseReference(%q) = %+v, %v; want %+v, ok=%v", tt.ref, got, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		why  string
		path string
		want route
		ok   bool
	}{
		{"base", "/v2/", route{kind: "base"}, true},
		{"base without slash", "/v2", route{kind: "base"}, true},
		{"a manifest", "/v2/library/tiny/manifests/latest", route{kind: "manifests", name: "library/tiny", ref: "latest"}, true},
		{"a blob", "/v2/a/b/c/blobs/sha256:00", route{kind: "blobs", name: "a/b/c", ref: "sha256:00"}, true},
		{"tags", "/v2/a/tags/list", route{kind: "tags", name: "a"}, true},
		{"a component called manifests", "/v2/a/manifests/manifests/x", route{kind: "manifests", name: "a/manifests", ref: "x"}, true},
		{"outside /v2", "/v3/a/manifests/x", route{}, false},
		{"a prefix of /v2", "/v22/a/manifests/x", route{}, false},
		{"catalog", "/v2/_catalog", route{}, false},
		{"an unknown operation", "/v2/a/referrers/sha256:00", route{}, false},
		{"no name", "/v2/manifests/x", route{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, ok := parseRoute(tt.path)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzRoute: whatever path a client sends, parsing it and checking its
// parts never panics, and what passes the checks is a clean name and a tag
// or sha256 digest that cannot step out of a directory or an URL path.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/library/tiny/manifests/latest", "/v2/a/blobs/sha256:" + strings.Repeat("a", 64),
		"/v2/a/tags/list", "/v2/a/../b/manifests/x", "/v2/a%2fb/manifests/x", "/v2//manifests/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseRoute(path)
		if !ok || rt.kind == "base" || ValidName(rt.name) != nil {
			return
		}
		for _, c := range strings.Split(rt.name, "/") {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "%:\\\x00") {
				t.Fatalf("name %q passed with component %q", rt.name, c)
			}
		}
		if rt.kind == "tags" {
			return
		}
		ref, err := ParseReference(rt.ref)
		if err != nil {
			return
		}
		s := ref.String()
		if strings.ContainsAny(s, "/%\\\x00") || s == "." || s == ".." || s == "" {
			t.Fatalf("reference %q passed", s)
		}
		if ref.Digest != "" && (len(s) != len(sha256Prefix)+64 || ref.Digest.Validate() != nil) {
			t.Fatalf("digest %q passed", s)
		}
	})
}
