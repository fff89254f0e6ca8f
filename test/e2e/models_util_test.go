package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// harnessGitBlob is git's blob id: sha1("blob <len>\0" + content).
func harnessGitBlob(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
