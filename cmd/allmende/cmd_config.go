package main

import (
	"github.com/allmende/allmende/configs"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "defaults",
		Short: "Print every config key with its default and documentation",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(configs.Default())
			return err
		},
	}, &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, profile, file, env, flags)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, _, err := loadConfig(g, nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v.AllSettings())
		},
	})
	return cmd
}
