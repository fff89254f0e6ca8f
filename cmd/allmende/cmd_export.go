package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newExportCmd(g *globalOptions) *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "export <cid | sha256:<hex> | org/model[@revision]> -o FILE.car",
		Short: "Write content this node holds as a CAR file (to carry it offline)",
		Long: `Writes a CARv1 file, the format of Kubo's "ipfs dag export", holding every
block of the content: a CID's file or directory, the file with a whole-file
sha256, or a model's files. A model's CAR also carries its manifest and the
signed name record this node keeps for it (published here, fetched by a
trusted name, or imported from a CAR), so that "allmende import FILE.car" on another node, with no
network, can check the name against that node's trust list. A model with no
record here goes without one (run "allmende publish" first to name it).

Only what this node holds is written; nothing is asked of peers. The CAR is
written beside FILE.car and renamed into place once complete and synced, so
FILE.car appears whole or not at all. FILE.car must not exist.` + exitStatusHelp,
		Example: "  allmende export acme/tiny-llama -o /media/stick/tiny-llama.car\n" +
			"  allmende export bafybei... -o model.car --json",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				return usageError{fmt.Errorf("export: -o FILE.car is required")}
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				progress, done := progressBar("exporting")
				res, err := n.ExportCAR(ctx, api.ExportRequest{Ref: a[0], Out: abs}, progress)
				done()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				w := cmd.OutOrStdout()
				if res.Name != "" {
					signed := "no signed name record (the importer cannot name it)"
					if res.Publisher != "" {
						signed = "name record signed by " + res.Publisher
					}
					fmt.Fprintf(w, "%s@%s: manifest %s, %s\n", res.Name, res.Revision, res.Manifest, signed)
				}
				rate := float64(res.Bytes) / max(res.Seconds, 1e-9) / 1e6
				fmt.Fprintf(w, "exported %d blocks, %s, to %s in %.1fs (%.0f MB/s)\n",
					res.Blocks, units.HumanBytes(res.Bytes), res.Out, res.Seconds, rate)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "the CAR file to write (must not exist)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
