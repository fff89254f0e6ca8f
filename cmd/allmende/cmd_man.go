package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manSection is the manual section of allmende's pages (user commands).
const manSection = "1"

// newManCmd writes one man page per command into a directory, for packages
// (packaging/build-deb.sh). Hidden: users read the pages, not make them.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write man pages for every command into DIR",
		Hidden: true,
		Args:   args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := os.MkdirAll(a[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // the same source gives the same pages
			header := &doc.GenManHeader{Title: "ALLMENDE", Section: manSection, Source: "allmende", Manual: "allmende manual"}
			if err := doc.GenManTree(root, header, a[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
