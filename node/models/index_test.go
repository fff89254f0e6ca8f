package models

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/allmende/allmende/store/manifest"
	"github.com/ipfs/go-cid"
)

// testManifests are two models that share a file (the same bytes, so the
// same sha256 and CID), each with a file of its own.
func testManifests(t *testing.T) (a, b *manifest.Manifest) {
	t.Helper()
	file := func(path string, seed byte) manifest.File {
		sum := make([]byte, 32)
		sum[0] = seed
		c, err := manifest.SHA256CID(sum)
		if err != nil {
			t.Fatal(err)
		}
		return manifest.File{Path: path, Size: 1, SHA256: hexOf(sum), CID: c.String()}
	}
	shared := file("tokenizer.json", 1)
	a = &manifest.Manifest{Name: "acme/a", Revision: "main", Commit: "aaaa", Files: []manifest.File{shared, file("a.bin", 2)}}
	b = &manifest.Manifest{Name: "acme/b", Revision: "main", Commit: "bbbb", Files: []manifest.File{shared, file("b.bin", 3)}}
	return a, b
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// testCID is a distinct manifest CID per seed.
func testCID(t *testing.T, seed byte) cid.Cid {
	t.Helper()
	sum := make([]byte, 32)
	sum[31] = seed
	c, err := manifest.SHA256CID(sum)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIndexForget: forgetting one model keeps what another still holds
// (its name, and a file both share, by sha256), and is written to disk;
// a write that fails changes nothing.
func TestIndexForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "models", "index.json")
	x, err := openIndex(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := testManifests(t)
	ca, cb := testCID(t, 1), testCID(t, 2)
	for _, add := range []struct {
		c cid.Cid
		m *manifest.Manifest
	}{{ca, a}, {cb, b}} {
		if err := x.Add(add.c, add.m); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Forget(ca, a); err != nil {
		t.Fatal(err)
	}
	shared, own := a.Files[0], a.Files[1]
	for _, tt := range []struct {
		what string
		ok   bool
		want bool
	}{
		{"the forgotten model's name", has(x.ByName("acme/a", "main")), false},
		{"the forgotten model's commit", has(x.ByName("acme/a", "aaaa")), false},
		{"the other model's name", has(x.ByName("acme/b", "main")), true},
		{"a file only the forgotten model had", hasFile(x.BySHA256(own.SHA256)), false},
		{"a file the other model has too", hasFile(x.BySHA256(shared.SHA256)), true},
	} {
		if tt.ok != tt.want {
			t.Errorf("after forgetting acme/a, %s is found: %v, want %v", tt.what, tt.ok, tt.want)
		}
	}
	if keys := x.SHA256KeysOf(mustCID(t, shared.CID)); len(keys) != 1 {
		t.Errorf("the shared file is announced under %d sha256 keys, want 1", len(keys))
	}
	var onDisk []string
	raw, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(raw, &onDisk) != nil || !slices.Equal(onDisk, []string{cb.String()}) {
		t.Errorf("index file lists %v (%v), want only %s", onDisk, err, cb)
	}

	// An index whose file cannot be written: its directory is a file.
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	x.path = filepath.Join(blocker, "index.json")
	if err := x.Forget(cb, b); err == nil {
		t.Error("Forget reported success though the index could not be written")
	}
	if !has(x.ByName("acme/b", "main")) || !hasFile(x.BySHA256(shared.SHA256)) || !slices.Equal(x.List(), []string{cb.String()}) {
		t.Error("a failed Forget changed the index in memory")
	}
	if err := x.Add(ca, a); err == nil || has(x.ByName("acme/a", "main")) {
		t.Errorf("a failed Add: err %v, and the index has it: %v", err, has(x.ByName("acme/a", "main")))
	}
}

func has(_ cid.Cid, ok bool) bool { return ok }

func hasFile(_ manifest.File, ok bool) bool { return ok }

func mustCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
