package main

import (
	"fmt"
	"strings"

	"github.com/allmende/allmende/node/trust"
	"github.com/spf13/cobra"
)

func newTrustCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Manage the publishers whose model names this node accepts",
		Long: `A node resolves model names (org/model[@revision]) only through records
signed by publishers it trusts, unless a command is given --trust-any.
Publisher keys look like k51... (the form IPNS names take).

Each trusted key may sign only the names it is trusted for: the patterns
given with "trust add --names" (org/name with * ? [...] as wildcards,
e.g. 'acme/*'), or, without --names, the names under the org of the first
record from that key this node accepts (bound then, and shown by
"trust ls"). A record for another name is refused like an untrusted one.
A record from a trusted publisher always wins over untrusted ones, even
with --trust-any.` + exitStatusHelp,
	}
	cmd.AddCommand(newTrustAddCmd(g), newTrustLsCmd(g), newTrustKeyCmd(g))
	return cmd
}

func newTrustAddCmd(g *globalOptions) *cobra.Command {
	var (
		label string
		names []string
	)
	cmd := &cobra.Command{
		Use:   "add <key> [--names 'org/*']...",
		Short: "Trust a publisher key for some names",
		Long: `Trusts a publisher key to sign the names matching --names (org/name
patterns, * ? [...] as wildcards; repeat the flag or separate with commas).
Without --names the key is trusted for the names under the org of the first
record from it this node accepts, and bound to 'org/*' then. Adding a key
again replaces its patterns (when --names is given) and its label.` + exitStatusHelp,
		Example: "  allmende trust add k51qzi5uqu5d... --label acme --names 'acme/*'\n" +
			"  allmende trust add k51qzi5uqu5d... --names 'acme/*,acme-datasets/*'",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			key, err := trust.Add(e.home, a[0], label, names)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trusted %s for %s\n", key, trustedFor(names))
			return nil
		},
	}
	cmd.Flags().StringVar(&label, "label", "", "a note on who this is")
	cmd.Flags().StringSliceVar(&names, "names", nil, "name patterns the key may sign (e.g. 'acme/*'); default: the org of its first accepted record")
	return cmd
}

// trustedFor describes a key's name patterns for people.
func trustedFor(names []string) string {
	if len(names) == 0 {
		return "the names under the org of its first accepted record"
	}
	return strings.Join(names, ", ")
}

func newTrustLsCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List trusted publisher keys, their labels and the names each may sign",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := newEnv(cmd, g, false)
			if err != nil {
				return err
			}
			keys, err := trust.Trusted(e.home)
			if err != nil {
				return err
			}
			if asJSON {
				if keys == nil {
					keys = []trust.Key{}
				}
				return printJSON(cmd.OutOrStdout(), keys)
			}
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", k.Key, k.Label, trustedFor(k.Names))
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
			key, err := trust.PublisherKey(e.home)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
}
