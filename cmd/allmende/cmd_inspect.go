package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newInspectCmd(g *globalOptions) *cobra.Command {
	var (
		req    api.InspectRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "inspect <cid | sha256:<hex> | org/model[@revision]>",
		Short: "Show safetensors and GGUF headers without fetching the weights",
		Long: `Reads the header of a safetensors or GGUF file, or of every such file of a
named model, and shows tensor count, dtypes, parameter count and metadata
(architecture, quantisation). Only header bytes come from peers: for a named
model exactly the header, checked against the signed manifest; for a CID
the blocks that hold it. The bytes received are printed.` + exitStatusHelp,
		Example: "  allmende inspect acme/tiny-llama\n  allmende inspect sha256:3f1c...",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			req.Ref = a[0]
			return withLocalAPI(cmd, g, func(ctx context.Context, n api.API) error {
				res, err := n.Inspect(ctx, req)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				printInspect(cmd.OutOrStdout(), res)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&req.Include, "include", nil, "only files matching these glob patterns; repeat the flag or list them after it, comma- or space-separated")
	f.StringSliceVar(&req.Exclude, "exclude", nil, "skip files matching these glob patterns (several as with --include)")
	f.BoolVar(&req.TrustAny, "trust-any", false, "accept a name signed by any publisher")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	spreadFlag(cmd, "include", spreadMulti, 1)
	spreadFlag(cmd, "exclude", spreadMulti, 1)
	return cmd
}

func printInspect(w io.Writer, res api.InspectResult) {
	if res.Name != "" {
		fmt.Fprintf(w, "%s@%s (signed by %s)\n", res.Name, res.Revision, res.Publisher)
	}
	for _, a := range res.Attestations {
		trust := "not trusted here"
		if a.Trusted {
			trust = "trusted"
		}
		fmt.Fprintf(w, "attested by %s (%s): %s at %s from %s, %d files, %s\n", a.Signer, trust, a.Name, a.Commit, a.Upstream, a.Files, a.Time.Format(time.RFC3339))
	}
	for _, f := range res.Files {
		fmt.Fprintf(w, "%s %s (%s)\n", f.Path, f.CID, units.HumanBytes(f.Size))
		if f.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", f.Error)
			continue
		}
		i := f.Info
		fmt.Fprintf(w, "  format %s, header %d bytes, %d tensors, %d parameters\n", i.Format, i.HeaderSize, i.Tensors, i.Params)
		fmt.Fprintf(w, "  dtypes: %s\n", i.DTypeList())
		if i.Architecture != "" || i.Quantization != "" {
			fmt.Fprintf(w, "  architecture: %s, quantization: %s\n", i.Architecture, i.Quantization)
		}
		keys := make([]string, 0, len(i.Metadata))
		for k := range i.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s = %s\n", k, i.Metadata[k])
		}
	}
	fmt.Fprintf(w, "received from peers: %d bytes\n", res.Received)
}
