package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/allmende/allmende/test/harness"
)

// Crash test parameters. Kill points are fractions of the work done,
// drawn from a fixed seed so a failure can be replayed; the slow variant
// (ALLMENDE_SLOW_TESTS=1, see scripts/crash.sh) tries more points on more
// data.
const (
	crashSeed       = 8
	fastCrashPoints = 1
	slowCrashPoints = 6
	fastCrashSize   = 48 << 20
	slowCrashSize   = 256 << 20
	// pollEvery is how often the test looks at the work's progress.
	pollEvery = 2 * time.Millisecond
	// maxWait bounds how long one crash run waits for its process.
	maxWait = 2 * time.Minute
	// killWaitDelay bounds the wait for a killed process's output pipes.
	killWaitDelay = 5 * time.Second
)

// slowTests reports whether the slow variants were asked for.
func slowTests() bool { return os.Getenv("ALLMENDE_SLOW_TESTS") == "1" }

// crashPlan returns the seeded kill points (fractions in [0.05, 0.95)) and
// the data size for this run.
func crashPlan(salt uint64) ([]float64, int64) {
	n, size := fastCrashPoints, int64(fastCrashSize)
	if slowTests() {
		n, size = slowCrashPoints, slowCrashSize
	}
	r := rand.New(rand.NewChaCha8([32]byte{crashSeed, byte(salt)}))
	points := make([]float64, n)
	for i := range points {
		points[i] = 0.05 + 0.9*r.Float64()
	}
	return points, size
}

// killWhen runs an allmende command for n and kills it with SIGKILL as
// soon as reached() holds. It reports whether the kill came before the
// command finished by itself.
func killWhen(t *testing.T, n *harness.Node, reached func() bool, args ...string) bool {
	t.Helper()
	cmd := exec.Command(n.Bin, args...)
	cmd.Env = append(os.Environ(), "ALLMENDE_PROFILE=test", "ALLMENDE_HOME="+n.Home)
	cmd.Env = append(cmd.Env, n.Env...)
	cmd.WaitDelay = killWaitDelay // do not wait on output pipes forever
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(maxWait)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			t.Logf("%s finished before the kill point (%v)", args[0], err)
			return false
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("%s did not reach the kill point in %s", args[0], maxWait)
		case <-tick.C:
			if !reached() {
				continue
			}
			cmd.Process.Kill()
			select {
			case <-done:
				return true
			case <-time.After(maxWait):
				status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
				t.Fatalf("%s did not die of SIGKILL in %s:\n%s", args[0], maxWait, status)
			}
		}
	}
}

// assertVerifies runs `allmende verify` on n and fails unless it passes.
func assertVerifies(t *testing.T, n *harness.Node) {
	t.Helper()
	if rep, code := runVerify(t, n); code != 0 {
		t.Errorf("verify after crash: exit %d, %+v", code, rep)
	}
}

// pinnedRoots lists n's pinned root CIDs.
func pinnedRoots(t *testing.T, n *harness.Node) []string {
	t.Helper()
	var pins []struct {
		CID string `json:"cid"`
	}
	n.JSON(&pins, "ls", "--json")
	out := make([]string, len(pins))
	for i, p := range pins {
		out[i] = p.CID
	}
	return out
}

func crashModel(t *testing.T, size int64) string {
	dir := filepath.Join(t.TempDir(), "model")
	harness.WriteFile(t, filepath.Join(dir, "config.json"), []byte(`{"hidden_size":64}`))
	harness.WriteRandomFile(t, filepath.Join(dir, "model.safetensors"), size, 21)
	harness.WriteFile(t, filepath.Join(dir, "EMPTY"), nil)
	return dir
}

func TestCrashDuringAdd(t *testing.T) {
	points, size := crashPlan(1)
	src := crashModel(t, size)
	ref := harness.NewNode(t)
	want := ref.Add(src)
	for _, p := range points {
		n := harness.NewNode(t)
		killed := killWhen(t, n, func() bool { return n.StoreTotal() >= int64(p*float64(size)) }, "add", src)
		t.Logf("kill -9 of add at %.0f%% (killed: %v, %d block bytes on disk)", 100*p, killed, n.StoreTotal())
		assertVerifies(t, n)
		if got := n.Add(src); got != want {
			t.Errorf("add after crash gave %s, want %s", got, want)
		}
		assertVerifies(t, n)
		if roots := pinnedRoots(t, n); len(roots) != 1 || roots[0] != want {
			t.Errorf("pins after crash and re-add: %v, want [%s]", roots, want)
		}
	}
}

