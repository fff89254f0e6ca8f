package main

import (
	"context"
	"fmt"
	"os"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newAddCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add <path>",
		Short: "Import a file or directory, pin it and seed it",
		Long: `Imports a file or directory into the store as a UnixFS DAG (CIDv1, raw
leaves, sha2-256, 1 MiB chunks: the unixfs-v1-2025 profile, so Kubo with that
profile gives the same CID), pins it, and seeds it. The last line of stdout
is the root CID.` + exitStatusHelp,
		Example: "  allmende add ./Llama-3-8B\n  CID=$(allmende add model.gguf | tail -n1)",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path, err := localPath("add", a[0], os.Lstat)
			if err != nil {
				return err
			}
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				progress, done := progressBar("adding")
				res, err := n.Add(ctx, path, progress)
				done()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "added %s (%s)\n", res.Name, units.HumanBytes(res.Size))
				fmt.Fprintln(cmd.OutOrStdout(), res.CID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
