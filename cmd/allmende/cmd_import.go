package main

import (
	"context"
	"fmt"
	"os"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store/ollama"
	"github.com/spf13/cobra"
)

func newImportCmd(g *globalOptions) *cobra.Command {
	var (
		req    api.ImportRequest
		asJSON bool
		asCAR  bool
	)
	cmd := &cobra.Command{
		Use:   "import <dir> [--name org/model] | import FILE.car... | import --ollama [DIR]",
		Short: "Import a folder or Hugging Face cache repository as a named model, CAR files, or an Ollama store",
		Long: `Imports a model or dataset folder: every file is read once, chunked into the
store (unixfs-v1-2025) and hashed (sha256, and git blob sha1 for files under
10 MiB, as Hugging Face does). A manifest listing every file is stored as a
block and pinned with the files. safetensors and GGUF headers are checked;
a malformed one stops the import unless --force.

The files are not copied: the store references them in place and re-hashes
what it reads, so a file changed or deleted afterwards is no longer served
(reads of it fail). Keep the folder, or import with --copy.

<dir> may be a Hugging Face cache repository (models--org--name with blobs/,
snapshots/ and refs/): then the name, the commit and the revision (refs/main
unless --revision) come from the cache, and every file is checked against
its blob name. The last line of stdout is the manifest CID; "allmende
publish" signs a name for it.

FILE.car... (paths ending in .car, or any files with --car) are CAR files,
as "allmende export" and Kubo's "ipfs dag export" write them: each is read
in place, once, every block checked against its CID before it is kept. A
CAR's roots are pinned only when every one is complete; a truncated or
tampered CAR fails naming the bad block and pins nothing (the blocks
verified before it stay for a retry; "allmende gc" frees them). The name
records a model's CAR carries are judged like records from peers: one
from a publisher trusted for its name names the model at once; one from
another publisher is kept but unused until "allmende trust add <key>".
The other files are still imported when one fails. The roots pinned are
printed on stdout, one per line.

--ollama imports every model of an Ollama store (DIR, default $OLLAMA_MODELS
or ~/.ollama/models) as a model namespace/model@tag (llama3.2:1b becomes
library/llama3.2@1b): the blobs are read in place and checked against their
digests, and stdout gets one manifest CID per model. Other nodes fetch it
with "allmende fetch ollama:<name>[:<tag>] --ollama-store", and a mirror
serves it to "ollama pull".` + exitStatusHelp,
		Example: "  allmende import ./tiny-llama --name acme/tiny-llama --license apache-2.0\n" +
			"  allmende import ~/.cache/huggingface/hub/models--acme--tiny-llama\n" +
			"  allmende import /media/stick/*.car\n" +
			"  allmende import --ollama",
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			if req.Ollama {
				if asCAR || len(a) > 1 {
					return usageError{fmt.Errorf("import --ollama: at most one Ollama store folder, and no CAR files")}
				}
				return runImportOllama(cmd, g, req, a)
			}
			if len(a) == 0 {
				return usageError{fmt.Errorf("import: requires at least 1 arg: a folder, CAR files, or --ollama")}
			}
			if asCAR || isCARPath(a[0]) {
				if err := checkCARArgs(cmd, a, asCAR); err != nil {
					return err
				}
				return runImportCARs(cmd, g, a, asJSON)
			}
			if len(a) > 1 {
				return usageError{fmt.Errorf("import: one folder at a time (or CAR files, named *.car or with --car)")}
			}
			path, err := localPath("import", a[0], os.Stat)
			if err != nil {
				return err
			}
			req.Path = path
			return withAPIEnv(cmd, g, func(ctx context.Context, _ *env, n api.API) error {
				progress, done := progressBar("importing")
				res, err := n.Import(ctx, req, progress)
				done()
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "imported %s %s@%s (commit %s): %d files, %s, root %s\n",
					res.Kind, res.Name, res.Revision, res.Commit, res.Files, units.HumanBytes(res.Size), res.Root)
				fmt.Fprintln(cmd.OutOrStdout(), res.Manifest)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "model name org/model (from the cache for a Hugging Face cache directory)")
	f.StringVar(&req.Revision, "revision", "", "revision (default main)")
	f.StringVar(&req.License, "license", "", "license, e.g. apache-2.0 (default: the model card's, README.md)")
	f.StringVar(&req.Kind, "kind", "", "model or dataset (default model)")
	f.StringVar(&req.Source, "source", "", "where the files came from (URL or note)")
	f.BoolVar(&req.Force, "force", false, "import files with malformed safetensors/GGUF headers")
	f.BoolVar(&req.Copy, "copy", false, "store a copy of the files instead of reading them in place")
	f.BoolVar(&req.Ollama, "ollama", false, "import the models of an Ollama store (DIR, default $OLLAMA_MODELS or ~/.ollama/models)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&asCAR, "car", false, "the arguments are CAR files, whatever their names")
	return cmd
}

// runImportOllama imports an Ollama store's models.
func runImportOllama(cmd *cobra.Command, g *globalOptions, req api.ImportRequest, a []string) error {
	dir := ""
	if len(a) == 1 {
		dir = a[0]
	} else {
		var err error
		if dir, err = ollama.DefaultDir(); err != nil {
			return err
		}
	}
	if req.Name != "" || req.Revision != "" || req.Kind != "" {
		return usageError{fmt.Errorf("import --ollama: names come from the Ollama store; --name, --revision and --kind do not apply")}
	}
	path, err := localPath("import --ollama", dir, os.Stat)
	if err != nil {
		return err
	}
	req.Path = path
	return withAPIEnv(cmd, g, func(ctx context.Context, _ *env, n api.API) error {
		res, err := n.Import(ctx, req, nil)
		if err != nil {
			return err
		}
		for _, m := range res.Models {
			fmt.Fprintf(cmd.ErrOrStderr(), "imported Ollama model as %s@%s (commit %s): %d files, %s\n",
				m.Name, m.Revision, m.Commit, m.Files, units.HumanBytes(m.Size))
			fmt.Fprintln(cmd.OutOrStdout(), m.Manifest)
		}
		return nil
	})
}
