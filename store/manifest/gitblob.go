package manifest

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"hash"
)

// NewBlobHash returns a hash that, fed the size bytes of a file, sums to
// git's blob id of it: sha1("blob <size>\0" + content). Hugging Face uses
// that id as the ETag of files kept in git rather than LFS.
func NewBlobHash(size uint64) hash.Hash {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", size)
	return h
}

// GitBlobSHA1 is git's blob id of content, in hex.
func GitBlobSHA1(content []byte) string {
	h := NewBlobHash(uint64(len(content)))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}
