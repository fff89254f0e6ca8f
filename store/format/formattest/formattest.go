// Package formattest builds small synthetic safetensors and GGUF files for
// tests, so no test needs a real model.
package formattest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Tensor is one tensor of a synthetic file.
type Tensor struct {
	Name  string
	DType string // safetensors dtype (F32, BF16, ...) or GGML type number as text for GGUF
	Shape []uint64
}

var stSize = map[string]uint64{"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I64": 8}

// SafetensorsHeader returns the header (length prefix and JSON) of a
// safetensors file with the given tensors and metadata, and the size of
// the data section that must follow it.
func SafetensorsHeader(tensors []Tensor, meta map[string]string) ([]byte, uint64) {
	doc := map[string]any{}
	if meta != nil {
		doc["__metadata__"] = meta
	}
	var off uint64
	for _, t := range tensors {
		n := stSize[t.DType]
		for _, d := range t.Shape {
			n *= d
		}
		doc[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []uint64{off, off + n}}
		off += n
	}
	js, _ := json.Marshal(doc)
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(js)))
	buf.Write(js)
	return buf.Bytes(), off
}

// Safetensors returns a whole safetensors file with zeroed tensor data.
func Safetensors(tensors []Tensor, meta map[string]string) []byte {
	hdr, n := SafetensorsHeader(tensors, meta)
	return append(hdr, make([]byte, n)...)
}

// GGUF returns a GGUF v3 file with the given string metadata, a
// general.file_type, and F32 tensors (zeroed, aligned to 32 bytes).
func GGUF(arch string, fileType uint32, tensors []Tensor) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(len(tensors)))
	le(uint64(3))
	str("general.architecture")
	le(uint32(8))
	str(arch)
	str("general.file_type")
	le(uint32(4))
	le(fileType)
	str("tokenizer.ggml.tokens")
	le(uint32(9))
	le(uint32(8))
	le(uint64(2))
	str("<s>")
	str("</s>")
	var off uint64
	for _, t := range tensors {
		str(t.Name)
		le(uint32(len(t.Shape)))
		n := uint64(4)
		for _, d := range t.Shape {
			le(d)
			n *= d
		}
		le(uint32(0)) // F32
		le(off)
		off += (n + 31) / 32 * 32
	}
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, off))
	return b.Bytes()
}

// Name is a helper for tensor names.
func Name(i int) string { return fmt.Sprintf("blk.%d.weight", i) }
