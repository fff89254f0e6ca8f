package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

// carSuffix names the files `import` reads as CARs.
const carSuffix = ".car"

// isCARPath reports whether path names a CAR file.
func isCARPath(path string) bool { return strings.HasSuffix(strings.ToLower(path), carSuffix) }

// checkCARArgs refuses a mix of CARs and folders, and the flags that
// describe a folder's model (a CAR's manifest says all that).
func checkCARArgs(cmd *cobra.Command, files []string, asCAR bool) error {
	for _, f := range files {
		if !asCAR && !isCARPath(f) {
			return usageError{fmt.Errorf("import: %s is not a .car file: import CAR files (or pass --car) or one folder", f)}
		}
	}
	for _, name := range []string{"name", "revision", "license", "kind", "source", "force", "copy"} {
		if cmd.Flags().Changed(name) {
			return usageError{fmt.Errorf("import: --%s is for folders; a CAR's manifest describes its model", name)}
		}
	}
	return nil
}

// carImportLine is one file's outcome in `import --json` of CARs.
type carImportLine struct {
	api.CARImportResult
	Error string `json:"error,omitempty"`
}

// runImportCARs imports each file, going on after a failure; the error
// returned joins every file's.
func runImportCARs(cmd *cobra.Command, g *globalOptions, files []string, asJSON bool) error {
	paths := make([]string, len(files))
	for i, f := range files {
		p, err := localPath("import", f, os.Stat)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	return withAPI(cmd, g, func(ctx context.Context, n api.API) error {
		var errs []error
		var lines []carImportLine
		for _, p := range paths {
			progress, done := progressBar("importing " + filepath.Base(p))
			res, err := n.ImportCAR(ctx, api.CARImportRequest{Path: p}, progress)
			done()
			line := carImportLine{CARImportResult: res}
			line.Path = p
			if err != nil {
				errs = append(errs, err)
				line.Error = err.Error()
				if !asJSON && len(paths) > 1 {
					fmt.Fprintln(cmd.ErrOrStderr(), "allmende:", err)
				}
			} else if !asJSON {
				printCARImport(cmd, res)
			}
			lines = append(lines, line)
		}
		if asJSON {
			if err := printJSON(cmd.OutOrStdout(), lines); err != nil {
				return err
			}
		}
		if len(errs) == 1 && len(paths) == 1 {
			return errs[0]
		}
		if len(errs) > 0 {
			return carImportError{errors.Join(errs...), len(errs), len(paths)}
		}
		return nil
	})
}

// carImportError sums up failed CAR imports of several files; each was
// reported already.
type carImportError struct {
	err        error
	failed, of int
}

func (e carImportError) Error() string {
	return fmt.Sprintf("import: %d of %d CAR file(s) failed", e.failed, e.of)
}

func (e carImportError) Unwrap() error { return e.err }

func printCARImport(cmd *cobra.Command, res api.CARImportResult) {
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "imported %s: %d blocks verified (%d new), %s, %d root(s) pinned\n",
		res.Path, res.Blocks, res.Stored, units.HumanBytes(res.Bytes), len(res.Pinned))
	for _, n := range res.Names {
		state := "trusted: the name resolves here now"
		if !n.Trusted {
			state = "NOT trusted"
		}
		fmt.Fprintf(w, "  %s@%s signed by %s, %s", n.Name, n.Revision, n.Publisher, state)
		if n.Note != "" {
			fmt.Fprintf(w, " (%s)", n.Note)
		}
		fmt.Fprintln(w)
	}
	for _, c := range res.Pinned {
		fmt.Fprintln(cmd.OutOrStdout(), c)
	}
}
