package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// onceSize is the file TestFetchKeepsBytesOnce moves: 48 leaves and a bit.
const onceSize = 48<<20 + 4321

// TestFetchKeepsBytesOnce checks where a fetched file's bytes live. By
// default the fetched file holds them and the store records where, so the
// block store grows by the inner nodes only, the node seeds from the file,
// and a file changed after the fetch is never served; with fetch.copy the
// store keeps a copy as well.
func TestFetchKeepsBytesOnce(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, onceSize, 31)
	seeder := harness.NewNode(t)
	seeder.Start()
	root := seeder.Add(src)

	for _, tc := range []struct {
		copy      bool
		minGrowth int64 // block store growth bounds, in bytes
		maxGrowth int64
	}{
		{copy: false, minGrowth: 0, maxGrowth: onceSize / 100},
		{copy: true, minGrowth: onceSize, maxGrowth: 2 * onceSize},
	} {
		t.Run(fmt.Sprintf("fetch.copy=%t", tc.copy), func(t *testing.T) {
			f := harness.NewNode(t, fmt.Sprintf("ALLMENDE_FETCH_COPY=%t", tc.copy))
			f.Start()
			f.MustRun("connect", seeder.TCPAddr())
			before, _ := f.StoreBytes()
			out := filepath.Join(t.TempDir(), "weights.bin")
			f.MustRun("fetch", root, "-o", out)
			if same, err := harness.FilesEqual(src, out); !same {
				t.Fatalf("fetched bytes differ: %v", err)
			}
			after, _ := f.StoreBytes()
			growth := after - before
			t.Logf("block store grew by %d bytes for a %d-byte file", growth, onceSize)
			if growth < tc.minGrowth || growth > tc.maxGrowth {
				t.Errorf("block store grew by %d bytes, want %d..%d", growth, tc.minGrowth, tc.maxGrowth)
			}
			if rep, code := runVerify(t, f); code != 0 {
				t.Errorf("verify after the fetch: exit %d, %+v", code, rep)
			}

			// The fetching node seeds to a third node on its own.
			third := harness.NewNode(t)
			third.Start()
			third.MustRun("connect", f.TCPAddr())
			seeder.Stop()
			defer seeder.Start()
			again := filepath.Join(t.TempDir(), "again.bin")
			third.MustRun("fetch", root, "-o", again)
			if same, err := harness.FilesEqual(src, again); !same {
				t.Fatalf("bytes seeded from the fetched file differ: %v", err)
			}

			// A user edits the fetched file: the node must not serve the
			// changed bytes. Without a copy it has nothing left to serve
			// for that leaf, and verify says so.
			flipByte(t, out, onceSize/2)
			fourth := harness.NewNode(t)
			fourth.Start()
			fourth.MustRun("connect", f.TCPAddr())
			edited := filepath.Join(t.TempDir(), "edited.bin")
			r := fourth.Run("fetch", root, "-o", edited, "--fetch.timeout", "3s")
			if tc.copy {
				if r.Code != 0 {
					t.Fatalf("fetch from a node with a copy: exit %d\n%s", r.Code, r.Stderr)
				}
				if same, _ := harness.FilesEqual(src, edited); !same {
					t.Errorf("served bytes differ from the original")
				}
				return
			}
			if r.Code != 1 {
				t.Errorf("fetch of an edited file's content: exit %d, want 1 (the leaf is gone)\n%s", r.Code, r.Stderr)
			}
			if _, err := os.Lstat(edited); err == nil {
				t.Errorf("%s exists after a failed fetch", edited)
			}
			rep, code := runVerify(t, f)
			t.Logf("verify after the edit: exit %d, missing %d, damaged %v", code, len(rep.Missing), rep.Damaged)
			if code != 1 || len(rep.Damaged) != 1 || rep.Damaged[0] != root {
				t.Errorf("verify after the edit: exit %d, %+v; want exit 1 with %s damaged", code, rep, root)
			}
		})
	}
}

// flipByte inverts one bit of the file at path, at offset off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
