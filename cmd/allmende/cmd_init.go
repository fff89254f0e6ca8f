package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newInitCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the home directory: identity key, config.yaml, empty store",
		Long: `Creates HOME (default ~/.allmende) with a new identity key, a config.yaml
and an empty store. Safe to run again: it changes nothing that exists. Other
commands run it on first use.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			if err := e.ensureInit(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "initialised", e.home)
			return nil
		},
	}
}
