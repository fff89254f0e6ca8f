package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store/hfcache"
	"github.com/allmende/allmende/store/ollama"
	"github.com/spf13/cobra"
)

// hfCacheDefault is the --hf-cache value given without a directory: the
// default cache, which help shows as --hf-cache DIR[="$HF_HUB_CACHE"].
const hfCacheDefault = "$HF_HUB_CACHE"

// modelFetchOptions are fetch's flags for model names and sha256 refs.
type modelFetchOptions struct {
	include, exclude []string
	hfCache          string
	ollamaStore      string
	trustAny         bool
}

func addModelFetchFlags(cmd *cobra.Command, o *modelFetchOptions) {
	f := cmd.Flags()
	f.StringSliceVar(&o.include, "include", nil, "with a model name: only files matching these glob patterns; repeat the flag or list them after it, comma- or space-separated (--include '*.json' '*.safetensors')")
	f.StringSliceVar(&o.exclude, "exclude", nil, "with a model name: skip files matching these glob patterns (several as with --include)")
	f.StringVar(&o.hfCache, "hf-cache", "", "with a model name: lay it out in the Hugging Face cache `DIR` instead of -o (--hf-cache DIR or --hf-cache=DIR); given alone, in $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub")
	f.Lookup("hf-cache").NoOptDefVal = hfCacheDefault
	f.StringVar(&o.ollamaStore, "ollama-store", "", "with ollama:<name>: the Ollama store `DIR` to write the model into; given alone (or not at all), $OLLAMA_MODELS, else ~/.ollama/models")
	f.Lookup("ollama-store").NoOptDefVal = ollamaStoreDefault
	f.BoolVar(&o.trustAny, "trust-any", false, "accept a name signed by any publisher, not only trusted ones")
	spreadFlag(cmd, "include", spreadMulti, 1)
	spreadFlag(cmd, "exclude", spreadMulti, 1)
	spreadFlag(cmd, "hf-cache", spreadOptional, 1)
	spreadFlag(cmd, "ollama-store", spreadOptional, 1)
}

// isModelRef reports whether ref is a model name or sha256:<hex> rather
// than a CID.
func isModelRef(ref string) bool {
	return strings.HasPrefix(ref, api.SHA256Prefix) || strings.Contains(ref, "/") && !strings.HasPrefix(ref, "/ipfs/")
}

// ollamaPrefix starts a fetch of an Ollama model by its Ollama name;
// ollamaStoreDefault is --ollama-store given without a directory.
const (
	ollamaPrefix       = "ollama:"
	ollamaStoreDefault = "$OLLAMA_MODELS"
)

// runFetchOllama fetches ollama:<name>[:<tag>] into an Ollama store.
func runFetchOllama(cmd *cobra.Command, g *globalOptions, name, out string, asJSON bool, o modelFetchOptions) error {
	n, err := ollama.ParseName(name)
	if err != nil {
		return usageError{fmt.Errorf("fetch: %w", err)}
	}
	if out != "" || o.hfCache != "" || len(o.include)+len(o.exclude) > 0 {
		return usageError{fmt.Errorf("fetch ollama:%s writes into an Ollama store (--ollama-store); -o, --hf-cache, --include and --exclude do not apply", name)}
	}
	dir := o.ollamaStore
	if dir == "" || dir == ollamaStoreDefault {
		if dir, err = ollama.DefaultDir(); err != nil {
			return err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	req := api.ModelFetchRequest{Ref: n.Repository() + "@" + n.Tag, OllamaStore: dir, OllamaName: n.String(), TrustAny: o.trustAny}
	return runModelRequest(cmd, g, req, asJSON)
}

func runFetchModel(cmd *cobra.Command, g *globalOptions, ref, out string, asJSON bool, o modelFetchOptions) error {
	req := api.ModelFetchRequest{Ref: ref, Include: o.include, Exclude: o.exclude, TrustAny: o.trustAny}
	var err error
	if o.ollamaStore != "" {
		return usageError{fmt.Errorf("fetch: --ollama-store needs an ollama:<name> reference")}
	}
	switch {
	case o.hfCache != "" && out != "":
		return usageError{fmt.Errorf("fetch: -o and --hf-cache exclude each other")}
	case o.hfCache != "":
		if req.HFCache, err = hfCacheDir(o.hfCache); err != nil {
			return err
		}
	case out == "":
		return usageError{fmt.Errorf("fetch: -o <out> or --hf-cache is required")}
	default:
		if req.Out, err = filepath.Abs(out); err != nil {
			return err
		}
	}
	return runModelRequest(cmd, g, req, asJSON)
}

// runModelRequest runs a model fetch and prints its result.
func runModelRequest(cmd *cobra.Command, g *globalOptions, req api.ModelFetchRequest, asJSON bool) error {
	return withAPIEnv(cmd, g, func(ctx context.Context, e *env, n api.API) error {
		req.Timeout = e.cfg.FetchTimeout
		progress, done := progressBar("fetching")
		res, err := n.FetchModel(ctx, req, progress)
		done()
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), res)
		}
		w := cmd.OutOrStdout()
		if res.Name != "" {
			trust := "trusted"
			if !res.Trusted {
				trust = "NOT in your trust list (--trust-any)"
			}
			fmt.Fprintf(w, "%s@%s (commit %s) signed by %s, %s\n", res.Name, res.Revision, res.Commit, res.Publisher, trust)
		}
		rate := float64(res.Received) / max(res.Seconds, 1e-9) / 1e6
		fmt.Fprintf(w, "fetched %d files to %s: %s, %s from peers in %.1fs (%.0f MB/s), sha256 verified\n",
			res.Files, res.Out, units.HumanBytes(res.Size), units.HumanBytes(res.Received), res.Seconds, rate)
		return nil
	})
}

func hfCacheDir(flag string) (string, error) {
	if flag != hfCacheDefault {
		return filepath.Abs(flag)
	}
	d, err := hfcache.DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Abs(d)
}
