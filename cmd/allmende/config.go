package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/configs"
	"github.com/allmende/allmende/node"
	homedir "github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/localapi"
	"github.com/allmende/allmende/policy/denylist"
	"github.com/allmende/allmende/policy/license"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// envPrefix prefixes every environment variable allmende reads.
const envPrefix = "ALLMENDE"

// globalOptions are the flags every command takes.
type globalOptions struct {
	home       string
	configFile string
}

// homeDir resolves --home, then ALLMENDE_HOME, then ~/.allmende.
func (g *globalOptions) homeDir() (string, error) {
	if g.home != "" {
		return filepath.Abs(g.home)
	}
	if h := os.Getenv(envPrefix + "_HOME"); h != "" {
		return filepath.Abs(h)
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory: %w (set --home or ALLMENDE_HOME)", err)
	}
	return filepath.Join(u, ".allmende"), nil
}

// loadConfig layers the embedded defaults, the profile, the config file, the
// environment and the command's flags, in rising precedence.
func loadConfig(g *globalOptions, flags *pflag.FlagSet) (*viper.Viper, string, error) {
	home, err := g.homeDir()
	if err != nil {
		return nil, "", err
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(configs.Default())); err != nil {
		return nil, "", fmt.Errorf("embedded default config: %w", err)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// An empty variable means "empty", not "unset": ALLMENDE_BOOTSTRAP=""
	// must clear the list, or a node dials the public peers it was told not to.
	v.AllowEmptyEnv(true)

	file := g.configFile
	if file == "" {
		file = homedir.Dir(home).Config()
	}
	user, err := os.ReadFile(file)
	if err != nil && (g.configFile != "" || !errors.Is(err, fs.ErrNotExist)) {
		return nil, "", usageError{fmt.Errorf("config file: %w", err)}
	}
	profile := os.Getenv(envPrefix + "_PROFILE")
	if profile == "" && user != nil {
		u := viper.New()
		u.SetConfigType("yaml")
		if err := u.ReadConfig(bytes.NewReader(user)); err != nil {
			return nil, "", usageError{fmt.Errorf("config file %s: %w", file, err)}
		}
		profile = u.GetString("profile")
	}
	if profile != "" {
		overrides, err := configs.Profile(profile)
		if err != nil {
			return nil, "", usageError{err}
		}
		if err := v.MergeConfig(bytes.NewReader(overrides)); err != nil {
			return nil, "", err
		}
	}
	if user != nil {
		if err := v.MergeConfig(bytes.NewReader(user)); err != nil {
			return nil, "", usageError{fmt.Errorf("config file %s: %w", file, err)}
		}
	}
	if flags != nil {
		if err := bindConfigFlags(v.AllKeys(), flags, v.BindPFlag); err != nil {
			return nil, "", err
		}
	}
	return v, home, nil
}

// stringList reads a list key that may come as a YAML list or, from the
// environment, as a comma-separated string.
func stringList(v *viper.Viper, key string) []string {
	var raw []string
	switch x := v.Get(key).(type) {
	case string:
		raw = strings.Split(x, ",")
	default:
		raw = v.GetStringSlice(key)
	}
	out := raw[:0]
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// nodeConfig turns the layered configuration into a node.Config. A value
// that does not parse is a usage error naming its key (see settings).
func nodeConfig(v *viper.Viper, home string, log *slog.Logger) (node.Config, error) {
	s := &settings{v: v}
	storePath := s.str("store.path")
	if storePath == "" {
		storePath = homedir.Dir(home).Store()
	}
	cfg := node.Config{
		Home:                   home,
		StorePath:              storePath,
		StoreSync:              s.boolean("store.sync"),
		StoreDirectIO:          s.boolean("store.direct_io"),
		Listen:                 stringList(v, "listen"),
		APIAddr:                s.str("api.addr"),
		APIToken:               localapi.Secret(s.str("api.token")),
		Bootstrap:              stringList(v, "bootstrap"),
		MDNS:                   s.boolean("mdns.enabled"),
		DHTMode:                s.oneOf("dht.mode", node.DHTAuto, node.DHTServer, node.DHTClient, node.DHTOff),
		NAT:                    s.boolean("nat.enabled"),
		RelayService:           s.boolean("relay.service"),
		StaticRelays:           stringList(v, "relay.static"),
		SwarmKey:               s.str("swarm.key"),
		FetchTimeout:           s.duration("fetch.timeout", positive),
		FetchParallel:          s.integer("fetch.parallel"),
		FetchCopy:              s.boolean("fetch.copy"),
		SendAllowance:          int(s.size("bitswap.send_allowance", positive)),
		ConnsLow:               s.integer("conns.low"),
		ConnsHigh:              s.integer("conns.high"),
		MaxMemory:              s.size("resources.max_memory", positive),
		MaxConns:               s.integer("resources.max_conns"),
		AllowNets:              stringList(v, "resources.allow"),
		MirrorAddr:             s.str("mirror.addr"),
		MirrorAllow:            stringList(v, "mirror.allow"),
		MirrorUpstream:         s.str("mirror.upstream"),
		MirrorRegistryUpstream: s.str("mirror.registry_upstream"),
		MirrorPins:             stringList(v, "mirror.pins"),
		MirrorQuota:            s.size("mirror.quota", zeroIsOff),
		MirrorInterval:         s.duration("mirror.interval", positive),
		MirrorStallTimeout:     s.duration("mirror.stall_timeout", positive),
		MirrorUpstreamTTL:      s.duration("mirror.upstream_ttl", positive),
		MirrorUpstreamToken:    upstreamToken(s.str("mirror.upstream_token")),
		MirrorUpstreamRetries:  s.integer("mirror.upstream_retries"),
		MirrorServeGated:       s.boolean("mirror.serve_gated"),
		MirrorClientFills:      s.integer("mirror.fills_per_client"),
		BandwidthUp:            s.size("bandwidth.up", zeroIsOff),
		BandwidthDown:          s.size("bandwidth.down", zeroIsOff),
		Denylists:              s.denylists("denylists"),
		DenylistsRefresh:       s.duration("denylists_refresh", positive),
		LicenseAllow:           stringList(v, "policy.licenses.allow"),
		LicenseDeny:            stringList(v, "policy.licenses.deny"),
		LicenseUnknown:         s.oneOf("policy.licenses.unknown", license.UnknownAllow, license.UnknownDeny),
		Logger:                 log,
	}
	cfg.SuperSeed = superSeed(s.oneOf("swarm.superseed", superSeedAuto, superSeedOn, superSeedOff), cfg.BandwidthUp)
	if cfg.DenylistsRefresh > 0 && cfg.DenylistsRefresh < denylist.MinRefresh {
		s.fail("denylists_refresh", v.Get("denylists_refresh"), "shorter than "+denylist.MinRefresh.String())
	}
	if u := cfg.LicenseUnknown; u == license.UnknownAllow || u == license.UnknownDeny { // else oneOf said so
		if _, err := license.NewPolicy(cfg.LicenseAllow, cfg.LicenseDeny, u); err != nil {
			s.errs = append(s.errs, fmt.Errorf("config key policy.licenses: %w", err))
		}
	}
	return cfg, s.err()
}

// Values of swarm.superseed.
const (
	superSeedAuto = "auto"
	superSeedOn   = "on"
	superSeedOff  = "off"
)

// superSeed is swarm.superseed's verdict: auto means on when the uplink
// is capped (bandwidth.up).
func superSeed(mode string, up int64) bool {
	return mode == superSeedOn || (mode == superSeedAuto && up > 0)
}

// hfTokenEnv is the variable Hugging Face clients read their token from;
// the daemon sends it upstream when mirror.upstream_token is not set.
const hfTokenEnv = "HF_TOKEN"

// upstreamToken is mirror.upstream_token, else $HF_TOKEN.
func upstreamToken(configured string) string {
	if t := strings.TrimSpace(configured); t != "" {
		return t
	}
	return strings.TrimSpace(os.Getenv(hfTokenEnv))
}

// Log formats (log.format).
const (
	logText = "text"
	logJSON = "json"
)

// logSettings are log.level and log.format, checked.
type logSettings struct {
	level  slog.Level
	format string
}

func readLogSettings(v *viper.Viper) (logSettings, error) {
	s := &settings{v: v}
	var ls logSettings
	if err := ls.level.UnmarshalText([]byte(s.oneOf("log.level", "debug", "info", "warn", "error"))); err != nil {
		ls.level = slog.LevelInfo // recorded by oneOf
	}
	ls.format = s.oneOf("log.format", logText, logJSON)
	return ls, s.err()
}

// newLogger logs to w (stderr) at log.level in log.format, and routes the
// logs of go-libp2p, boxo and kad-dht through the same handler. Commands
// other than the daemon log only warnings unless the level is debug.
func newLogger(w io.Writer, ls logSettings, daemon bool) *slog.Logger {
	level := ls.level
	if !daemon && level > slog.LevelDebug {
		level = max(level, slog.LevelWarn)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if ls.format == logJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	routeLibraryLogs(h, level)
	return slog.New(h)
}

// checkConfig reports every value in the configuration that does not parse.
func checkConfig(v *viper.Viper, home string) error {
	_, lerr := readLogSettings(v)
	_, cerr := nodeConfig(v, home, nil)
	if lerr == nil {
		return cerr
	}
	if cerr == nil {
		return lerr
	}
	return usageError{errors.Join(lerr, cerr)}
}

// initTemplate is the config.yaml `allmende init` writes: comments only,
// so the embedded defaults and profile stay in force until the user
// changes something.
const initTemplate = `# allmende configuration. Every key, with its default and what it does:
#   allmende config defaults
# Settings here override the defaults and the profile; environment
# variables (ALLMENDE_API_ADDR, ...) and flags override this file.
#
# profile: test
# api:
#   addr: 127.0.0.1:5080
`
