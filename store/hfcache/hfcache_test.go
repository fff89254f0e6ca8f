package hfcache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/manifest"
	mdtest "github.com/ipfs/boxo/ipld/merkledag/test"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// writeHFCache builds a cache repository as huggingface_hub leaves it: a
// small git file (blob named by its git blob sha1), a nested LFS file
// (named by its sha256), refs/main without a newline.
func writeHFCache(t *testing.T, root string) (string, map[string][]byte) {
	repo := filepath.Join(root, "models--acme--tiny")
	files := map[string][]byte{"config.json": []byte(`{"x":1}`), "weights/big.bin": []byte(strings.Repeat("w", 100))}
	etags := map[string]string{
		"config.json":     manifest.GitBlobSHA1(files["config.json"]),
		"weights/big.bin": sha(files["weights/big.bin"]),
	}
	for p, content := range files {
		must(t, os.MkdirAll(filepath.Join(repo, "blobs"), 0o755))
		must(t, os.WriteFile(filepath.Join(repo, "blobs", etags[p]), content, 0o644))
		link := filepath.Join(repo, "snapshots", commit, p)
		must(t, os.MkdirAll(filepath.Dir(link), 0o755))
		must(t, os.Symlink(hfcache.LinkTarget(p, etags[p]), link))
	}
	must(t, os.MkdirAll(filepath.Join(repo, "refs"), 0o755))
	must(t, os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644))
	return repo, files
}

func TestImportAndWriteRoundTrip(t *testing.T) {
	repo, files := writeHFCache(t, t.TempDir())
	snap, err := hfcache.Open(repo, "")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Name != "acme/tiny" || snap.Commit != commit || snap.Kind != manifest.KindModel {
		t.Fatalf("snapshot %+v", snap)
	}
	m, err := manifest.Import(context.Background(), mdtest.Mock(), snap.Dir, manifest.ImportOptions{
		Name: snap.Name, Revision: snap.Revision, Commit: snap.Commit, Boundary: snap.RepoDir, ETag: snap.ETag})
	if err != nil {
		t.Fatal(err)
	}
	big, _ := m.Lookup("weights/big.bin")
	if !big.LFS() || big.ETag() != sha(files["weights/big.bin"]) {
		t.Errorf("a blob named by sha256 must stay an LFS file: %+v", big)
	}

	out := t.TempDir()
	snapDir, err := hfcache.Write(out, m, nil, func(f manifest.File, dest string) error {
		return os.WriteFile(dest, files[f.Path], 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if snapDir != filepath.Join(out, "models--acme--tiny", "snapshots", commit) {
		t.Errorf("snapshot dir %s", snapDir)
	}
	assertSameCache(t, repo, filepath.Join(out, "models--acme--tiny"))
}

// assertSameCache walks both trees and compares names, symlink targets and
// file contents.
func assertSameCache(t *testing.T, want, got string) {
	t.Helper()
	walk := func(root string) map[string]string {
		out := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				resolved, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("%s: dangling symlink %s", rel, target)
				}
				out[rel] = "link " + target + " " + string(resolved)
			case d.Type().IsRegular():
				b, _ := os.ReadFile(p)
				out[rel] = "file " + string(b)
			}
			return nil
		})
		return out
	}
	w, g := walk(want), walk(got)
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: got %q, want %q", k, g[k], v)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
	if ref, _ := os.ReadFile(filepath.Join(got, "refs", "main")); string(ref) != commit {
		t.Errorf("refs/main = %q, want the commit without a newline", ref)
	}
}

func TestLinkTarget(t *testing.T) {
	cases := []struct{ path, want, why string }{
		{"a.json", "../../blobs/E", "top level: snapshots/<commit>/ is two levels below the repo"},
		{"d/a.json", "../../../blobs/E", "one more ../ per sub-directory"},
		{"d/e/a.json", "../../../../blobs/E", "two sub-directories"},
	}
	for _, c := range cases {
		if got := hfcache.LinkTarget(c.path, "E"); got != c.want {
			t.Errorf("%s: %s -> %s, want %s", c.why, c.path, got, c.want)
		}
	}
}

func TestOpenRefusesPlainFolder(t *testing.T) {
	if _, err := hfcache.Open(t.TempDir(), ""); err != hfcache.ErrNotCache {
		t.Errorf("err = %v, want ErrNotCache", err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRepoDirName(t *testing.T) {
	cases := []struct{ kind, name, want, why string }{
		{manifest.KindModel, "acme/tiny", "models--acme--tiny", "models"},
		{manifest.KindDataset, "acme/wiki", "datasets--acme--wiki", "datasets have their own prefix"},
	}
	for _, c := range cases {
		if got := hfcache.RepoDirName(c.kind, c.name); got != c.want {
			t.Errorf("%s: %s", c.why, got)
		}
	}
}
