package store

import (
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/filestore"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
)

// filestoreNamespace is where no-copy references (file path, offset and
// size of a leaf block) live in the metadata datastore.
const filestoreNamespace = "/filestore"

// newFilestore puts boxo's filestore in front of bs: leaf blocks imported
// with no-copy (posinfo.FilestoreNode, see package manifest) are kept as
// references to the file they came from instead of a second copy; every
// read of such a block re-reads and re-hashes the file region, so a file
// changed or removed on disk makes reads fail cleanly (and the node stops
// serving that block) rather than handing out wrong bytes. Other blocks go
// to bs unchanged.
func newFilestore(bs blockstore.Blockstore, meta datastore.Batching) blockstore.Blockstore {
	fm := filestore.NewFileManager(namespace.Wrap(meta, datastore.NewKey(filestoreNamespace)), "/")
	fm.AllowFiles = true
	return filestore.NewFilestore(bs, fm, nil)
}
