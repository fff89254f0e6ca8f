package main

import (
	"github.com/allmende/allmende/node/p2p"
	"github.com/spf13/cobra"
)

func newSwarmKeyCmd(*globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "swarm-key",
		Short: "Print a new private network key (swarm.key) on stdout",
		Long: `Prints a new random libp2p private network key in the IPFS swarm.key
format. Give the same file to every node of the private swarm and point
swarm.key (ALLMENDE_SWARM_KEY) at it: only nodes with the key connect.

EXIT STATUS
  0 the key was printed, 1 failure.`,
		Example: `  allmende swarm-key > ~/.allmende/swarm.key
  ALLMENDE_SWARM_KEY=~/.allmende/swarm.key allmende daemon`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := p2p.GenerateSwarmKey()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(key)
			return err
		},
	}
}
