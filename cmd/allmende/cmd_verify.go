package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/node/api"
	"github.com/spf13/cobra"
)

// errVerifyFailed is returned (exit status 1) when verify leaves problems.
var errVerifyFailed = errors.New("verify: the store has problems left")

// verifyOptions are the flags of `allmende verify`.
type verifyOptions struct {
	repair     bool
	asJSON     bool
	provenance string
}

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Re-hash every block in the store; quarantine corrupt ones; find missing ones",
		Long: `Reads every block in the store and re-hashes it against its CID. A block
whose bytes do not match is moved to STORE/quarantine and reported. Then
every pinned root is walked to find blocks it needs that the store lacks.

With --repair, the damaged roots are fetched again from connected peers
(this needs a running daemon with peers, or bootstrap peers) and the store
is checked once more.

Pinned content a denylist (or the licence policy) now refuses to pass on
is reported too ("denied"): the node keeps it but neither serves nor
announces it; unpin it with rm to free the space.

With --provenance org/model[@rev], the store is not checked; instead the
local copy of that model is checked against the provenance attestations
kept for its manifest (signed by the mirrors that filled it): at least one
from a key in the trust list, trusted for the name, must describe exactly
its files and commit.

EXIT STATUS
  0  every pinned block is held and sound
  1  corrupt or missing blocks remain, no trusted attestation describes the
     model (--provenance), or the check itself failed
  2  bad usage`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			run := func(ctx context.Context, n api.API) error {
				return runVerify(ctx, cmd.OutOrStdout(), n, opts)
			}
			if opts.repair {
				return withAPI(cmd, g, run) // fetches from peers
			}
			return withLocalAPI(cmd, g, run)
		},
	}
	cmd.Flags().BoolVar(&opts.repair, "repair", false, "fetch damaged content again from peers")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&opts.provenance, "provenance", "", "check the model org/model[@rev] against trusted attestations instead")
	return cmd
}

func runVerify(ctx context.Context, w io.Writer, n api.API, opts verifyOptions) error {
	res, err := n.Verify(ctx, api.VerifyRequest{Repair: opts.repair, Provenance: opts.provenance})
	if err != nil {
		return err
	}
	if p := res.Provenance; p != nil {
		if opts.asJSON {
			return printJSON(w, p)
		}
		printProvenance(w, p)
		return nil
	}
	if opts.asJSON {
		if err := printJSON(w, res); err != nil {
			return err
		}
	} else {
		printVerify(w, res)
	}
	if !res.OK() {
		return errVerifyFailed
	}
	return nil
}

func printVerify(w io.Writer, res api.VerifyResult) {
	fmt.Fprintf(w, "checked %d blocks (%s)\n", res.Found.Blocks, units.HumanBytes(res.Found.Bytes))
	if n := res.Found.ChecksumsKept; n > 0 {
		fmt.Fprintf(w, "kept %d missing or stale block checksums (peers are served those blocks without re-hashing now)\n", n)
	}
	for _, c := range res.Found.Corrupt {
		fmt.Fprintf(w, "corrupt: %s (moved to %s)\n", c, res.Quarantine)
	}
	for _, e := range res.Unreadable {
		fmt.Fprintf(w, "unreadable: %s\n", e)
	}
	for _, c := range res.Missing {
		fmt.Fprintf(w, "missing: %s\n", c)
	}
	for _, c := range res.Repaired {
		fmt.Fprintf(w, "repaired: %s\n", c)
	}
	for _, e := range res.RepairErrors {
		fmt.Fprintf(w, "not repaired: %s\n", e)
	}
	for _, d := range res.Denied {
		fmt.Fprintf(w, "denied (kept, neither served nor announced): %s\n", d)
	}
	if res.OK() {
		fmt.Fprintln(w, "ok: every pinned block is held and sound")
	}
}

func printProvenance(w io.Writer, p *api.ProvenanceReport) {
	fmt.Fprintf(w, "%s@%s (commit %s, manifest %s)\n", p.Name, p.Revision, p.Commit, p.Manifest)
	for _, a := range p.Accepted {
		fmt.Fprintf(w, "attested by %s, trusted: %s at %s from %s, %d files, %s\n",
			a.Signer, a.Name, a.Commit, a.Upstream, a.Files, a.Time.Format(time.RFC3339))
	}
	for _, r := range p.Refused {
		fmt.Fprintf(w, "refused: %s\n", r)
	}
}
