package harness

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// httpTimeout bounds harness HTTP calls to a daemon's API.
const httpTimeout = 10 * time.Second

// APIToken returns the token the daemon requires on its API (it keeps it
// in HOME/api.token), or "" if there is none yet.
func (n *Node) APIToken() string {
	b, err := os.ReadFile(filepath.Join(n.Home, "api.token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// APIGet GETs route (e.g. "/api/v0/stats") from the daemon's API with its
// token, through c (nil: a client with a timeout), and returns the body of
// a 200 answer. Every test that talks to the API directly goes through it.
func (n *Node) APIGet(c *http.Client, route string) ([]byte, error) {
	if c == nil {
		c = &http.Client{Timeout: httpTimeout}
	}
	req, err := http.NewRequest(http.MethodGet, n.API+route, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+n.APIToken())
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", route, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// WriteRandomFile writes size pseudo-random bytes (seeded, so reproducible)
// to path.
func WriteRandomFile(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	if _, err := io.CopyN(f, r, size); err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes data to path, creating parent directories.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TreeDigest maps every entry under root (relative path) to a digest of its
// kind and content, so two trees compare equal iff they hold the same
// files, directories and bytes.
func TreeDigest(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link:" + target
		default:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file:%d:%x", n, h.Sum(nil))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AssertSameTree fails the test unless the trees at want and got are equal.
func AssertSameTree(t testing.TB, want, got string) {
	t.Helper()
	a, b := TreeDigest(t, want), TreeDigest(t, got)
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: want %s, got %q", k, v, b[k])
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: unexpected in output", k)
		}
	}
}

// AssertAbsent fails the test if anything exists at path or at a partial
// output beside it.
func AssertAbsent(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Errorf("%s exists, want nothing there", path)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"*"))
	for _, m := range matches {
		t.Errorf("partial output %s left behind", m)
	}
}

// FilesEqual reports whether two files hold the same bytes.
func FilesEqual(a, b string) (bool, error) {
	x, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	y, err := os.ReadFile(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(x, y), nil
}
