package hfcache_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

func manifestBlob(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
