package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
)

// verifyingReader checks size and sha256 of what passes through it.
type verifyingReader struct {
	r    io.ReadCloser
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
}

// NewVerifyingReader wraps r so that reading more than size bytes, or
// reaching EOF with bytes that are not size long or do not hash to d,
// fails with ErrMismatch. A size below 0 means the size is not known and
// only the digest is checked. Callers keep nothing until they have read
// to EOF without an error.
func NewVerifyingReader(r io.ReadCloser, d digest.Digest, size int64) io.ReadCloser {
	return &verifyingReader{r: r, want: d, size: size, h: sha256.New()}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		return n, fmt.Errorf("blob %s: %w: more than the declared %d bytes", v.want, ErrMismatch, v.size)
	}
	if errors.Is(err, io.EOF) {
		got := sha256Prefix + hex.EncodeToString(v.h.Sum(nil))
		if (v.size >= 0 && v.n != v.size) || got != string(v.want) {
			return n, fmt.Errorf("blob %s: %w: got %d bytes hashing to %s, want %d bytes", v.want, ErrMismatch, v.n, got, v.size)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }
