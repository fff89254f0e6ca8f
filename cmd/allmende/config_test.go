package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/allmende/allmende/node"
)

func TestConfigLayers(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		key  string
		want []string
	}{
		{"the default profile bootstraps from public peers", nil, "bootstrap", nil},
		{"an empty variable clears a list instead of being ignored", map[string]string{"ALLMENDE_BOOTSTRAP": ""}, "bootstrap", []string{}},
		{"profile test keeps everything on loopback", map[string]string{"ALLMENDE_PROFILE": "test"}, "listen",
			[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}},
		{"lists come comma-separated from the environment", map[string]string{"ALLMENDE_MIRROR_ALLOW": "10.0.0.0/8, 192.168.1.0/24"}, "mirror.allow",
			[]string{"10.0.0.0/8", "192.168.1.0/24"}},
		{"the environment beats the profile", map[string]string{"ALLMENDE_PROFILE": "test", "ALLMENDE_LISTEN": "/ip4/10.0.0.1/tcp/4001"}, "listen",
			[]string{"/ip4/10.0.0.1/tcp/4001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("ALLMENDE_PROFILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			g := &globalOptions{home: filepath.Join(t.TempDir(), "home")}
			v, _, err := loadConfig(g, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := stringList(v, tt.key)
			if tt.want == nil {
				if len(got) == 0 {
					t.Errorf("%s is empty, want the default list", tt.key)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// loadTestConfig layers a config file holding yaml (if any) and env over
// the defaults, as every command does, and reads it into a node.Config.
func loadTestConfig(t *testing.T, yaml string, env map[string]string) (node.Config, error) {
	t.Helper()
	t.Setenv("ALLMENDE_PROFILE", "")
	for k, v := range env {
		t.Setenv(k, v)
	}
	g := &globalOptions{home: filepath.Join(t.TempDir(), "home")}
	if yaml != "" {
		g.configFile = filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(g.configFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v, home, err := loadConfig(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkConfig(v, home); err != nil {
		return node.Config{}, err
	}
	return nodeConfig(v, home, nil)
}

// TestConfigSizes is the table of good and bad sizes of issue 20: every
// size key reads them the same way, from the config file and from the
// environment; a bad one is a usage error (exit 2) naming key and value.
func TestConfigSizes(t *testing.T) {
	tests := []struct {
		value string
		want  int64 // when ok
		ok    bool
		why   string
	}{
		{"10GiB", 10 << 30, true, "IEC: powers of 1024"},
		{"10GB", 10e9, true, "SI: powers of 1000"},
		{"1.5TB", 1.5e12, true, "a fraction"},
		{"512MB", 512e6, true, "megabytes"},
		{"8MiB", 8 << 20, true, "mebibytes"},
		{"1073741824", 1 << 30, true, "a bare number is bytes"},
		{"0", 0, true, "mirror.quota documents 0 as no quota"},
		{"", 0, true, "empty is off too"},
		{"10MiG", 0, false, "a typo in the unit"},
		{"10mb", 0, false, "millibits"},
		{"10Gb", 0, false, "gigabits"},
		{"10G", 0, false, "1000 or 1024?"},
		{"1,5GB", 0, false, "a decimal comma"},
		{"1.5", 0, false, "fractional bytes"},
		{"-1GB", 0, false, "negative"},
		{"unlimited", 0, false, "off is 0"},
		{"1e12", 0, false, "an exponent"},
		{"99999999PiB", 0, false, "more than an int64"},
	}
	for _, tt := range tests {
		for _, src := range []string{"file", "env"} {
			t.Run(src+"/"+tt.why, func(t *testing.T) {
				var yaml string
				env := map[string]string{}
				if src == "file" {
					yaml = fmt.Sprintf("mirror:\n  quota: %q\n", tt.value)
				} else {
					env["ALLMENDE_MIRROR_QUOTA"] = tt.value
				}
				cfg, err := loadTestConfig(t, yaml, env)
				if !tt.ok {
					var ue usageError
					if !errors.As(err, &ue) || !strings.Contains(err.Error(), "mirror.quota") || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.value)) {
						t.Fatalf("mirror.quota %q: err %v; want a usage error naming the key and the value", tt.value, err)
					}
					return
				}
				if err != nil || cfg.MirrorQuota != tt.want {
					t.Fatalf("mirror.quota %q = %d, %v; want %d", tt.value, cfg.MirrorQuota, err, tt.want)
				}
			})
		}
	}
}

// TestConfigStrict covers the other typed keys and YAML 1.2's reading of
// yes/no/on/off (strings now, where YAML 1.1 made them booleans).
func TestConfigStrict(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(node.Config) bool
		bad   string // non-empty: the key the error must name
	}{
		{"unquoted off is the DHT mode off, not false", "dht:\n  mode: off\n", nil,
			func(c node.Config) bool { return c.DHTMode == node.DHTOff }, ""},
		{"yes is not a boolean", "mdns:\n  enabled: yes\n", nil, nil, "mdns.enabled"},
		{"off is not a boolean", "nat:\n  enabled: off\n", nil, nil, "nat.enabled"},
		{"true from the environment", "", map[string]string{"ALLMENDE_FETCH_COPY": "true"},
			func(c node.Config) bool { return c.FetchCopy }, ""},
		{"a typo in a boolean from the environment", "", map[string]string{"ALLMENDE_MDNS_ENABLED": "ture"}, nil, "mdns.enabled"},
		{"a duration", "fetch:\n  timeout: 90s\n", nil,
			func(c node.Config) bool { return c.FetchTimeout == 90*time.Second }, ""},
		{"a duration without a unit", "fetch:\n  timeout: 120\n", nil, nil, "fetch.timeout"},
		{"a zero timeout", "", map[string]string{"ALLMENDE_FETCH_TIMEOUT": "0"}, nil, "fetch.timeout"},
		{"a negative interval", "", map[string]string{"ALLMENDE_MIRROR_INTERVAL": "-1m"}, nil, "mirror.interval"},
		{"an unquoted size", "mirror:\n  quota: 10GiB\n", nil,
			func(c node.Config) bool { return c.MirrorQuota == 10<<30 }, ""},
		{"a YAML integer is bytes", "mirror:\n  quota: 1073741824\n", nil,
			func(c node.Config) bool { return c.MirrorQuota == 1<<30 }, ""},
		{"a YAML float is not a whole number of bytes", "mirror:\n  quota: 1.5\n", nil, nil, "mirror.quota"},
		{"a YAML list is not a size", "mirror:\n  quota: [1, 2]\n", nil, nil, "mirror.quota"},
		{"a bandwidth limit", "bandwidth:\n  up: 10MiB\n", nil,
			func(c node.Config) bool { return c.BandwidthUp == 10<<20 }, ""},
		{"super-seeding off by default", "", nil, func(c node.Config) bool { return !c.SuperSeed }, ""},
		{"super-seeding on", "swarm:\n  superseed: on\n", nil, func(c node.Config) bool { return c.SuperSeed }, ""},
		{"super-seeding auto with a capped uplink", "bandwidth:\n  up: 8MiB\n", nil,
			func(c node.Config) bool { return c.SuperSeed }, ""},
		{"super-seeding off with a capped uplink", "bandwidth:\n  up: 8MiB\nswarm:\n  superseed: off\n", nil,
			func(c node.Config) bool { return !c.SuperSeed }, ""},
		{"super-seeding from the environment", "", map[string]string{"ALLMENDE_SWARM_SUPERSEED": "on"},
			func(c node.Config) bool { return c.SuperSeed }, ""},
		{"an unknown super-seeding mode", "swarm:\n  superseed: always\n", nil, nil, "swarm.superseed"},
		{"bandwidth in bits", "bandwidth:\n  down: 100Mb\n", nil, nil, "bandwidth.down"},
		{"a size as a YAML float", "resources:\n  max_memory: 1.5\n", nil, nil, "resources.max_memory"},
		{"a count that is not a number", "", map[string]string{"ALLMENDE_CONNS_LOW": "many"}, nil, "conns.low"},
		{"an unknown DHT mode", "", map[string]string{"ALLMENDE_DHT_MODE": "yes"}, nil, "dht.mode"},
		{"json logs", "log:\n  format: json\n", nil, func(node.Config) bool { return true }, ""},
		{"an unknown log format", "log:\n  format: xml\n", nil, nil, "log.format"},
		{"an unknown log level", "", map[string]string{"ALLMENDE_LOG_LEVEL": "verbose"}, nil, "log.level"},
		{"denylists and their refresh by default", "", nil,
			func(c node.Config) bool { return len(c.Denylists) == 0 && c.DenylistsRefresh == time.Hour }, ""},
		{"denylists from the environment", "", map[string]string{"ALLMENDE_DENYLISTS": "/etc/allmende/local.deny, https://lists.example/bad.deny"},
			func(c node.Config) bool {
				return slices.Equal(c.Denylists, []string{"/etc/allmende/local.deny", "https://lists.example/bad.deny"})
			}, ""},
		{"a denylist over plain http", "denylists:\n  - http://lists.example/bad.deny\n", nil, nil, "denylists"},
		{"a denylist refresh under a minute", "denylists_refresh: 10s\n", nil, nil, "denylists_refresh"},
		{"a licence policy", "policy:\n  licenses:\n    deny: [CC-BY-NC-*, llama3]\n    unknown: deny\n", nil,
			func(c node.Config) bool {
				return slices.Equal(c.LicenseDeny, []string{"CC-BY-NC-*", "llama3"}) && c.LicenseUnknown == "deny"
			}, ""},
		{"licences allowed from the environment", "", map[string]string{"ALLMENDE_POLICY_LICENSES_ALLOW": "apache-2.0,MIT"},
			func(c node.Config) bool { return slices.Equal(c.LicenseAllow, []string{"apache-2.0", "MIT"}) }, ""},
		{"unknown licences neither allowed nor denied", "", map[string]string{"ALLMENDE_POLICY_LICENSES_UNKNOWN": "maybe"}, nil, "policy.licenses.unknown"},
		{"a bad licence pattern", "policy:\n  licenses:\n    deny: [\"CC-[BY\"]\n", nil, nil, "policy.licenses"},
		{"unknown in a licence list", "policy:\n  licenses:\n    deny: [other]\n", nil, nil, "policy.licenses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadTestConfig(t, tt.yaml, tt.env)
			if tt.bad != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), "config key "+tt.bad+":") {
					t.Fatalf("err %v; want a usage error naming %s", err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected config %+v", cfg)
			}
		})
	}
}

// TestConfigUpstreamToken: mirror.upstream_token (file or environment)
// wins over HF_TOKEN, which the daemon reads when the key is not set.
func TestConfigUpstreamToken(t *testing.T) {
	for _, tt := range []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{"none", "", map[string]string{"HF_TOKEN": ""}, ""},
		{"HF_TOKEN", "", map[string]string{"HF_TOKEN": "hf_env"}, "hf_env"},
		{"the key wins", "mirror:\n  upstream_token: hf_file\n", map[string]string{"HF_TOKEN": "hf_env"}, "hf_file"},
		{"its variable too", "", map[string]string{"HF_TOKEN": "hf_env", "ALLMENDE_MIRROR_UPSTREAM_TOKEN": "hf_var"}, "hf_var"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadTestConfig(t, tt.yaml, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MirrorUpstreamToken != tt.want {
				t.Errorf("token %q, want %q", cfg.MirrorUpstreamToken, tt.want)
			}
		})
	}
}
