package store

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeTree creates files under dir from a map of relative path to content.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRefusesMissingStore(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(context.Background(), filepath.Join(dir, "nothing"), Options{})
	if !errors.Is(err, ErrNoStore) {
		t.Fatalf("Open of a missing store: got %v, want ErrNoStore", err)
	}
	// A non-empty directory without the marker (say, a mount point whose
	// disk is missing but holds other files) is not taken over.
	writeTree(t, dir, map[string][]byte{"other": []byte("x")})
	if err := Init(dir); err == nil {
		t.Fatal("Init of a non-empty foreign directory succeeded")
	}
}

func TestKnownCIDs(t *testing.T) {
	// These CIDs follow from the unixfs-v1-2025 profile; Kubo with
	// --profile=unixfs-v1-2025 gives the same.
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file is a raw block of nothing", nil, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{"small file is one raw block", []byte("hello\n"), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			nd, err := BuildFile(context.Background(), s.LocalDAG(), bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := nd.Cid().String(); got != tt.want {
				t.Errorf("CID = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestImportExportRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"multi-block file spans several leaves", map[string][]byte{"model.bin": randomBytes(1, 3*ChunkSize+17)}},
		{"directory with nested and empty files", map[string][]byte{
			"config.json":         []byte(`{"a":1}`),
			"empty":               nil,
			"sub/deeper/x.txt":    []byte("nested"),
			".gitattributes":      []byte("*.bin filter=lfs"),
			"weights.safetensors": randomBytes(2, ChunkSize+1),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t)
			src := filepath.Join(t.TempDir(), "src")
			writeTree(t, src, tt.files)
			in := src
			if len(tt.files) == 1 {
				for rel := range tt.files {
					in = filepath.Join(src, rel)
				}
			}
			var read int64
			nd, err := Import(ctx, s.LocalDAG(), in, ImportOptions{Progress: func(n int64) { read += n }})
			if err != nil {
				t.Fatal(err)
			}
			var want int64
			for _, d := range tt.files {
				want += int64(len(d))
			}
			if read != want {
				t.Errorf("progress reported %d bytes, want %d", read, want)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := Export(ctx, s.LocalDAG(), nd.Cid(), out); err != nil {
				t.Fatal(err)
			}
			assertSameTree(t, in, out)
			if _, err := os.Lstat(PartialPath(out)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial output left behind: %v", err)
			}
			// The same input gives the same CID.
			again, err := Import(ctx, s.LocalDAG(), in, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if again.Cid() != nd.Cid() {
				t.Errorf("re-import gave %s, first import %s", again.Cid(), nd.Cid())
			}
		})
	}
}

func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		gp := filepath.Join(got, rel)
		gi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: missing in output: %v", rel, err)
			return nil
		}
		if d.IsDir() != gi.IsDir() {
			t.Errorf("%s: directory-ness differs", rel)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(gp)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: content differs (%d vs %d bytes)", rel, len(a), len(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportRefuses(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	dir := t.TempDir()
	escaping := filepath.Join(dir, "escaping")
	writeTree(t, escaping, map[string][]byte{"a": []byte("a")})
	if err := os.Symlink("../../etc/passwd", filepath.Join(escaping, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"a missing path is the caller's mistake", filepath.Join(dir, "missing")},
		{"a symlink leaving the tree would export outside the destination", escaping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Import(ctx, s.LocalDAG(), tt.path, ImportOptions{}); !errors.Is(err, ErrBadInput) {
				t.Errorf("got %v, want ErrBadInput", err)
			}
		})
	}
}

func TestInternalSymlinkRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, map[string][]byte{"blobs/abc": []byte("weights")})
	if err := os.MkdirAll(filepath.Join(src, "snap"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../blobs/abc", filepath.Join(src, "snap", "model.bin")); err != nil {
		t.Fatal(err)
	}
	nd, err := Import(ctx, s.LocalDAG(), src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s.LocalDAG(), nd.Cid(), out); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(out, "snap", "model.bin"))
	if err != nil || target != "../blobs/abc" {
		t.Fatalf("symlink = %q, %v", target, err)
	}
}

