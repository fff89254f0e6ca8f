package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

func newFetchCmd(g *globalOptions) *cobra.Command {
	var (
		out    string
		asJSON bool
		mopts  modelFetchOptions
	)
	cmd := &cobra.Command{
		Use:   "fetch <cid | sha256:<hex> | org/model[@revision] | ollama:<name>[:<tag>]> -o <out>",
		Short: "Fetch a file or directory from peers, verified, to a path",
		Long: `Fetches the file or directory <cid> from connected peers, many blocks at a
time, verifying every block against its CID. The result is assembled beside
<out> and renamed into place once complete, so <out> appears whole or not at
all. Fetched blocks stay in the store and are pinned, so this node seeds
them too and an interrupted fetch resumes where it stopped.

Uses the running daemon, or an embedded node if none runs. Fails with status
1 when no peer sends a block for fetch.timeout.

sha256:<hex> fetches one file by the whole-file sha256 Hugging Face shows,
found by asking peers; the bytes are checked against the sha256 too.
org/model[@revision] resolves the name through records signed by trusted
publishers (see "allmende trust"; --trust-any accepts any), prints who
signed, and fetches the files of its manifest, each checked against its
sha256; --include/--exclude select files, --hf-cache lays the model out as
the Hugging Face cache (blobs/, snapshots/<commit>/, refs/<revision>).
A name signed only by untrusted publishers (or by trusted keys not trusted
for that name, see "allmende trust add --names"), or whose records do not
verify (tampered, expired), is refused with status 1 and a message saying
why. A record from a trusted publisher always wins, even with --trust-any.
sha256:<hex> tries each file peers name for it until one has that sha256,
and bans a peer that named other content.
ollama:<name>[:<tag>] (e.g. ollama:llama3.2:1b, i.e. library/llama3.2@1b)
resolves the name as above and writes the model into an Ollama store
(--ollama-store DIR, default $OLLAMA_MODELS or ~/.ollama/models): the blobs
it lacks, each checked against its digest, then the manifest, so that
"ollama list" shows it.` + exitStatusHelp,
		Example: "  allmende fetch bafybei... -o ./model\n  allmende fetch acme/tiny-llama --include '*.gguf' -o ./tiny\n" +
			"  allmende fetch acme/tiny-llama@main --hf-cache\n  allmende fetch sha256:3f1c... -o model.safetensors\n" +
			"  allmende fetch ollama:llama3.2:1b --ollama-store",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if name, ok := strings.CutPrefix(a[0], ollamaPrefix); ok {
				return runFetchOllama(cmd, g, name, out, asJSON, mopts)
			}
			if isModelRef(a[0]) {
				return runFetchModel(cmd, g, a[0], out, asJSON, mopts)
			}
			if out == "" {
				return usageError{fmt.Errorf("fetch: -o <out> is required")}
			}
			if _, err := api.ParseCID(a[0]); err != nil {
				return err
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			return withAPIEnv(cmd, g, func(ctx context.Context, e *env, n api.API) error {
				progress, done := progressBar("fetching")
				req := api.FetchRequest{Ref: a[0], Out: abs, Timeout: e.cfg.FetchTimeout}
				res, err := n.Fetch(ctx, req, progress)
				done()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				rate := float64(res.Received) / max(res.Seconds, 1e-9) / 1e6
				fmt.Fprintf(cmd.OutOrStdout(), "fetched %s to %s: %s, %s from peers in %.1fs (%.0f MB/s)\n",
					res.CID, res.Out, units.HumanBytes(res.Size), units.HumanBytes(res.Received), res.Seconds, rate)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the file or directory (must not exist)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addModelFetchFlags(cmd, &mopts)
	cmd.Flags().Duration("fetch-timeout", 0, "fail when no peer sent a block for this long (default from config, 2m)")
	deprecatedAlias(cmd.Flags(), "fetch.timeout", "fetch-timeout")
	return cmd
}
