package api

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Progress reports how far a long operation is.
type Progress struct {
	Done  uint64 `json:"done"`
	Total uint64 `json:"total"`
}

// ProgressFunc receives progress reports; it must return quickly.
type ProgressFunc func(Progress)

// IDInfo identifies a node and says how to reach it.
type IDInfo struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// PinInfo describes a pinned root, as `allmende ls --json` prints it.
type PinInfo struct {
	CID  string `json:"cid"`
	Name string `json:"name"`
	Size uint64 `json:"size"`
}

// AddResult describes an added root.
type AddResult struct {
	CID  string `json:"cid"`
	Name string `json:"name"`
	Size uint64 `json:"size"`
}

// FetchRequest says what to fetch and where to.
type FetchRequest struct {
	// Ref names the content: a CID.
	Ref string `json:"ref"`
	// Out is the absolute path to write the file or directory to.
	Out string `json:"out"`
	// Timeout, if positive, replaces the node's fetch.timeout.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// FetchResult describes a completed fetch.
type FetchResult struct {
	CID string `json:"cid"`
	Out string `json:"out"`
	// Size is the content size written at Out.
	Size uint64 `json:"size"`
	// Received is the block bytes that came over the network for this
	// fetch, and for no other work of the node; blocks already in the
	// store (from an interrupted fetch) are not fetched again.
	Received uint64 `json:"received"`
	// Seconds is the wall time of the fetch.
	Seconds float64 `json:"seconds"`
}

// GCRequest asks for a garbage collection.
type GCRequest struct {
	// Denied first unpins every root a denylist (or the licence policy)
	// now refuses to pass on (the roots verify lists as denied), so their
	// blocks are collected too.
	Denied bool `json:"denied,omitempty"`
}

// GCResult describes a garbage collection.
type GCResult struct {
	// Unpinned are the denied roots GCRequest.Denied unpinned, each
	// named as verify names it: "name (rule)".
	Unpinned []string `json:"unpinned,omitempty"`
	// Removed is the number of blocks deleted.
	Removed int `json:"removed"`
	// Freed is the number of bytes deleted: block files, and the store's
	// copies of added files no reference points into any more. Blocks held
	// as references into other files (no-copy) free nothing and count as
	// removed.
	Freed uint64 `json:"freed"`
	// Kept is the number of blocks still held.
	Kept int `json:"kept"`
}

// Stats are transfer counters since the node started.
type Stats struct {
	BlocksReceived uint64 `json:"blocks_received"`
	BytesReceived  uint64 `json:"bytes_received"`
	BlocksSent     uint64 `json:"blocks_sent"`
	BytesSent      uint64 `json:"bytes_sent"`
	DupBytes       uint64 `json:"dup_bytes_received"`
	// BadBlocks are blocks received that no want asked for (corrupt
	// ones among them); none is stored. BannedPeers sent too many.
	BadBlocks   uint64 `json:"bad_blocks"`
	BadBytes    uint64 `json:"bad_bytes"`
	BannedPeers int    `json:"banned_peers"`
}

// VerifyRequest says how to check the store.
type VerifyRequest struct {
	// Repair fetches missing and quarantined blocks again from peers.
	Repair bool `json:"repair,omitempty"`
	// Provenance, if set, is a model (org/name[@rev]) whose local copy is
	// checked against the attestations of trusted keys instead of the
	// store.
	Provenance string `json:"provenance,omitempty"`
}

// ProvenanceReport is what verify --provenance found for a model.
type ProvenanceReport struct {
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Commit   string `json:"commit"`
	Manifest string `json:"manifest"`
	// Accepted are the attestations from trusted keys that describe the
	// manifest.
	Accepted []Attestation `json:"accepted"`
	// Refused say why the other attestations were not accepted.
	Refused []string `json:"refused,omitempty"`
}

// Attestation is a signed provenance attestation, as shown to users.
type Attestation struct {
	// Signer is the key ID that signed it.
	Signer string `json:"signer"`
	// Trusted says verify --provenance accepts it: the signer is in the
	// trust list, trusted for the name, and it describes the manifest.
	Trusted bool `json:"trusted,omitempty"`
	// Upstream, Name, Revision and Commit say where the files came from.
	Upstream string `json:"upstream"`
	Name     string `json:"name"`
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit"`
	// Files is how many files it lists with their sha256.
	Files int       `json:"files"`
	Time  time.Time `json:"time"`
}

// VerifyReport is what a check of the store found.
type VerifyReport struct {
	// Blocks and Bytes are what was re-hashed.
	Blocks int    `json:"blocks"`
	Bytes  uint64 `json:"bytes"`
	// Corrupt are blocks whose bytes did not match their CID; each was
	// moved to the quarantine directory.
	Corrupt []string `json:"corrupt"`
	// Missing are blocks a pin needs that the store does not hold.
	Missing []string `json:"missing"`
	// Unreadable are blocks that could not be read, with the reason: a
	// disk error, or a no-copy block whose source file changed or went.
	// They are not served.
	Unreadable []string `json:"unreadable"`
	// Damaged are the pinned roots with missing blocks below them.
	Damaged []string `json:"damaged"`
	// Quarantine is the directory corrupt blocks were moved to.
	Quarantine string `json:"quarantine"`
	// ChecksumsKept counts sound blocks whose leaf checksum was missing or
	// wrong and is now kept, so leaves are served without a re-hash again.
	ChecksumsKept int `json:"checksums_kept"`
}

// OK reports whether every pinned block is held and sound.
func (r VerifyReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Corrupt) == 0 && len(r.Unreadable) == 0
}

