package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store/hfcache"
	"github.com/spf13/cobra"
)

// hfCacheDefault is the --hf-cache value given without a directory.
const hfCacheDefault = "default"

// modelFetchOptions are fetch's flags for model names and sha256 refs.
type modelFetchOptions struct {
	include, exclude []string
	hfCache          string
	trustAny         bool
}

func addModelFetchFlags(cmd *cobra.Command, o *modelFetchOptions) {
	f := cmd.Flags()
	f.StringSliceVar(&o.include, "include", nil, "with a model name: only files matching these glob patterns (e.g. '*.safetensors,config.json')")
	f.StringSliceVar(&o.exclude, "exclude", nil, "with a model name: skip files matching these glob patterns")
	f.StringVar(&o.hfCache, "hf-cache", "", "with a model name: lay it out as the Hugging Face cache instead of -o; --hf-cache=DIR, or alone for $HF_HUB_CACHE or ~/.cache/huggingface/hub")
	f.Lookup("hf-cache").NoOptDefVal = hfCacheDefault
	f.BoolVar(&o.trustAny, "trust-any", false, "accept a name signed by any publisher, not only trusted ones")
}

// isModelRef reports whether ref is a model name or sha256:<hex> rather
// than a CID.
func isModelRef(ref string) bool {
	return strings.HasPrefix(ref, api.SHA256Prefix) || strings.Contains(ref, "/") && !strings.HasPrefix(ref, "/ipfs/")
}

func runFetchModel(cmd *cobra.Command, g *globalOptions, ref, out string, asJSON bool, o modelFetchOptions) error {
	req := api.ModelFetchRequest{Ref: ref, Include: o.include, Exclude: o.exclude, TrustAny: o.trustAny}
	var err error
	switch {
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
