package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/configs"
	"github.com/allmende/allmende/node"
	homedir "github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/localapi"
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
		if err := v.BindPFlags(flags); err != nil {
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

// nodeConfig turns the layered configuration into a node.Config.
func nodeConfig(v *viper.Viper, home string, log *slog.Logger) node.Config {
	storePath := v.GetString("store.path")
	if storePath == "" {
		storePath = homedir.Dir(home).Store()
	}
	return node.Config{
		Home:               home,
		StorePath:          storePath,
		StoreSync:          v.GetBool("store.sync"),
		StoreDirectIO:      v.GetBool("store.direct_io"),
		Listen:             stringList(v, "listen"),
		APIAddr:            v.GetString("api.addr"),
		APIToken:           localapi.Secret(v.GetString("api.token")),
		Bootstrap:          stringList(v, "bootstrap"),
		MDNS:               v.GetBool("mdns.enabled"),
		DHTMode:            v.GetString("dht.mode"),
		NAT:                v.GetBool("nat.enabled"),
		RelayService:       v.GetBool("relay.service"),
		StaticRelays:       stringList(v, "relay.static"),
		SwarmKey:           v.GetString("swarm.key"),
		FetchTimeout:       v.GetDuration("fetch.timeout"),
		FetchParallel:      v.GetInt("fetch.parallel"),
		FetchCopy:          v.GetBool("fetch.copy"),
		SendAllowance:      v.GetInt("bitswap.send_allowance"),
		ConnsLow:           v.GetInt("conns.low"),
		ConnsHigh:          v.GetInt("conns.high"),
		MaxMemory:          v.GetInt64("resources.max_memory"),
		MaxConns:           v.GetInt("resources.max_conns"),
		AllowNets:          stringList(v, "resources.allow"),
		MirrorAddr:         v.GetString("mirror.addr"),
		MirrorAllow:        stringList(v, "mirror.allow"),
		MirrorUpstream:     v.GetString("mirror.upstream"),
		MirrorPins:         stringList(v, "mirror.pins"),
		MirrorQuota:        int64(v.GetSizeInBytes("mirror.quota")),
		MirrorInterval:     v.GetDuration("mirror.interval"),
		MirrorStallTimeout: v.GetDuration("mirror.stall_timeout"),
		MirrorUpstreamTTL:  v.GetDuration("mirror.upstream_ttl"),
		MirrorClientFills:  v.GetInt("mirror.fills_per_client"),
		BandwidthUp:        int64(v.GetSizeInBytes("bandwidth.up")),
		BandwidthDown:      int64(v.GetSizeInBytes("bandwidth.down")),
		Logger:             log,
	}
}

// newLogger logs to stderr at log.level; commands other than the daemon
// log only warnings unless the level is debug.
func newLogger(v *viper.Viper, daemon bool) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.GetString("log.level"))); err != nil {
		level = slog.LevelInfo
	}
	if !daemon && level > slog.LevelDebug {
		level = max(level, slog.LevelWarn)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	routeLibraryLogs(h)
	return slog.New(h)
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