// VerifyResult is the store's state after a check (and repair).
type VerifyResult struct {
	VerifyReport
	// Found is what the first pass found before any repair.
	Found VerifyReport `json:"found"`
	// Repaired are the roots fetched whole again.
	Repaired []string `json:"repaired"`
	// RepairErrors say why a damaged root could not be repaired.
	RepairErrors []string `json:"repair_errors,omitempty"`
	// Provenance is the answer to VerifyRequest.Provenance.
	Provenance *ProvenanceReport `json:"provenance,omitempty"`
	// Denied are the pinned roots a denylist (or the licence policy) now
	// refuses to pass on, each with the rule: this node keeps them but
	// neither serves nor announces them.
	Denied []string `json:"denied,omitempty"`
}

// ImportRequest asks to import a folder or Hugging Face cache repository
// as a named model.
type ImportRequest struct {
	// Path is absolute on the node's machine.
	Path string `json:"path"`
	// Name is org/name; optional for a Hugging Face cache directory.
	Name     string `json:"name,omitempty"`
	Revision string `json:"revision,omitempty"`
	License  string `json:"license,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Source   string `json:"source,omitempty"`
	// Force imports files with malformed safetensors/GGUF headers.
	Force bool `json:"force,omitempty"`
	// Copy stores a copy of every file; by default the store keeps
	// references to the files in place (no-copy) and re-hashes them on
	// every read.
	Copy bool `json:"copy,omitempty"`
	// Ollama says Path is an Ollama model store: each of its models
	// becomes a model namespace/model@tag, its blobs read in place.
	Ollama bool `json:"ollama,omitempty"`
}

// ImportResult describes an imported model.
type ImportResult struct {
	Manifest string `json:"manifest"`
	Root     string `json:"root"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Commit   string `json:"commit"`
	Files    int    `json:"files"`
	Size     uint64 `json:"size"`
	// Models are the models of an Ollama store import, one each.
	Models []ImportResult `json:"models,omitempty"`
}

// PublishRequest asks to sign name@revision → its local manifest.
type PublishRequest struct {
	Name     string        `json:"name"`
	Revision string        `json:"revision,omitempty"`
	Validity time.Duration `json:"validity,omitempty"`
}

// PublishResult describes a published record.
type PublishResult struct {
	Name      string    `json:"name"`
	Revision  string    `json:"revision"`
	Manifest  string    `json:"manifest"`
	Seq       uint64    `json:"seq"`
	Expires   time.Time `json:"expires"`
	Publisher string    `json:"publisher"`
}

// ModelFetchRequest asks for a model by name or a file by sha256.
type ModelFetchRequest struct {
	// Ref is org/name[@revision] or sha256:<hex>.
	Ref string `json:"ref"`
	// Out is the absolute path to write to (not with HFCache).
	Out string `json:"out,omitempty"`
	// HFCache, if set, is the absolute Hugging Face cache directory to lay
	// the model out in instead of Out.
	HFCache string `json:"hf_cache,omitempty"`
	// Include and Exclude are glob patterns on file paths.
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// OllamaStore, if set, is the absolute Ollama model store to write
	// the model (an OCI model, see store/ollama) into instead of Out,
	// under the Ollama name OllamaName (host/namespace/model:tag).
	OllamaStore string `json:"ollama_store,omitempty"`
	OllamaName  string `json:"ollama_name,omitempty"`
	// TrustAny accepts records from publishers not in the trust list.
	TrustAny bool          `json:"trust_any,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
}

// ModelFetchResult describes a completed model or sha256 fetch.
type ModelFetchResult struct {
	Name     string `json:"name,omitempty"`
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Manifest string `json:"manifest,omitempty"`
	// Publisher signed the record the name resolved through; Trusted says
	// whether it is in the trust list.
	Publisher string `json:"publisher,omitempty"`
	Trusted   bool   `json:"trusted"`
	CID       string `json:"cid,omitempty"`
	Out       string `json:"out"`
	Files     int    `json:"files"`
	Size      uint64 `json:"size"`
	// Received is the bytes that came over the network for this fetch
	// (files, manifest), and for no other work of the node.
	Received uint64  `json:"received"`
	Seconds  float64 `json:"seconds"`
}

// InspectRequest asks for the headers of model files.
type InspectRequest struct {
	// Ref is a CID, sha256:<hex> or org/name[@revision].
	Ref      string   `json:"ref"`
	Include  []string `json:"include,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	TrustAny bool     `json:"trust_any,omitempty"`
}

