// Package harness runs real allmende binaries for end-to-end tests: it
// builds the binary once, starts daemons as separate processes under
// profile test (loopback only, port 0), runs CLI commands against them and
// kills every process it started when the test ends.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts for waiting on daemons.
const (
	// ReadyTimeout bounds how long a daemon may take to write HOME/api.
	ReadyTimeout = 30 * time.Second
	// StopTimeout bounds a clean shutdown after SIGTERM (design.md: 5 s).
	StopTimeout = 5 * time.Second
)

// builds holds one build per main package, shared by every test of the
// process (a test binary builds each program at most once).
var builds sync.Map // package path → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests of a package that uses this harness and then
// removes the binaries built for them. Call it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	builds.Range(func(_, v any) bool {
		if b := v.(*build); b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
		return true
	})
	os.Exit(code)
}

// PeerCommand returns a command that runs bin, a test peer program built
// by Program, with its temporary files in a directory of the test's, so
// nothing is left behind even when the program is killed.
func PeerCommand(t testing.TB, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	return cmd
}

// Binary builds ./cmd/allmende once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return Program(t, "./cmd/allmende")
}

// Program builds the main package pkg (a path relative to the module
// root, e.g. "./test/liar") once per test process and returns the path of
// the binary.
func Program(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "allmende-bin-") // outlives the first test; Main removes it
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Node is an allmende home with, optionally, a daemon running on it.
type Node struct {
	t    testing.TB
	Bin  string
	Home string
	// Env is added to every process started for this node (KEY=VALUE).
	Env []string
	// Wrap, if set, prefixes every command (e.g. "ip netns exec ns1").
	Wrap []string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
	API    string
}

// NewNode makes a fresh home under the test's temp dir. env entries
// (KEY=VALUE) are added to the node's processes on top of profile test.
func NewNode(t testing.TB, env ...string) *Node {
	t.Helper()
	return &Node{t: t, Bin: Binary(t), Home: filepath.Join(t.TempDir(), "home"), Env: env}
}

func (n *Node) environ() []string {
	env := append(os.Environ(), "ALLMENDE_PROFILE=test", "ALLMENDE_HOME="+n.Home)
	return append(env, n.Env...)
}

func (n *Node) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(append([]string{}, n.Wrap...), n.Bin)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = n.environ()
	return cmd
}

// Start runs `allmende daemon` and waits until HOME/api names its API.
func (n *Node) Start() {
	n.t.Helper()
	os.Remove(filepath.Join(n.Home, "api")) // a stale file must not fool the wait
	n.StartKeepAPIFile()
}

// StartKeepAPIFile is Start without removing a stale HOME/api first, for
// tests of exactly that.
func (n *Node) StartKeepAPIFile() {
	n.t.Helper()
	n.log = &syncBuffer{}
	n.cmd = n.command(context.Background(), "daemon")
	n.cmd.Stdout = n.log
	n.cmd.Stderr = n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	cmd := n.cmd
	go func() { cmd.Wait(); close(n.exited) }()
	n.t.Cleanup(n.Kill)
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			n.t.Fatalf("daemon exited early: %s\n%s", cmd.ProcessState, n.log)
		default:
		}
		if url := n.readAPI(); url != "" && strings.Contains(n.log.String(), "ready") {
			n.API = url
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("daemon not ready after %s:\n%s", ReadyTimeout, n.log)
}

func (n *Node) readAPI() string {
	b, err := os.ReadFile(filepath.Join(n.Home, "api"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Log is what the daemon printed so far.
func (n *Node) Log() string {
	if n.log == nil {
		return ""
	}
	return n.log.String()
}

// Kill sends SIGKILL to the daemon, as a crash would, and waits for it.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// Stop sends SIGTERM and waits up to StopTimeout for a clean exit. It
// returns how long the daemon took.
func (n *Node) Stop() (time.Duration, error) {
	if n.cmd == nil {
		return 0, errors.New("not running")
	}
	start := time.Now()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		took := time.Since(start)
		ps := n.cmd.ProcessState
		n.cmd = nil
		if !ps.Success() {
			return took, fmt.Errorf("daemon exit: %s\n%s", ps, n.log)
		}
		return took, nil
	case <-time.After(StopTimeout):
		n.Kill()
		return StopTimeout, fmt.Errorf("daemon did not stop within %s", StopTimeout)
	}
}

// syncBuffer is a bytes.Buffer that a process's output goroutine may write
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Result is the outcome of one CLI command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs an allmende command for this node and returns its outcome.
func (n *Node) Run(args ...string) Result {
	n.t.Helper()
	return n.RunContext(context.Background(), args...)
}

// RunContext is Run with a context that kills the command when done.
func (n *Node) RunContext(ctx context.Context, args ...string) Result {
	n.t.Helper()
	cmd := n.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		n.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// MustRun runs a command and fails the test unless it exits 0.
func (n *Node) MustRun(args ...string) string {
	n.t.Helper()
	r := n.Run(args...)
	if r.Code != 0 {
		n.t.Fatalf("allmende %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// JSON runs a command and decodes its stdout into v.
func (n *Node) JSON(v any, args ...string) {
	n.t.Helper()
	out := n.MustRun(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		n.t.Fatalf("allmende %s: bad JSON %q: %v", strings.Join(args, " "), out, err)
	}
}

// Addrs returns the daemon's full multiaddrs (with /p2p/<id>).
func (n *Node) Addrs() []string {
	n.t.Helper()
	var id struct {
		ID    string   `json:"id"`
		Addrs []string `json:"addrs"`
	}
	n.JSON(&id, "id", "--json")
	return id.Addrs
}

// TCPAddr returns the daemon's first TCP multiaddr.
func (n *Node) TCPAddr() string {
	n.t.Helper()
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	n.t.Fatal("daemon has no TCP address")
	return ""
}

// Add adds path and returns the root CID (the last line of stdout).
func (n *Node) Add(path string) string {
	n.t.Helper()
	lines := strings.Split(strings.TrimSpace(n.MustRun("add", path)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Stats are a daemon's transfer counters (the stats API).
type Stats struct {
	BlocksReceived uint64 `json:"blocks_received"`
	BytesReceived  uint64 `json:"bytes_received"`
	BlocksSent     uint64 `json:"blocks_sent"`
	BytesSent      uint64 `json:"bytes_sent"`
	DupBytes       uint64 `json:"dup_bytes_received"`
	// BadBlocks and BadBytes are blocks received that no want asked for
	// (corrupt ones among them); BannedPeers sent too many.
	BadBlocks   uint64 `json:"bad_blocks"`
	BadBytes    uint64 `json:"bad_bytes"`
	BannedPeers int    `json:"banned_peers"`
}

// Stats reads the daemon's transfer counters from its API.
func (n *Node) Stats() (Stats, error) { return n.StatsVia(nil) }

// MustStats is Stats that fails the test on an error.
func (n *Node) MustStats() Stats {
	n.t.Helper()
	s, err := n.Stats()
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

// StatsVia reads the daemon's counters through c (nil: a client with a
// timeout), e.g. one that reaches into a network namespace.
func (n *Node) StatsVia(c *http.Client) (Stats, error) {
	var s Stats
	resp, err := n.APIGet(c, "/api/v0/stats")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(resp, &s)
}

// FetchResult is what `allmende fetch --json` prints.
type FetchResult struct {
	CID      string  `json:"cid"`
	Out      string  `json:"out"`
	Size     uint64  `json:"size"`
	Received uint64  `json:"received"`
	Seconds  float64 `json:"seconds"`
}
