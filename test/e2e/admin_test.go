package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/allmende/allmende/test/harness"
)

// TestBadConfigValue: a size, duration or boolean the config cannot read
// stops the daemon and every other command that loads the config with
// exit status 2 and a message naming the key and the value, before the
// daemon listens or writes HOME/api.
func TestBadConfigValue(t *testing.T) {
	tests := []struct {
		name string
		env  string // KEY=VALUE, or FILE: followed by config.yaml content
		cmd  string
		key  string
		val  string
	}{
		{"a typo in a quota unit", "ALLMENDE_MIRROR_QUOTA=10MiG", "daemon", "mirror.quota", "10MiG"},
		{"a decimal comma", "ALLMENDE_MIRROR_QUOTA=1,5GB", "ls", "mirror.quota", "1,5GB"},
		{"bandwidth in bits", "ALLMENDE_BANDWIDTH_DOWN=100Mb", "id", "bandwidth.down", "100Mb"},
		{"a duration without a unit", "ALLMENDE_FETCH_TIMEOUT=120", "daemon", "fetch.timeout", "120"},
		{"YAML 1.1's yes in the config file", "FILE:mdns:\n  enabled: yes\n", "daemon", "mdns.enabled", "yes"},
		{"a quota in the config file", "FILE:mirror:\n  quota: 1.5T\n", "config show", "mirror.quota", "1.5T"},
		{"an unknown log format", "ALLMENDE_LOG_FORMAT=xml", "daemon", "log.format", "xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n *harness.Node
			if yaml, ok := strings.CutPrefix(tt.env, "FILE:"); ok {
				n = harness.NewNode(t)
				if err := os.MkdirAll(n.Home, 0o700); err != nil {
					t.Fatal(err)
				}
				harness.WriteFile(t, filepath.Join(n.Home, "config.yaml"), []byte(yaml))
			} else {
				n = harness.NewNode(t, tt.env)
			}
			r := n.Run(strings.Fields(tt.cmd)...)
			want := `config key ` + tt.key + `: value "` + tt.val + `"`
			if r.Code != 2 || !strings.Contains(r.Stderr, want) {
				t.Fatalf("allmende %s: exit %d, stderr %q; want exit 2 and %q", tt.cmd, r.Code, r.Stderr, want)
			}
			harness.AssertAbsent(t, filepath.Join(n.Home, "api"))
		})
	}
}

// TestCLIConventions: version, completion, man pages, kebab-case flags
// with the old dotted spelling still working, and exit 2 for an unknown
// subcommand.
func TestCLIConventions(t *testing.T) {
	n := harness.NewNode(t)

	t.Run("version names the modules it was built from", func(t *testing.T) {
		var v map[string]any
		n.JSON(&v, "version", "--json")
		for key, module := range map[string]string{"libp2p": "github.com/libp2p/go-libp2p", "boxo": "github.com/ipfs/boxo"} {
			out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSpace(string(out)); v[key] != want {
				t.Errorf("version --json: %s = %v, go.mod requires %s", key, v[key], want)
			}
		}
		if v["version"] == "" || !strings.HasPrefix(v["go"].(string), "go1.") {
			t.Errorf("version --json = %v", v)
		}
		if out := n.MustRun("version"); !strings.Contains(out, "go-libp2p") || !strings.Contains(out, "boxo") {
			t.Errorf("version: %q", out)
		}
	})

	t.Run("completion for each shell", func(t *testing.T) {
		for shell, marker := range map[string]string{"bash": "__start_allmende", "zsh": "#compdef allmende", "fish": "complete -c allmende"} {
			if out := n.MustRun("completion", shell); !strings.Contains(out, marker) {
				t.Errorf("completion %s lacks %q", shell, marker)
			}
		}
	})

	t.Run("man pages for every command", func(t *testing.T) {
		dir := t.TempDir()
		n.MustRun("man", dir)
		for _, page := range []string{"allmende.1", "allmende-daemon.1", "allmende-fetch.1", "allmende-version.1", "allmende-completion-bash.1"} {
			b, err := os.ReadFile(filepath.Join(dir, page))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), ".nh\n.TH") && !strings.Contains(string(b), ".TH \"ALLMENDE\"") {
				t.Errorf("%s is not a man page: %.80q", page, b)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "allmende-fetch.1")); !strings.Contains(string(b), `fetch-timeout`) || strings.Contains(string(b), `fetch.timeout=`) {
			t.Errorf("allmende-fetch.1 should document --fetch-timeout and hide --fetch.timeout")
		}
	})

	t.Run("unknown subcommands exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"frobnicate"}, {"config", "frobnicate"}, {"trust", "frobnicate"}, {"completion", "tcsh"}} {
			if r := n.Run(args...); r.Code != 2 || !strings.Contains(r.Stderr, "unknown command") {
				t.Errorf("allmende %s: exit %d, stderr %q; want 2", strings.Join(args, " "), r.Code, r.Stderr)
			}
		}
	})

	t.Run("kebab-case flags, and the old spelling as a deprecated alias", func(t *testing.T) {
		for _, flag := range []string{"--api-addr", "--api.addr"} {
			d := harness.NewNode(t)
			r := d.Run("daemon", flag, "nonsense-address")
			if r.Code == 0 || !strings.Contains(r.Stderr, "nonsense-address") {
				t.Errorf("daemon %s nonsense-address: exit %d, stderr %q; want the flag to reach api.addr", flag, r.Code, r.Stderr)
			}
			if deprecated := strings.Contains(r.Stderr, "deprecated"); deprecated != (flag == "--api.addr") {
				t.Errorf("daemon %s: stderr %q", flag, r.Stderr)
			}
		}
		if out := n.MustRun("fetch", "--help"); !strings.Contains(out, "--fetch-timeout") || strings.Contains(out, "--fetch.timeout") {
			t.Errorf("fetch --help shows the old flag or lacks the new one:\n%s", out)
		}
	})
}

// TestJSONLogs: with log.format json every line the daemon logs is one
// JSON object, its own and those of go-libp2p and boxo alike.
func TestJSONLogs(t *testing.T) {
	n := harness.NewNode(t, "ALLMENDE_LOG_FORMAT=json", "ALLMENDE_LOG_LEVEL=debug", "GOLOG_LOG_LEVEL=debug")
	n.Start()
	if _, err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	loggers := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(n.Log()), "\n") {
		if strings.HasPrefix(line, "allmende daemon ready") {
			continue // stdout, not a log line
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log record without time, level or msg: %q", line)
		}
		if name, ok := rec["logger"].(string); ok {
			loggers[name] = true
		}
	}
	has := func(prefixes ...string) bool {
		for name := range loggers {
			for _, p := range prefixes {
				if strings.HasPrefix(name, p) {
					return true
				}
			}
		}
		return false
	}
	if !has("basichost", "net/identify", "p2p-config", "rcmgr", "swarm") {
		t.Errorf("no go-libp2p log line in JSON; loggers seen: %v", loggers)
	}
	if !has("bitswap", "blockservice") {
		t.Errorf("no boxo log line in JSON; loggers seen: %v", loggers)
	}
}
