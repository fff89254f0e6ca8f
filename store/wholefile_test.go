package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// importInPlace imports the file at path with no-copy leaves, as package
// manifest does, and returns its root and the file's state from before
// the read.
func importInPlace(t *testing.T, s *Store, path string) (cid.Cid, FileState) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := FileStateOf(path, f)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	rf, err := files.NewReaderPathFile(path, f, st)
	if err != nil {
		t.Fatal(err)
	}
	params := helpers.DagBuilderParams{Dagserv: s.LocalDAG(), Maxlinks: LinksPerNode, RawLeaves: true,
		CidBuilder: uio.UnixFS_v1_2025.CidBuilder(), NoCopy: true}
	db, err := params.New(chunker.NewSizeSplitter(rf, ChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return nd.Cid(), before
}

// writeSettled writes data to path and waits out the racy window, as any
// file written well before its import.
func writeSettled(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(racyWindow + 20*time.Millisecond)
}

func readWhole(t *testing.T, s *Store, root cid.Cid) ([]byte, error) {
	t.Helper()
	f, err := s.OpenWholeFile(context.Background(), root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b, nil
}

func TestWholeFileServedOnlyWhileVerified(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{5 << 20, 3<<20 + 17, 1000} { // several leaves, a short last leaf, one raw leaf
		s := openTestStore(t)
		path := filepath.Join(t.TempDir(), "weights.bin")
		data := randomBytes(uint64(size), size)
		writeSettled(t, path, data)
		root, before := importInPlace(t, s, path)

		if _, err := readWhole(t, s, root); !errors.Is(err, ErrUnverified) {
			t.Fatalf("%d bytes: before MarkVerified: err %v, want ErrUnverified", size, err)
		}
		if err := s.MarkVerified(ctx, root, before); err != nil {
			t.Fatal(err)
		}
		if got, err := readWhole(t, s, root); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: verified file: err %v, same bytes %v", size, err, bytes.Equal(got, data))
		}

		// Touched, content the same: unverified until re-verified.
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		if _, err := readWhole(t, s, root); !errors.Is(err, ErrUnverified) {
			t.Fatalf("%d bytes: touched file: err %v, want ErrUnverified", size, err)
		}
		time.Sleep(racyWindow + 20*time.Millisecond)
		if err := s.VerifyWholeFile(ctx, root); err != nil {
			t.Fatalf("%d bytes: re-verify of a touched file: %v", size, err)
		}
		if got, err := readWhole(t, s, root); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: re-verified file: err %v", size, err)
		}

		// Changed in place, size and mtime kept: never handed out again.
		changed := bytes.Clone(data)
		changed[len(changed)/2] ^= 0xff
		writeSettled(t, path, changed)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		if _, err := readWhole(t, s, root); !errors.Is(err, ErrUnverified) {
			t.Fatalf("%d bytes: changed file: err %v, want ErrUnverified", size, err)
		}
		if err := s.VerifyWholeFile(ctx, root); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: verify of a changed file: err %v, want ErrCorrupt", size, err)
		}
		if _, err := readWhole(t, s, root); !errors.Is(err, ErrNotWhole) {
			t.Fatalf("%d bytes: changed file after verify: err %v, want ErrNotWhole", size, err)
		}
	}
}

func TestWholeFileRefusals(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	dir := t.TempDir()

	t.Run("a file read right after it changed is not marked", func(t *testing.T) {
		path := filepath.Join(dir, "fresh.bin")
		if err := os.WriteFile(path, randomBytes(1, 2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		root, before := importInPlace(t, s, path)
		if err := s.MarkVerified(ctx, root, before); !errors.Is(err, ErrUnverified) {
			t.Errorf("racy state: err %v, want ErrUnverified", err)
		}
	})

	t.Run("a file that changed during the read is not marked", func(t *testing.T) {
		path := filepath.Join(dir, "moving.bin")
		writeSettled(t, path, randomBytes(2, 2<<20))
		root, before := importInPlace(t, s, path)
		if err := os.WriteFile(path, randomBytes(3, 2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkVerified(ctx, root, before); !errors.Is(err, ErrUnverified) {
			t.Errorf("changed file: err %v, want ErrUnverified", err)
		}
	})

	t.Run("a copied import is not held in a file", func(t *testing.T) {
		nd, err := BuildFile(ctx, s.LocalDAG(), bytes.NewReader(randomBytes(4, 3<<20)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenWholeFile(ctx, nd.Cid()); !errors.Is(err, ErrNotWhole) {
			t.Errorf("copied file: err %v, want ErrNotWhole", err)
		}
	})

	t.Run("a directory is not a file", func(t *testing.T) {
		sub := filepath.Join(dir, "tree")
		writeTree(t, sub, map[string][]byte{"a": []byte("a")})
		nd, err := Import(ctx, s.LocalDAG(), sub, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenWholeFile(ctx, nd.Cid()); !errors.Is(err, ErrNotWhole) {
			t.Errorf("directory: err %v, want ErrNotWhole", err)
		}
	})

	t.Run("a file whose leaves are held in another is refused", func(t *testing.T) {
		// b repeats a's second MiB: that leaf is already held, in a, so
		// b is not whole in b, while a stays whole.
		a, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
		data := randomBytes(5, 3<<20)
		writeSettled(t, a, data)
		writeSettled(t, b, data[1<<20:2<<20])
		rootA, beforeA := importInPlace(t, s, a)
		rootB, beforeB := importInPlace(t, s, b)
		for _, m := range []struct {
			root   cid.Cid
			before FileState
		}{{rootA, beforeA}, {rootB, beforeB}} {
			if err := s.MarkVerified(ctx, m.root, m.before); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.OpenWholeFile(ctx, rootB); !errors.Is(err, ErrNotWhole) {
			t.Errorf("leaf held in another file: err %v, want ErrNotWhole", err)
		}
		if got, err := readWhole(t, s, rootA); err != nil || !bytes.Equal(got, data) {
			t.Errorf("the file holding the shared leaf: err %v", err)
		}
	})
}
