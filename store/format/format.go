// Package format owns allmende's knowledge of model file formats: it parses
// and checks safetensors and GGUF headers (tensor count, dtypes, parameter
// count, metadata such as architecture and quantisation) from an
// io.ReaderAt, reading only the header bytes. It has no network code.
package format

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Formats this package parses.
const (
	Safetensors = "safetensors"
	GGUF        = "gguf"
)

// Bounds on decoded headers.
const (
	// MaxHeaderSize is the most header bytes read from a file.
	MaxHeaderSize = 100 << 20
	// MaxTensors is the most tensors a header may declare.
	MaxTensors = 1 << 20
	// MaxDims is the most dimensions one tensor may have.
	MaxDims = 8
	// MaxMetadata is the most metadata entries kept in an Info.
	MaxMetadata = 64
	// MaxMetadataValue is the longest metadata value kept, in bytes.
	MaxMetadataValue = 256
)

// ErrMalformed means a header breaks its format's rules.
var ErrMalformed = errors.New("malformed header")

// Info summarises a model file's header.
type Info struct {
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

// Detect returns the format a file name suggests, or "".
func Detect(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".safetensors":
		return Safetensors
	case ".gguf":
		return GGUF
	}
	return ""
}

// Parse reads and checks the header of a file of the given format and
// size through r.
func Parse(kind string, r io.ReaderAt, size int64) (*Info, error) {
	switch kind {
	case Safetensors:
		return ParseSafetensors(r, size)
	case GGUF:
		return ParseGGUF(r, size)
	}
	return nil, fmt.Errorf("unknown format %q", kind)
}

func malformed(kind, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", kind, ErrMalformed, fmt.Sprintf(format, args...))
}

func (i *Info) addMeta(k, v string) {
	if len(i.Metadata) >= MaxMetadata {
		return
	}
	if i.Metadata == nil {
		i.Metadata = map[string]string{}
	}
	if len(v) > MaxMetadataValue {
		v = v[:MaxMetadataValue] + "…"
	}
	i.Metadata[k] = v
}

// mulDims multiplies tensor dimensions, failing on overflow.
func mulDims(dims []uint64) (uint64, bool) {
	n := uint64(1)
	for _, d := range dims {
		if d != 0 && n > ^uint64(0)/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}
