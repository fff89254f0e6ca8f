package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/allmende/allmende/node"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/node/home"
	"github.com/allmende/allmende/node/localapi"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// daemonProbeTimeout is how long a command waits for a daemon named in
// HOME/api to answer before treating the file as stale.
const daemonProbeTimeout = 2 * time.Second

const exitStatusHelp = `
EXIT STATUS
  0  success
  1  failure (no peer had the content, a disk error, ...)
  2  bad usage or bad input (unparsable CID, missing path, existing output)`

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "allmende",
		Short: "Share AI models and datasets peer to peer",
		Long: `allmende content-addresses model weights and datasets and serves them to
other allmende and IPFS nodes over libp2p. Run "allmende daemon" to seed what
you hold; "allmende add" and "allmende fetch" move files between nodes.` + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "allmende home directory (env ALLMENDE_HOME, default ~/.allmende)")
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "config file (default HOME/config.yaml)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newInitCmd(g), newDaemonCmd(g), newIDCmd(g), newConnectCmd(g), newPeersCmd(g),
		newAddCmd(g), newFetchCmd(g), newLsCmd(g), newRmCmd(g), newGCCmd(g), newConfigCmd(g), newVerifyCmd(g), newSwarmKeyCmd(g),
		newImportCmd(g), newExportCmd(g), newPublishCmd(g), newTrustCmd(g), newInspectCmd(g),
		newVersionCmd(), newManCmd(),
	)
	root.InitDefaultCompletionCmd()
	rejectUnknownSubcommands(root)
	return root
}

// args wraps a cobra argument validator so its errors exit with status 2.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// localPath makes arg absolute (the daemon has another working directory)
// and checks with stat that it exists; a missing path is bad input.
func localPath(verb, arg string, stat func(string) (os.FileInfo, error)) (string, error) {
	path, err := filepath.Abs(arg)
	if err != nil {
		return "", err
	}
	if _, err := stat(path); err != nil {
		return "", fmt.Errorf("%s %s: %w: %v", verb, arg, api.ErrBadInput, err)
	}
	return path, nil
}

// env is what a command needs: its configuration and a way to the node.
type env struct {
	v    *viper.Viper
	home string
	log  *slog.Logger
	cfg  node.Config
}

// newEnv loads the configuration and checks every value in it: a value that
// does not parse is a usage error naming its key, whatever the command.
func newEnv(cmd *cobra.Command, g *globalOptions, daemon bool) (*env, error) {
	v, home, err := loadConfig(g, cmd.Flags())
	if err != nil {
		return nil, err
	}
	if err := checkConfig(v, home); err != nil {
		return nil, err
	}
	ls, _ := readLogSettings(v)
	log := newLogger(os.Stderr, ls, daemon)
	cfg, _ := nodeConfig(v, home, log)
	if bi, ok := debug.ReadBuildInfo(); ok {
		cfg.Version = readVersion(bi, linkedVersion, linkedCommit).Version
	}
	return &env{v: v, home: home, log: log, cfg: cfg}, nil
}

func (e *env) nodeConfig() node.Config { return e.cfg }

// ensureInit creates HOME on first use.
func (e *env) ensureInit() error {
	return node.InitHome(e.home, []byte(initTemplate), e.nodeConfig().StorePath)
}

// api returns the running daemon's API or, if none answers, an embedded
// node on HOME: offline (no listening socket, no dial; only what the store
// holds) for a read-only command, else on the network. The returned
// function releases it.
func (e *env) api(ctx context.Context, offline bool) (api.API, func() error, error) {
	url, err := node.ReadAPIFile(e.home)
	if err != nil {
		return nil, nil, err
	}
	if url != "" {
		c := localapi.NewClient(url)
		token, err := e.apiToken()
		if err != nil {
			return nil, nil, err
		}
		c.SetToken(token)
		probe, cancel := context.WithTimeout(ctx, daemonProbeTimeout)
		_, err = c.ID(probe)
		cancel()
		switch {
		case err == nil:
			return c, func() error { return nil }, nil
		case errors.Is(err, api.ErrUnauthorized):
			// A daemon runs but refuses our token: an embedded node could
			// not open its home either.
			return nil, nil, fmt.Errorf("the daemon at %s refused the API token; its token is in %s (or set api.token, env ALLMENDE_API_TOKEN, to it): %w",
				url, home.Dir(e.home).Token(), err)
		}
		e.log.Debug("daemon API file is stale", "addr", url, "err", err)
	}
	if err := e.ensureInit(); err != nil {
		return nil, nil, err
	}
	cfg := e.nodeConfig()
	cfg.Offline = offline
	n, err := node.New(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("no daemon is running and an embedded node could not start: %w", err)
	}
	return n, n.Close, nil
}

// apiToken is the token to send to the daemon: api.token from the config
// or environment, else the one the daemon recorded in HOME/api.token.
func (e *env) apiToken() (localapi.Secret, error) {
	if t := e.v.GetString("api.token"); t != "" {
		return localapi.Secret(t), nil
	}
	return localapi.ReadTokenFile(e.home)
}

// withAPI runs f against the node's API and releases it afterwards.
func withAPI(cmd *cobra.Command, g *globalOptions, f func(ctx context.Context, n api.API) error) error {
	return withAPIEnv(cmd, g, func(ctx context.Context, _ *env, n api.API) error { return f(ctx, n) })
}

// withAPIEnv is withAPI for commands that also read configuration.
func withAPIEnv(cmd *cobra.Command, g *globalOptions, f func(ctx context.Context, e *env, n api.API) error) error {
	return runAPI(cmd, g, false, f)
}

// withLocalAPI is withAPI for read-only commands: with no daemon running
// they run on an offline node (see env.api), and an api.ErrNotFound then
// says that only this node's store was looked at.
func withLocalAPI(cmd *cobra.Command, g *globalOptions, f func(ctx context.Context, n api.API) error) error {
	return runAPI(cmd, g, true, func(ctx context.Context, _ *env, n api.API) error { return f(ctx, n) })
}

// errOffline explains a not-found answer of an offline node.
var errOffline = errors.New("no daemon is running, so only this node's store was looked at; start \"allmende daemon\" to look on the network")

func runAPI(cmd *cobra.Command, g *globalOptions, offline bool, f func(ctx context.Context, e *env, n api.API) error) error {
	e, err := newEnv(cmd, g, false)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	a, release, err := e.api(ctx, offline)
	if err != nil {
		return err
	}
	err = f(ctx, e, a)
	if _, embedded := a.(*node.Node); embedded && offline && errors.Is(err, api.ErrNotFound) {
		err = fmt.Errorf("%w (%v)", err, errOffline)
	}
	if rerr := release(); err == nil {
		err = rerr
	}
	return err
}
