package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the release build (packaging/build-release.sh) with
// -ldflags "-X main.linkedVersion=... -X main.linkedCommit=...", for builds
// whose build info has no module version or VCS stamp (a source tarball,
// a git worktree). Never assigned at run time.
var (
	linkedVersion string
	linkedCommit  string
)

// Modules whose versions `allmende version` reports.
const (
	libp2pModule = "github.com/libp2p/go-libp2p"
	boxoModule   = "github.com/ipfs/boxo"
)

// versionInfo is what `allmende version --json` prints.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Libp2p     string `json:"libp2p"`
	Boxo       string `json:"boxo"`
}

// readVersion collects versionInfo from the binary's build info; version and
// commit are the linker-set values, used when the build info lacks them.
func readVersion(bi *debug.BuildInfo, version, commit string) versionInfo {
	vi := versionInfo{Version: bi.Main.Version, Go: bi.GoVersion, OS: runtime.GOOS, Arch: runtime.GOARCH}
	if vi.Version == "" || vi.Version == "(devel)" {
		vi.Version = "(devel)"
		if version != "" {
			vi.Version = version
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			vi.Commit = s.Value
		case "vcs.time":
			vi.CommitTime = s.Value
		case "vcs.modified":
			vi.Modified = s.Value == "true"
		case "GOOS":
			vi.OS = s.Value
		case "GOARCH":
			vi.Arch = s.Value
		}
	}
	if vi.Commit == "" {
		vi.Commit = commit
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		switch d.Path {
		case libp2pModule:
			vi.Libp2p = d.Version
		case boxoModule:
			vi.Boxo = d.Version
		}
	}
	return vi
}

func (vi versionInfo) print(w io.Writer) {
	commit := vi.Commit
	if commit == "" {
		commit = "unknown"
	}
	if vi.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "allmende  %s\ncommit    %s\n", vi.Version, commit)
	if vi.CommitTime != "" {
		fmt.Fprintf(w, "date      %s\n", vi.CommitTime)
	}
	fmt.Fprintf(w, "go        %s %s/%s\ngo-libp2p %s\nboxo      %s\n", vi.Go, vi.OS, vi.Arch, vi.Libp2p, vi.Boxo)
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of allmende, Go, go-libp2p and boxo",
		Long: `Prints allmende's version and commit, the Go release it was built with,
and the versions of go-libp2p and boxo inside it. Needs no home and no daemon.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, ok := debug.ReadBuildInfo()
			if !ok {
				return errors.New("this binary carries no build information")
			}
			vi := readVersion(bi, linkedVersion, linkedCommit)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), vi)
			}
			vi.print(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
