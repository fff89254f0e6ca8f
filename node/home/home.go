// Package home says where everything lives in an allmende home directory
// (HOME, default ~/.allmende), like syncthing's lib/locations: every file
// and directory a node keeps there is named here, once, and nowhere else.
// It only computes paths; creating, locking and reading them is the job of
// the packages that own the files.
//
// Partial files beside a fetch's output are named by store.PartialPath.
package home

import "path/filepath"

// Dir is a home directory.
type Dir string

// Names inside a home directory.
const (
	identityFile     = "identity.key"
	configFile       = "config.yaml"
	apiFile          = "api"
	tokenFile        = "api.token"
	lockFile         = "lock"
	storeDir         = "store"
	mirrorFile       = "mirror"
	mirrorCacheFile  = "mirror-cache.json"
	fillDir          = "fill"
	fillKeptFile     = "kept.json"
	modelIndexFile   = "models/index.json"
	recordsDir       = "models/records"
	publisherKeyFile = "keys/publisher.key"
	trustFile        = "trust.json"
	denylistsDir     = "denylists"
	fetchedListsDir  = "denylists-fetched"
	attestationsDir  = "attestations"
)

// FillPartSuffix ends the name of a file being filled from a mirror's
// upstream in Fills. A daemon starting removes every such file: a fill a
// crash cut short is never kept.
const FillPartSuffix = ".part"

func (d Dir) join(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// Identity is the node's libp2p private key.
func (d Dir) Identity() string { return d.join(identityFile) }

// Config is the configuration file `allmende init` writes.
func (d Dir) Config() string { return d.join(configFile) }

// APIFile holds the running daemon's API base URL, one line.
func (d Dir) APIFile() string { return d.join(apiFile) }

// Token holds the token every request to the daemon's API must carry
// (mode 0600).
func (d Dir) Token() string { return d.join(tokenFile) }

// Lock is the file a running node holds locked.
func (d Dir) Lock() string { return d.join(lockFile) }

// Store is the store's default directory.
func (d Dir) Store() string { return d.join(storeDir) }

// MirrorFile holds the mirror's base URL while the daemon runs.
func (d Dir) MirrorFile() string { return d.join(mirrorFile) }

// MirrorCache lists what the mirror keeps for its clients, with when each
// was last used: what mirror.quota may evict.
func (d Dir) MirrorCache() string { return d.join(mirrorCacheFile) }

// Fills holds files being downloaded from the mirror's upstream.
func (d Dir) Fills() string { return d.join(fillDir) }

// FillKept maps the ETag of each file filled and kept to its CID.
func (d Dir) FillKept() string { return filepath.Join(d.Fills(), fillKeptFile) }

// ModelIndex lists the manifests this node holds.
func (d Dir) ModelIndex() string { return d.join(modelIndexFile) }

// Records holds the latest name record per name@revision this node
// published or accepted, and serves to peers.
func (d Dir) Records() string { return d.join(recordsDir) }

// PublisherKey signs name records (ed25519).
func (d Dir) PublisherKey() string { return d.join(publisherKeyFile) }

// Trust lists the publisher keys whose records this node accepts.
func (d Dir) Trust() string { return d.join(trustFile) }

// Denylists holds the *.deny files the node enforces and watches.
func (d Dir) Denylists() string { return d.join(denylistsDir) }

// DenylistsFetched keeps the denylists fetched from the URLs of the
// denylists key, so they hold offline and across restarts.
func (d Dir) DenylistsFetched() string { return d.join(fetchedListsDir) }

// Attestations holds signed provenance attestations, one per manifest and
// signer: Attestations/<manifest CID>/<signer>.json (policy/provenance).
func (d Dir) Attestations() string { return d.join(attestationsDir) }
