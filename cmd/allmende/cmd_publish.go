package main

import (
	"context"
	"fmt"
	"time"

	"github.com/allmende/allmende/node/models"

	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newPublishCmd(g *globalOptions) *cobra.Command {
	var (
		validity time.Duration
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "publish org/model[@revision]",
		Short: "Sign a name record for an imported model and serve it to peers",
		Long: `Signs, with this home's publisher key (HOME/keys/publisher.key, created on
first use), a record saying "org/model at revision is this manifest", with a
sequence number above any earlier one and an expiry, and serves it to peers.
Peers that trust the key ("allmende trust add <key>") can then fetch the
model by name.` + exitStatusHelp,
		Example: "  allmende publish acme/tiny-llama\n  allmende publish acme/tiny-llama@v1 --validity 720h",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, rev, err := models.ParseModelRef(a[0])
			if err != nil {
				return err
			}
			return withAPIEnv(cmd, g, func(ctx context.Context, _ *env, n api.API) error {
				res, err := n.Publish(ctx, api.PublishRequest{Name: name, Revision: rev, Validity: validity})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s@%s -> %s (seq %d, valid until %s)\nsigned by %s\n",
					res.Name, res.Revision, res.Manifest, res.Seq, res.Expires.Format(time.RFC3339), res.Publisher)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&validity, "validity", models.DefaultRecordValidity, "how long the record is valid")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