func TestCrashDuringFetch(t *testing.T) {
	points, size := crashPlan(2)
	src := crashModel(t, size)
	seeder := harness.NewNode(t)
	seeder.Start()
	root := seeder.Add(src)
	bootstrap := "ALLMENDE_BOOTSTRAP=" + seeder.TCPAddr()
	// One point more than planned: while the output is being written.
	for i := range len(points) + 1 {
		n := harness.NewNode(t, bootstrap)
		out := filepath.Join(t.TempDir(), "out")
		partial := filepath.Join(filepath.Dir(out), ".out.allmende-partial")
		var reached func() bool
		label := "writing the output"
		if i < len(points) {
			threshold := int64(points[i] * float64(size))
			// The leaves land in the partial output, the inner nodes in
			// the store.
			reached = func() bool { return n.StoreTotal()+writtenBytes(partial) >= threshold }
			label = "blocks"
		} else {
			reached = func() bool { _, err := os.Lstat(partial); return err == nil }
		}
		killed := killWhen(t, n, reached, "fetch", root, "-o", out)
		t.Logf("kill -9 of fetch (%s; killed: %v, %d block bytes in the store, about %d in the partial output)", label, killed, n.StoreTotal(), writtenBytes(partial))
		if killed {
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("%s exists after a killed fetch", out)
			}
		}
		assertVerifies(t, n)
		before := n.StoreTotal()
		if killed {
			n.MustRun("fetch", root, "-o", out)
		}
		harness.AssertSameTree(t, src, out)
		if _, err := os.Lstat(partial); err == nil {
			t.Errorf("partial output %s left after the resumed fetch", partial)
		}
		assertVerifies(t, n)
		t.Logf("resumed with %d block bytes in the store", before)
	}
}

// writtenSample is the stride at which writtenBytes looks for written
// data.
const writtenSample = 64 << 10

// writtenBytes estimates how much of the files below dir (sized in
// advance, so zeros where nothing is written yet) holds data: random data
// is not zero at the start of a writtenSample stride.
func writtenBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		buf := make([]byte, 64)
		for off := int64(0); ; off += writtenSample {
			k, _ := f.ReadAt(buf, off)
			if k == 0 {
				return nil
			}
			for _, b := range buf[:k] {
				if b != 0 {
					n += writtenSample
					break
				}
			}
		}
	})
	return n
}

// gcSmallFiles and gcSmallSize shape the part of TestCrashDuringGC's
// dropped model that lies in the block store (files of one leaf), whose
// deletion GC's progress can be watched by; the big file's copy goes in
// one unlink at the end.
const (
	gcSmallFiles = 48
	gcSmallSize  = 512 << 10
)

func TestCrashDuringGC(t *testing.T) {
	points, size := crashPlan(3)
	// One point more than planned: after the copy of the big file went.
	points = append(points, 1.5)
	for _, p := range points {
		n := harness.NewNode(t)
		keep := n.Add(crashModel(t, 3<<20))
		model := crashModel(t, size)
		for i := range gcSmallFiles {
			harness.WriteRandomFile(t, filepath.Join(model, "shards", fmt.Sprintf("%02d.bin", i)), gcSmallSize, uint64(100+i))
		}
		drop := n.Add(model)
		n.MustRun("rm", drop)
		full := n.StoreTotal()
		threshold := full - int64(p*gcSmallFiles*gcSmallSize)
		if p > 1 {
			threshold = full - size
		}
		killed := killWhen(t, n, func() bool { return n.StoreTotal() <= threshold }, "gc")
		t.Logf("kill -9 of gc at %.0f%% (killed: %v, %d of %d block bytes left)", 100*p, killed, n.StoreTotal(), full)
		assertVerifies(t, n)
		n.MustRun("gc")
		assertVerifies(t, n)
		if roots := pinnedRoots(t, n); len(roots) != 1 || roots[0] != keep {
			t.Errorf("pins after crashed gc: %v, want [%s]", roots, keep)
		}
	}
}