func TestExportFailsWhole(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	src := filepath.Join(t.TempDir(), "f")
	writeTree(t, filepath.Dir(src), map[string][]byte{"f": randomBytes(3, 2*ChunkSize)})
	nd, err := Import(ctx, s.LocalDAG(), src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Remove one leaf: the export must fail and leave nothing behind.
	leaf := nd.Links()[1].Cid
	if err := s.Blockstore().DeleteBlock(ctx, leaf); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s.LocalDAG(), nd.Cid(), out); err == nil {
		t.Fatal("export with a missing block succeeded")
	}
	for _, p := range []string{out, PartialPath(out)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed export", p)
		}
	}
	// An existing destination is never overwritten.
	if err := os.WriteFile(out, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, s.LocalDAG(), nd.Cid(), out); !errors.Is(err, ErrExists) {
		t.Errorf("export onto an existing file: got %v, want ErrExists", err)
	}
}

func TestPinsAndGC(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"keep": randomBytes(4, 2*ChunkSize+5), "drop": randomBytes(5, 2*ChunkSize)})
	keep, err := Import(ctx, s.LocalDAG(), filepath.Join(src, "keep"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	drop, err := Import(ctx, s.LocalDAG(), filepath.Join(src, "drop"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, keep.Cid(), "keep"); err != nil {
		t.Fatal(err)
	}
	pins, err := s.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].CID != keep.Cid() || pins[0].Name != "keep" || pins[0].Size != 2*ChunkSize+5 {
		t.Fatalf("pins = %+v", pins)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// drop: a root and two leaves go; keep: a root and three leaves stay.
	if res.Removed != 3 || res.Kept != 4 || res.Freed < 2*ChunkSize {
		t.Errorf("gc = %+v, want 3 removed, 4 kept", res)
	}
	if has, _ := s.Blockstore().Has(ctx, drop.Cid()); has {
		t.Error("unpinned root survived gc")
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Export(ctx, s.LocalDAG(), keep.Cid(), out); err != nil {
		t.Fatalf("pinned content damaged by gc: %v", err)
	}
	if err := s.Unpin(ctx, keep.Cid()); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(ctx, keep.Cid()); !errors.Is(err, ErrNotFound) {
		t.Errorf("second unpin: got %v, want ErrNotFound", err)
	}
	if res, err := s.GC(ctx); err != nil || res.Kept != 0 {
		t.Errorf("gc after unpin = %+v, %v; want nothing kept", res, err)
	}
}

func TestPinsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, dir, Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "f")
	writeTree(t, filepath.Dir(src), map[string][]byte{"f": []byte("persist me")})
	nd, err := Import(ctx, s.LocalDAG(), src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, nd.Cid(), "f"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok, err := s.IsPinned(ctx, nd.Cid())
	if err != nil || !ok {
		t.Fatalf("pin lost across reopen: %v %v", ok, err)
	}
}

// TestPinWhileGCWaits checks the locking order every writer follows: hold
// PinLock, write blocks, Pin, unlock, while a GC waits for its lock. Pin
// must not take the (read) lock again: with a GC waiting, that deadlocked.
func TestPinWhileGCWaits(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	src := filepath.Join(t.TempDir(), "f")
	writeTree(t, filepath.Dir(src), map[string][]byte{"f": randomBytes(6, ChunkSize+1)})
	unlock := s.Blockstore().PinLock(ctx)
	nd, err := Import(ctx, s.LocalDAG(), src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gcDone := make(chan error, 1)
	go func() { _, err := s.GC(ctx); gcDone <- err }()
	time.Sleep(50 * time.Millisecond) // let GC block on its lock
	pinned := make(chan error, 1)
	go func() { pinned <- s.Pin(ctx, nd.Cid(), "f") }()
	select {
	case err := <-pinned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pin blocked behind a waiting GC while its caller held PinLock")
	}
	unlock.Unlock(ctx)
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.IsPinned(ctx, nd.Cid()); !ok {
		t.Error("the pin did not survive the GC")
	}
}
