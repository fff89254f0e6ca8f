package manifest_test

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
)

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

func itoa(n int) string { return strconv.Itoa(n) }
