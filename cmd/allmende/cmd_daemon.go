package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/allmende/allmende/node"
	"github.com/spf13/cobra"
)

func newDaemonCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a node in the foreground, seeding everything in the store",
		Long: `Runs an allmende node until SIGINT or SIGTERM. It serves every block in its
store to peers that ask, and answers the local HTTP API the other commands
use. When ready it writes the API's URL to HOME/api; it removes the file on
exit. A second daemon on the same HOME refuses to start.` + exitStatusHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := newEnv(cmd, g, true)
			if err != nil {
				return err
			}
			if err := e.ensureInit(); err != nil {
				return err
			}
			ready := func(url string) {
				fmt.Fprintf(cmd.OutOrStdout(), "allmende daemon ready, API at %s\n", url)
			}
			// The process's one Prometheus registry: the API and the
			// mirror serve it at /metrics.
			reg, stopMetrics, err := node.ProcessMetrics()
			if err != nil {
				return err
			}
			cfg := e.nodeConfig()
			cfg.Metrics = reg
			err = node.RunDaemon(cmd.Context(), cfg, ready)
			return errors.Join(err, stopMetrics(context.Background()))
		},
	}
	cmd.Flags().String("api-addr", "", "API listen address host:port (overrides api.addr)")
	deprecatedAlias(cmd.Flags(), "api.addr", "api-addr")
	return cmd
}
