package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// Sizes for the full-disk test: the store (and the outputs, unless the
// store keeps copies) live on a diskSize tmpfs that a filler file shrinks
// so each of two files fits alone but not both.
const (
	diskSize   = "64m"
	tooBig     = 96 << 20
	halfFit    = 24 << 20
	fillerSize = 24 << 20
	// noSpace is what every full-disk error says.
	noSpace = "no space left on device"
)

// TestDiskFull runs the full-disk scenarios for both ways a fetch keeps a
// file: held once in the output file (the default; the output and the
// store share the small disk) and copied into the store (fetch.copy; the
// outputs live elsewhere, so the store is what fills up).
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	seeder := harness.NewNode(t)
	seeder.Start()
	files := []struct {
		name string
		size int64
	}{{"big", tooBig}, {"a", halfFit}, {"b", halfFit}}
	roots := map[string]string{}
	for i, file := range files {
		p := filepath.Join(dir, file.name)
		harness.WriteRandomFile(t, p, file.size, uint64(100+i)) // distinct content
		roots[file.name] = seeder.Add(p)
	}
	for _, tc := range []struct {
		name string
		copy bool
	}{
		{"output holds the bytes, on the full disk", false},
		{"store holds a copy (fetch.copy)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := harness.MountTmpfs(t, diskSize)
			outDir := disk
			if tc.copy {
				outDir = t.TempDir()
			}
			f := harness.NewNode(t, "ALLMENDE_STORE_PATH="+filepath.Join(disk, "store"), fmt.Sprintf("ALLMENDE_FETCH_COPY=%t", tc.copy))
			f.Start()
			f.MustRun("connect", seeder.TCPAddr())
			fullDisk(t, f, disk, outDir, dir, roots)
		})
	}
}

// fullDisk fetches into node f, whose store is on the small tmpfs disk,
// writing outputs to outDir; src holds the original files named as in
// roots.
func fullDisk(t *testing.T, f *harness.Node, disk, outDir, src string, roots map[string]string) {
	t.Run("a fetch that cannot fit is refused up front with the space needed", func(t *testing.T) {
		out := filepath.Join(outDir, "big")
		r := f.Run("fetch", roots["big"], "-o", out)
		if r.Code != 1 || !strings.Contains(r.Stderr, noSpace) || !strings.Contains(r.Stderr, "needs") {
			t.Errorf("fetch of %d bytes into a %s disk: exit %d, stderr %q", tooBig, diskSize, r.Code, r.Stderr)
		}
		harness.AssertAbsent(t, out)
		if s, _ := f.Stats(); s.BytesReceived > 1<<20 {
			t.Errorf("refused fetch still received %d bytes", s.BytesReceived)
		}
	})

	t.Run("filling the disk fails cleanly and recovers once space is freed", func(t *testing.T) {
		filler := filepath.Join(disk, "filler")
		harness.WriteRandomFile(t, filler, fillerSize, 99)
		outs := map[string]string{}
		results := map[string]harness.Result{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, name := range []string{"a", "b"} {
			out := filepath.Join(outDir, name)
			outs[name] = out
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := f.Run("fetch", roots[name], "-o", out)
				mu.Lock()
				results[name] = r
				mu.Unlock()
			}()
		}
		wg.Wait()
		var failed []string
		for name, r := range results {
			switch {
			case r.Code == 0:
				if same, _ := harness.FilesEqual(filepath.Join(src, name), outs[name]); !same {
					t.Errorf("%s: fetched bytes differ", name)
				}
			case r.Code == 1 && strings.Contains(r.Stderr, noSpace):
				failed = append(failed, name)
				t.Logf("%s failed as it should: %s", name, strings.TrimSpace(r.Stderr))
				harness.AssertAbsent(t, outs[name])
			default:
				t.Errorf("%s: exit %d, stderr %q; want success or a clear full-disk error", name, r.Code, r.Stderr)
			}
		}
		if len(failed) == 0 {
			t.Fatalf("both fetches fit on a disk that holds only one")
		}
		if rep, code := runVerify(t, f); code != 0 {
			t.Errorf("verify after a full disk: exit %d, %+v", code, rep)
		}

		freed := time.Now()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		for _, name := range failed {
			f.MustRun("fetch", roots[name], "-o", outs[name])
			if same, _ := harness.FilesEqual(filepath.Join(src, name), outs[name]); !same {
				t.Errorf("%s: fetched bytes differ after recovery", name)
			}
		}
		t.Logf("recovered without a restart: %d fetch(es) completed %s after the space was freed", len(failed), time.Since(freed).Round(time.Millisecond))
		if rep, code := runVerify(t, f); code != 0 {
			t.Errorf("verify after recovery: exit %d, %+v", code, rep)
		}
	})
}
