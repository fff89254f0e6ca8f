// Package e2e runs real allmende daemons as separate processes on loopback
// (profile test) and moves real bytes between them.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/store"
	"github.com/allmende/allmende/test/harness"
)

const (
	modelSize = 256 << 20
	// killAfter is how much of the model the fetcher gets before it is
	// killed in the resume test.
	killAfter = 64 << 20
	// inFlightSlack allows for blocks that were counted as received but
	// not yet written when the process died.
	inFlightSlack = 16 << 20
)

// modelDir writes a small model repository: a config, a 256 MiB weights
// file, a nested file and an empty file.
func modelDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tiny-llama")
	harness.WriteFile(t, filepath.Join(dir, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64}`))
	harness.WriteRandomFile(t, filepath.Join(dir, "model.safetensors"), modelSize, 1)
	harness.WriteFile(t, filepath.Join(dir, "tokenizer", "special", "tokens.txt"), []byte("<s>\n</s>\n"))
	harness.WriteFile(t, filepath.Join(dir, "EMPTY"), nil)
	return dir
}

func TestAddFetchAndResume(t *testing.T) {
	src := modelDir(t)
	a := harness.NewNode(t)
	a.Start()
	root := a.Add(src)
	if !strings.HasPrefix(root, "bafy") {
		t.Fatalf("add printed %q as its last line, want a CIDv1", root)
	}

	t.Run("fetch a directory between two daemons", func(t *testing.T) {
		b := harness.NewNode(t)
		b.Start()
		b.MustRun("connect", a.TCPAddr())
		out := filepath.Join(t.TempDir(), "model")
		b.MustRun("fetch", root, "-o", out)
		harness.AssertSameTree(t, src, out)

		var pins []struct {
			CID  string `json:"cid"`
			Name string `json:"name"`
			Size uint64 `json:"size"`
		}
		b.JSON(&pins, "ls", "--json")
		if len(pins) != 1 || pins[0].CID != root || pins[0].Size < modelSize {
			t.Errorf("ls after fetch = %+v, want the fetched root pinned", pins)
		}
	})

	t.Run("kill -9 mid-fetch, then resume fetches only the rest", func(t *testing.T) {
		c := harness.NewNode(t)
		c.Start()
		c.MustRun("connect", a.TCPAddr())
		out := filepath.Join(t.TempDir(), "model")

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan harness.Result, 1)
		go func() { done <- c.RunContext(ctx, "fetch", root, "-o", out) }()
		first := waitReceived(t, c, killAfter)
		c.Kill()
		<-done
		// Nothing at out; the hidden partial directory stays to resume from.
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("%s exists after a killed fetch", out)
		}

		c.StartKeepAPIFile() // HOME/api from the killed daemon is stale
		c.MustRun("connect", a.TCPAddr())
		var res harness.FetchResult
		c.JSON(&res, "fetch", root, "-o", out, "--json")
		harness.AssertSameTree(t, src, out)
		if _, err := os.Lstat(store.PartialPath(out)); err == nil {
			t.Errorf("the partial output of %s is left after the resumed fetch", out)
		}
		t.Logf("resume: %d bytes received before kill -9, %d after restart, content %d bytes", first, res.Received, res.Size)
		// first was read just before the kill; blocks that landed after it
		// count in neither figure, so only the upper bound is exact.
		if res.Received == 0 || res.Received >= modelSize {
			t.Errorf("resumed fetch received %d bytes, want some but less than the %d-byte model", res.Received, modelSize)
		}
		if res.Received > modelSize-first+inFlightSlack {
			t.Errorf("resumed fetch received %d bytes, want at most %d (the missing part)", res.Received, modelSize-first+inFlightSlack)
		}
	})
}

// waitReceived polls n's counters until it has received at least want bytes
// and returns the count it saw.
func waitReceived(t *testing.T, n *harness.Node, want uint64) uint64 {
	t.Helper()
	var got uint64
	harness.WaitUntil(t, fmt.Sprintf("the fetcher to receive %d bytes", want), time.Minute, pollEvery, func() bool {
		s, err := n.Stats()
		got = s.BytesReceived
		return err == nil && got >= want
	})
	return got
}

func TestBadInput(t *testing.T) {
	a := harness.NewNode(t)
	a.Start()
	small := filepath.Join(t.TempDir(), "small.txt")
	harness.WriteFile(t, small, []byte("small"))
	have := a.Add(small)
	existing := filepath.Join(t.TempDir(), "existing")
	harness.WriteFile(t, existing, []byte("mine"))
	// A CID nobody has: the raw-leaf CID of other bytes.
	nobody := "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"

	tests := []struct {
		name    string
		args    []string
		code    int
		message string
		out     string // must not exist afterwards
	}{
		{"unparsable CID", []string{"fetch", "not-a-cid", "-o", "OUT"}, 2, "not a CID", "OUT"},
		{"missing -o", []string{"fetch", have}, 2, "-o", ""},
		{"missing path for add", []string{"add", "/nonexistent/model"}, 2, "no such file", ""},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command", ""},
		{"unknown flag", []string{"ls", "--nope"}, 2, "unknown flag", ""},
		{"nobody provides the CID", []string{"fetch", nobody, "-o", "OUT", "--fetch.timeout", "2s"}, 1, nobody, "OUT"},
		{"output exists", []string{"fetch", have, "-o", existing}, 2, "exists", ""},
		{"rm of a root that is not pinned", []string{"rm", nobody}, 2, "not pinned", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := make([]string, len(tt.args))
			for i, s := range tt.args {
				args[i] = strings.ReplaceAll(s, "OUT", out)
			}
			r := a.Run(args...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.message) {
				t.Errorf("exit %d, stderr %q; want exit %d and a message containing %q", r.Code, r.Stderr, tt.code, tt.message)
			}
			if tt.out != "" {
				harness.AssertAbsent(t, out)
			}
		})
	}
	if got, _ := os.ReadFile(existing); string(got) != "mine" {
		t.Errorf("an existing output file was changed: %q", got)
	}
	var pins []map[string]any
	a.JSON(&pins, "ls", "--json")
	if len(pins) != 1 || pins[0]["cid"] != have {
		t.Errorf("store changed by bad input: ls = %v", pins)
	}
}

func TestDaemonLifecycle(t *testing.T) {
	a := harness.NewNode(t)
	a.Start()

	t.Run("a second daemon on the same home refuses", func(t *testing.T) {
		r := a.Run("daemon")
		if r.Code == 0 || !strings.Contains(r.Stderr, "already running") {
			t.Errorf("second daemon: exit %d, stderr %q", r.Code, r.Stderr)
		}
	})

	t.Run("SIGTERM exits cleanly and removes HOME/api", func(t *testing.T) {
		took, err := a.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("daemon stopped in %s", took)
		if _, err := os.Stat(filepath.Join(a.Home, "api")); !os.IsNotExist(err) {
			t.Errorf("HOME/api still there after shutdown: %v", err)
		}
	})

	t.Run("without a daemon, commands use an embedded node", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "f.bin")
		harness.WriteRandomFile(t, f, 3<<20, 7)
		root := a.Add(f)
		var pins []map[string]any
		a.JSON(&pins, "ls", "--json")
		if len(pins) != 1 || pins[0]["cid"] != root {
			t.Fatalf("ls = %v", pins)
		}
		a.MustRun("rm", root)
		var gc struct {
			Removed int `json:"removed"`
			Kept    int `json:"kept"`
		}
		a.JSON(&gc, "gc", "--json")
		if gc.Removed != 4 || gc.Kept != 0 { // 3 leaves and a root
			t.Errorf("gc = %+v, want 4 removed, 0 kept", gc)
		}
	})

	t.Run("a stale HOME/api is replaced", func(t *testing.T) {
		harness.WriteFile(t, filepath.Join(a.Home, "api"), []byte("http://127.0.0.1:1\n"))
		a.StartKeepAPIFile()
		if a.API == "http://127.0.0.1:1" {
			t.Error("daemon kept the stale API file")
		}
		var ids map[string]any
		a.JSON(&ids, "id", "--json")
		if ids["id"] == "" {
			t.Error("id --json has no id")
		}
	})
}
