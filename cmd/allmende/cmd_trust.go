package main

import (
	"fmt"

	"github.com/allmende/allmende/node"
	"github.com/spf13/cobra"
)

func newTrustCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Manage the publishers whose model names this node accepts",
		Long: `A node resolves model names (org/model[@revision]) only through records
signed by publishers it trusts, unless a command is given --trust-any.
Publisher keys look like k51... (the form IPNS names take).` + exitStatusHelp,
	}
	cmd.AddCommand(newTrustAddCmd(g), newTrustLsCmd(g), newTrustKeyCmd(g))
	return cmd
}

func newTrustAddCmd(g *globalOptions) *cobra.Command {
	var label string
	cmd := &cobra.Command{
		Use:     "add <key>",
		Short:   "Trust a publisher key",
		Example: "  allmende trust add k51qzi5uqu5d... --label acme",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			key, err := node.Trust(e.home, a[0], label)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trusted %s\n", key)
			return nil
		},
	}
	cmd.Flags().StringVar(&label, "label", "", "a note on who this is")
	return cmd
}

func newTrustLsCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List trusted publisher keys",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			keys, err := node.Trusted(e.home)
			if err != nil {
				return err
			}
			if asJSON {
				if keys == nil {
					keys = []node.TrustedKey{}
				}
				return printJSON(cmd.OutOrStdout(), keys)
			}
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", k.Key, k.Label)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTrustKeyCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print this home's publisher key (created on first use), for others to trust",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			key, err := node.PublisherKey(e.home)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
}
