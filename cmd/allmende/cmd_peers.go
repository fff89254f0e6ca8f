package main

import (
	"context"
	"fmt"

	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newIDCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show this node's peer ID and addresses",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLocalAPI(cmd, g, func(ctx context.Context, n api.API) error {
				info, err := n.ID(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), info)
				}
				fmt.Fprintln(cmd.OutOrStdout(), info.ID)
				for _, a := range info.Addrs {
					fmt.Fprintln(cmd.OutOrStdout(), " ", a)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newConnectCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "connect <multiaddr>",
		Short: "Connect to a peer (a multiaddr ending in /p2p/<peer id>)",
		Example: `  allmende connect /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...
  allmende id --json   # on the other machine, to see its addresses`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				if err := n.Connect(ctx, a[0]); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "connected", a[0])
				return nil
			})
		},
	}
}

func newPeersCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List connected peers",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
				peers, err := n.Peers(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					if peers == nil {
						peers = []api.PeerInfo{}
					}
					return printJSON(cmd.OutOrStdout(), peers)
				}
				for _, p := range peers {
					fmt.Fprintf(cmd.OutOrStdout(), "%s/p2p/%s\n", p.Addr, p.ID)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
