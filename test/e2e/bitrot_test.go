package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// rotSize is the file the bit-rot test shares: several 1 MiB leaves.
const rotSize = 8<<20 + 123

// verifyReport is what `allmende verify --json` prints.
type verifyReport struct {
	Blocks   int      `json:"blocks"`
	Corrupt  []string `json:"corrupt"`
	Missing  []string `json:"missing"`
	Damaged  []string `json:"damaged"`
	Repaired []string `json:"repaired"`
	Found    struct {
		Corrupt []string `json:"corrupt"`
		Missing []string `json:"missing"`
	} `json:"found"`
}

// runVerify runs `allmende verify --json` (plus args) on n and returns the
// report and the exit status.
func runVerify(t *testing.T, n *harness.Node, args ...string) (verifyReport, int) {
	t.Helper()
	r := n.Run(append([]string{"verify", "--json"}, args...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("verify --json: exit %d, bad JSON %q: %v\n%s", r.Code, r.Stdout, err, r.Stderr)
	}
	if r.Code != 0 {
		t.Logf("verify --json: exit %d: %s", r.Code, r.Stderr)
	}
	return rep, r.Code
}

// rotOneBlock flips a byte in the middle of the largest file of block data
// in n's store (a block file, or the copy `add` keeps of a file), as a
// failing disk would: it lands in a leaf of file data.
func rotOneBlock(t *testing.T, n *harness.Node) {
	t.Helper()
	var biggest string
	var size int64
	for _, dir := range []string{"blocks", "files"} {
		filepath.WalkDir(filepath.Join(n.Home, "store", dir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".data") {
				if info, err := d.Info(); err == nil && info.Size() > size {
					biggest, size = p, info.Size()
				}
			}
			return nil
		})
	}
	f, err := os.OpenFile(biggest, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, size/2); err != nil {
		t.Fatal(err)
	}
}

func TestBitRot(t *testing.T) {
	src := filepath.Join(t.TempDir(), "weights.bin")
	harness.WriteRandomFile(t, src, rotSize, 11)
	rotten := harness.NewNode(t)
	rotten.Start()
	root := rotten.Add(src)
	honest := harness.NewNode(t)
	honest.Start()
	honest.MustRun("connect", rotten.TCPAddr())
	honest.MustRun("fetch", root, "-o", filepath.Join(t.TempDir(), "copy"))
	rotOneBlock(t, rotten)

	t.Run("a rotten seeder alone: the fetch fails cleanly, nothing written", func(t *testing.T) {
		d := harness.NewNode(t)
		d.Start()
		d.MustRun("connect", rotten.TCPAddr())
		out := filepath.Join(t.TempDir(), "out")
		r := d.Run("fetch", root, "-o", out, "--fetch.timeout", "3s")
		if r.Code != 1 {
			t.Errorf("fetch from a rotten seeder only: exit %d, want 1\n%s", r.Code, r.Stderr)
		}
		// A fetch that ran out of peers keeps its hidden partial file (the
		// verified leaves it holds let the next fetch resume), but nothing
		// stands at the destination.
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("%s exists after a failed fetch", out)
		}
		if !strings.Contains(rotten.Log(), "corrupt block quarantined") {
			t.Errorf("the seeder did not log the quarantine:\n%s", rotten.Log())
		}
	})

	t.Run("verify on the seeder reports the damage and exits 1", func(t *testing.T) {
		rep, code := runVerify(t, rotten)
		if code != 1 || len(rep.Missing) != 1 || len(rep.Damaged) != 1 || rep.Damaged[0] != root {
			t.Errorf("verify: exit %d, %+v; want exit 1 and one block missing below %s", code, rep, root)
		}
		q, _ := os.ReadDir(filepath.Join(rotten.Home, "store", "quarantine"))
		t.Logf("blocks quarantined: %d", len(q))
		if len(q) != 1 {
			t.Errorf("quarantine holds %d blocks, want 1", len(q))
		}
	})

	t.Run("with an honest seeder too, the fetch completes with the right bytes", func(t *testing.T) {
		c := harness.NewNode(t)
		c.Start()
		c.MustRun("connect", rotten.TCPAddr())
		c.MustRun("connect", honest.TCPAddr())
		out := filepath.Join(t.TempDir(), "out")
		c.MustRun("fetch", root, "-o", out)
		if same, err := harness.FilesEqual(src, out); err != nil || !same {
			t.Errorf("fetched bytes differ from the source (%v)", err)
		}
	})

	t.Run("verify --repair fetches the block again and passes", func(t *testing.T) {
		rotten.MustRun("connect", honest.TCPAddr())
		rep, code := runVerify(t, rotten, "--repair")
		if code != 0 || len(rep.Missing) != 0 || len(rep.Repaired) != 1 {
			t.Errorf("verify --repair: exit %d, %+v; want exit 0 and the root repaired", code, rep)
		}
		if _, code := runVerify(t, rotten); code != 0 {
			t.Errorf("verify after repair: exit %d", code)
		}
	})
}
