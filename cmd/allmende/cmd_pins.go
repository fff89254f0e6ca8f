package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newLsCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List pinned roots",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLocalAPI(cmd, g, func(ctx context.Context, n api.API) error {
				pins, err := n.List(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), pins)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "CID\tNAME\tSIZE")
				for _, p := range pins {
					fmt.Fprintf(w, "%s\t%s\t%s\n", p.CID, p.Name, units.HumanBytes(p.Size))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rm <cid>",
		Short: "Unpin a root; `allmende gc` then frees its blocks",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := api.ParseCID(a[0]); err != nil {
				return err
			}
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				if err := n.Remove(ctx, a[0]); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "unpinned", a[0])
				return nil
			})
		},
	}
}

func newGCCmd(g *globalOptions) *cobra.Command {
	var asJSON, denied bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blocks that no pin holds",
		Long: `Deletes every block no pinned root reaches. Pinned blocks are never deleted.

With --denied it first unpins every root a denylist (or the licence
policy) now refuses to pass on, the roots "verify" lists as denied, and
names each with its rule; their blocks are then deleted like any other
unpinned block.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				res, err := n.GC(ctx, api.GCRequest{Denied: denied})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				for _, u := range res.Unpinned {
					fmt.Fprintf(cmd.OutOrStdout(), "unpinned denied: %s\n", u)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %d blocks (%s), kept %d\n", res.Removed, units.HumanBytes(res.Freed), res.Kept)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&denied, "denied", false, "first unpin the roots a denylist or the licence policy now refuses")
	return cmd
}
