// Package api is the contract between allmende's CLI and a node: the API
// interface, its request and result types, progress reports, and the error
// kinds callers tell apart with errors.Is (ErrBadInput and the others in
// errors.go). A node implements API in-process (*node.Node) and over HTTP
// (the daemon's local API, whose client implements it too), so every
// command works either way.
//
// The package imports nothing else of allmende, so every other package may
// use it; the types here carry only what crosses the API (JSON tags are
// the wire format of the local HTTP API).
package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
)

// API is what the CLI can ask of a node.
type API interface {
	// ID returns the node's peer ID and full multiaddrs.
	ID(ctx context.Context) (IDInfo, error)
	// Connect dials the peer at addr, a multiaddr ending in /p2p/<id>.
	Connect(ctx context.Context, addr string) error
	// Peers lists connected peers, each once.
	Peers(ctx context.Context) ([]PeerInfo, error)
	// Add imports the file or directory at path (absolute, on the node's
	// machine), pins it and returns its root.
	Add(ctx context.Context, path string, progress ProgressFunc) (AddResult, error)
	// Fetch gets content by CID from peers and writes it at req.Out.
	Fetch(ctx context.Context, req FetchRequest, progress ProgressFunc) (FetchResult, error)
	// List returns the pinned roots.
	List(ctx context.Context) ([]PinInfo, error)
	// Remove unpins a root.
	Remove(ctx context.Context, ref string) error
	// GC frees every block no pin holds; with req.Denied it first unpins
	// the roots the node's policy now refuses to pass on.
	GC(ctx context.Context, req GCRequest) (GCResult, error)
	// Stats returns transfer counters since the node started.
	Stats(ctx context.Context) (Stats, error)
	// Verify re-hashes the store and, with req.Repair, fetches what is
	// damaged again.
	Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error)
	// FindProviders asks the DHT which peers announce ref (a CID).
	FindProviders(ctx context.Context, ref string) ([]string, error)

	// Import imports a folder or Hugging Face cache repository as a
	// named model.
	Import(ctx context.Context, req ImportRequest, progress ProgressFunc) (ImportResult, error)
	// Publish signs a name record for a model this node holds.
	Publish(ctx context.Context, req PublishRequest) (PublishResult, error)
	// FetchModel fetches a model by name or a file by whole-file sha256.
	FetchModel(ctx context.Context, req ModelFetchRequest, progress ProgressFunc) (ModelFetchResult, error)
	// Inspect parses model file headers, fetching only header bytes.
	Inspect(ctx context.Context, req InspectRequest) (InspectResult, error)

	// ExportCAR writes a CARv1 of content this node holds (a model with
	// its manifest and signed name record) at req.Out, atomically.
	ExportCAR(ctx context.Context, req ExportRequest, progress ProgressFunc) (ExportResult, error)
	// ImportCAR reads a CAR file, every block checked against its CID,
	// and pins its roots only if every one is complete.
	ImportCAR(ctx context.Context, req CARImportRequest, progress ProgressFunc) (CARImportResult, error)
}

// SHA256Prefix starts a reference by whole-file sha256 (sha256:<hex>).
const SHA256Prefix = "sha256:"

// ParseCID parses a CID given on the command line or over the API; a
// leading /ipfs/ is allowed. Anything else is ErrBadInput.
func ParseCID(s string) (cid.Cid, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "/ipfs/")
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %q is not a CID: %v", ErrBadInput, s, err)
	}
	return c, nil
}