// HeaderInfo summarises a model file's header (safetensors or GGUF).
type HeaderInfo struct {
	Format string `json:"format"`
	// HeaderSize is how many leading bytes of the file hold the header.
	HeaderSize uint64 `json:"header_size"`
	Tensors    int    `json:"tensors"`
	Params     uint64 `json:"params"`
	// DTypes counts tensors per data type.
	DTypes       map[string]int    `json:"dtypes"`
	Architecture string            `json:"architecture,omitempty"`
	Quantization string            `json:"quantization,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// DTypeList lists the tensor data types with their counts, by name
// ("F16×290, F32×65").
func (i *HeaderInfo) DTypeList() string {
	keys := make([]string, 0, len(i.DTypes))
	for k := range i.DTypes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for j, k := range keys {
		parts[j] = fmt.Sprintf("%s×%d", k, i.DTypes[k])
	}
	return strings.Join(parts, ", ")
}

// InspectFile is one file's header summary.
type InspectFile struct {
	Path  string      `json:"path,omitempty"`
	CID   string      `json:"cid"`
	Size  uint64      `json:"size"`
	Info  *HeaderInfo `json:"info,omitempty"`
	Error string      `json:"error,omitempty"`
}

// InspectResult lists header summaries and how many bytes came from peers.
type InspectResult struct {
	Name      string `json:"name,omitempty"`
	Revision  string `json:"revision,omitempty"`
	Publisher string `json:"publisher,omitempty"`
	// Attestations are the provenance attestations kept for the model's
	// manifest that verify, trusted or not (verify --provenance says
	// which are trusted).
	Attestations []Attestation `json:"attestations,omitempty"`
	Files        []InspectFile `json:"files"`
	// Received counts block and range bytes received from peers for this
	// inspection.
	Received uint64 `json:"received"`
}

// ExportRequest asks for a CAR file of content this node holds.
type ExportRequest struct {
	// Ref is a CID, sha256:<hex> or org/name[@revision].
	Ref string `json:"ref"`
	// Out is the absolute path of the CAR file to write; it must not
	// exist.
	Out string `json:"out"`
}

// ExportResult describes a CAR file written.
type ExportResult struct {
	Out string `json:"out"`
	// Roots are the CAR's roots: for a model, its files, its manifest
	// and (when this node holds one) its signed name record.
	Roots  []string `json:"roots"`
	Bytes  uint64   `json:"bytes"`
	Blocks uint64   `json:"blocks"`
	// Name and Revision are the model's, for a model; Publisher signed
	// the record carried, empty when the CAR carries none.
	Name      string  `json:"name,omitempty"`
	Revision  string  `json:"revision,omitempty"`
	Manifest  string  `json:"manifest,omitempty"`
	Publisher string  `json:"publisher,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// CARImportRequest asks to import one CAR file.
type CARImportRequest struct {
	// Path is the CAR file, absolute on the node's machine. It is read
	// in place, once.
	Path string `json:"path"`
}

// CARRoot is one root of an imported CAR.
type CARRoot struct {
	CID string `json:"cid"`
	// Kind is content, manifest (named by a record in the CAR) or record.
	Kind     string `json:"kind"`
	Complete bool   `json:"complete"`
}

// CARName is a signed name record found in a CAR and what the node did
// with it.
type CARName struct {
	Name      string `json:"name"`
	Revision  string `json:"revision"`
	Manifest  string `json:"manifest"`
	Publisher string `json:"publisher"`
	// Trusted says the publisher is trusted for the name: the name
	// resolves to the manifest from now on.
	Trusted bool `json:"trusted"`
	// Kept says the record is kept (and served to peers); an untrusted
	// one is kept too, unused for names until its key is trusted.
	Kept bool `json:"kept"`
	// Note says why a record was not kept or not trusted.
	Note string `json:"note,omitempty"`
}

// CARImportResult describes an imported CAR file.
type CARImportResult struct {
	Path  string    `json:"path"`
	Roots []CARRoot `json:"roots"`
	// Pinned are the roots pinned: all of them, once every one is
	// complete.
	Pinned []string  `json:"pinned"`
	Names  []CARName `json:"names,omitempty"`
	// Blocks read and verified; Stored those the store did not hold
	// before; Bytes of the CAR read.
	Blocks  uint64  `json:"blocks"`
	Stored  uint64  `json:"stored"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
}
