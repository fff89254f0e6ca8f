package main

import (
	"context"
	"fmt"

	"github.com/allmende/allmende/node"
	"github.com/spf13/cobra"
)

// withModelAPI runs f against the node's model API.
func withModelAPI(cmd *cobra.Command, g *globalOptions, f func(ctx context.Context, e *env, api node.ModelAPI) error) error {
	return withAPIEnv(cmd, g, func(ctx context.Context, e *env, api node.API) error {
		m, ok := api.(node.ModelAPI)
		if !ok {
			return fmt.Errorf("this node does not offer the model API")
		}
		return f(ctx, e, m)
	})
}
