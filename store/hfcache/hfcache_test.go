package hfcache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/manifest"
	"github.com/allmende/allmende/store/storetest"
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
	m, err := manifest.Import(context.Background(), storetest.MemDAG(), snap.Dir, manifest.ImportOptions{
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
	assertTree(t, filepath.Join(out, "models--acme--tiny"), m)
}

// assertTree checks trees/<commit>.json of the cache repository dir: the
// format huggingface_hub reads, every file of m with its size and git blob
// id, and the sha256 and size of LFS files.
func assertTree(t *testing.T, dir string, m *manifest.Manifest) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "trees", m.Commit+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var tree struct {
		Format int `json:"format_version"`
		Files  map[string]struct {
			Size      uint64  `json:"size"`
			BlobID    string  `json:"blob_id"`
			LFSSHA256 string  `json:"lfs_sha256"`
			LFSSize   *uint64 `json:"lfs_size"`
		} `json:"files"`
	}
	if err := json.Unmarshal(raw, &tree); err != nil || tree.Format != 1 || len(tree.Files) != len(m.Files) {
		t.Fatalf("trees/%s.json: format %d, %d files, %v; want format 1, %d files", m.Commit, tree.Format, len(tree.Files), err, len(m.Files))
	}
	for _, f := range m.Files {
		e := tree.Files[f.Path]
		wantSHA := ""
		if f.LFS() {
			wantSHA = f.SHA256
		}
		if e.Size != f.Size || e.BlobID != f.GitOID() || e.LFSSHA256 != wantSHA || (f.LFS() != (e.LFSSize != nil)) {
			t.Errorf("trees entry %s = %+v, want size %d, blob %s, lfs sha256 %q", f.Path, e, f.Size, f.GitOID(), wantSHA)
		}
	}
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
	for k := range g {
		if strings.HasPrefix(k, "trees"+string(filepath.Separator)) {
			delete(g, k) // checked by assertTree
		}
	}
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

// TestWriteChecksReusedBlobs: a blob already in the cache is kept only if
// it holds the content its name promises; one of the right size but other
// bytes (or a symlink to a file elsewhere) is written again.
func TestWriteChecksReusedBlobs(t *testing.T) {
	lfs := []byte(strings.Repeat("w", 100))
	small := []byte(`{"x":1}`)
	m := &manifest.Manifest{Version: manifest.Version, Kind: manifest.KindModel, Name: "acme/tiny", Revision: "main", Commit: commit,
		Files: []manifest.File{
			{Path: "weights/big.bin", Size: uint64(len(lfs)), SHA256: sha(lfs)},
			{Path: "config.json", Size: uint64(len(small)), SHA256: sha(small), BlobSHA1: manifest.GitBlobSHA1(small)},
		}}
	content := map[string][]byte{"weights/big.bin": lfs, "config.json": small}
	tests := []struct {
		name    string
		plant   func(t *testing.T, blob string, want []byte) // what lies at the blob's path before
		written bool
	}{
		{"no blob yet", func(*testing.T, string, []byte) {}, true},
		{"the right blob is reused", func(t *testing.T, blob string, want []byte) {
			must(t, os.WriteFile(blob, want, 0o644))
		}, false},
		{"same size, other bytes: replaced", func(t *testing.T, blob string, want []byte) {
			must(t, os.WriteFile(blob, []byte(strings.Repeat("X", len(want))), 0o644))
		}, true},
		{"a symlink to the right bytes elsewhere: replaced by a file", func(t *testing.T, blob string, want []byte) {
			elsewhere := filepath.Join(t.TempDir(), "elsewhere")
			must(t, os.WriteFile(elsewhere, want, 0o644))
			must(t, os.Symlink(elsewhere, blob))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			blobs := filepath.Join(cache, "models--acme--tiny", "blobs")
			must(t, os.MkdirAll(blobs, 0o755))
			for _, f := range m.Files {
				tt.plant(t, filepath.Join(blobs, f.ETag()), content[f.Path])
			}
			var written []string
			_, err := hfcache.Write(cache, m, nil, func(f manifest.File, dest string) error {
				written = append(written, f.Path)
				return os.WriteFile(dest, content[f.Path], 0o644)
			})
			if err != nil {
				t.Fatal(err)
			}
			if (len(written) == len(m.Files)) != tt.written || (len(written) != 0 && len(written) != len(m.Files)) {
				t.Errorf("blobs written: %q, want all: %v", written, tt.written)
			}
			for _, f := range m.Files {
				blob := filepath.Join(blobs, f.ETag())
				fi, err := os.Lstat(blob)
				got, _ := os.ReadFile(blob)
				if err != nil || !fi.Mode().IsRegular() || string(got) != string(content[f.Path]) {
					t.Errorf("%s: blob is %v (%v) holding %q", f.Path, fi, err, got)
				}
			}
		})
	}
}

// TestDoubleDashNames: huggingface_hub names the folder of org/name
// models--org--name, so a name with "--" could share a folder with another
// (a--b/c and a/b--c): such names are refused on write and on import.
func TestDoubleDashNames(t *testing.T) {
	cache := t.TempDir()
	for _, name := range []string{"a--b/c", "a/b--c"} {
		m := &manifest.Manifest{Version: manifest.Version, Kind: manifest.KindModel, Name: name, Revision: "main", Commit: commit}
		if _, err := hfcache.Write(cache, m, nil, nil); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("write %s: err = %v, want ErrInvalid", name, err)
		}
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("refused writes left %v", entries)
	}
	repo := filepath.Join(t.TempDir(), "models--a--b--c")
	must(t, os.MkdirAll(filepath.Join(repo, "snapshots", commit), 0o755))
	if _, err := hfcache.Open(repo, commit); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("open %s: err = %v, want ErrInvalid (which of a--b/c and a/b--c is it?)", repo, err)
	}
}
