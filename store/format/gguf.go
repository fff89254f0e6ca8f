package format

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// GGUF bounds, on top of MaxHeaderSize and MaxTensors.
const (
	// MaxGGUFKeyValues is the most metadata entries a GGUF header may have.
	MaxGGUFKeyValues = 1 << 16
	// MaxGGUFString is the longest GGUF string, in bytes.
	MaxGGUFString = 1 << 20
	// MaxGGUFArray is the most elements of one GGUF metadata array.
	MaxGGUFArray = 1 << 24
	// ggufDefaultAlignment is general.alignment's default.
	ggufDefaultAlignment = 32
)

// GGUF metadata value types.
const (
	ggufU8 = iota
	ggufI8
	ggufU16
	ggufI16
	ggufU32
	ggufI32
	ggufF32
	ggufBool
	ggufString
	ggufArray
	ggufU64
	ggufI64
	ggufF64
)

var ggufScalarSize = map[uint32]int{
	ggufU8: 1, ggufI8: 1, ggufBool: 1, ggufU16: 2, ggufI16: 2, ggufU32: 4, ggufI32: 4, ggufF32: 4,
	ggufU64: 8, ggufI64: 8, ggufF64: 8,
}

// ggmlTypes names GGML tensor types by number (ggml.h).
var ggmlTypes = map[uint32]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
	17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
	24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
	35: "TQ2_0", 39: "MXFP4",
}

// ggmlBlock gives, for GGML types whose layout is known, the elements per
// block and bytes per block, to find where a tensor's data ends.
var ggmlBlock = map[uint32][2]uint64{
	0: {1, 4}, 1: {1, 2}, 30: {1, 2}, 28: {1, 8}, 24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8},
	2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24}, 8: {32, 34}, 9: {32, 36},
	10: {256, 84}, 11: {256, 110}, 12: {256, 144}, 13: {256, 176}, 14: {256, 210}, 15: {256, 292},
}

// llamaFileTypes names general.file_type values (llama.h).
var llamaFileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
	11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
	17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
	23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
	30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

// ggufReader reads little-endian GGUF values, counting bytes and refusing
// to read past MaxHeaderSize.
type ggufReader struct {
	r   *bufio.Reader
	n   uint64
	err error
}

func (g *ggufReader) read(p []byte) {
	if g.err != nil {
		return
	}
	if g.n+uint64(len(p)) > MaxHeaderSize {
		g.err = fmt.Errorf("header longer than %d bytes", MaxHeaderSize)
		return
	}
	var k int
	k, g.err = io.ReadFull(g.r, p)
	g.n += uint64(k)
}

func (g *ggufReader) u32() uint32 {
	var b [4]byte
	g.read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (g *ggufReader) u64() uint64 {
	var b [8]byte
	g.read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (g *ggufReader) str() string {
	n := g.u64()
	if g.err != nil {
		return ""
	}
	if n > MaxGGUFString {
		g.err = fmt.Errorf("string of %d bytes, at most %d", n, MaxGGUFString)
		return ""
	}
	b := make([]byte, n)
	g.read(b)
	return string(b)
}

func (g *ggufReader) skip(n uint64) {
	if g.err != nil {
		return
	}
	if g.n+n > MaxHeaderSize {
		g.err = fmt.Errorf("header longer than %d bytes", MaxHeaderSize)
		return
	}
	var k int64
	k, g.err = io.CopyN(io.Discard, g.r, int64(n))
	g.n += uint64(k)
}

// value reads a metadata value of type t and returns it as text ("" for
// arrays, which are skipped).
func (g *ggufReader) value(t uint32, depth int) string {
	if size, ok := ggufScalarSize[t]; ok {
		var b [8]byte
		g.read(b[:size])
		return scalarText(t, b[:size])
	}
	switch t {
	case ggufString:
		return g.str()
	case ggufArray:
		et, n := g.u32(), g.u64()
		if g.err == nil && (n > MaxGGUFArray || depth > 2) {
			g.err = fmt.Errorf("array of %d elements (at most %d) or nested too deep", n, MaxGGUFArray)
		}
		if size, ok := ggufScalarSize[et]; ok {
			g.skip(n * uint64(size))
			return "[" + strconv.FormatUint(n, 10) + " values]"
		}
		for i := uint64(0); i < n && g.err == nil; i++ {
			g.value(et, depth+1)
		}
		return "[" + strconv.FormatUint(n, 10) + " values]"
	}
	if g.err == nil {
		g.err = fmt.Errorf("unknown value type %d", t)
	}
	return ""
}

func scalarText(t uint32, b []byte) string {
	le := binary.LittleEndian
	switch t {
	case ggufU8:
		return strconv.FormatUint(uint64(b[0]), 10)
	case ggufI8:
		return strconv.FormatInt(int64(int8(b[0])), 10)
	case ggufBool:
		return strconv.FormatBool(b[0] != 0)
	case ggufU16:
		return strconv.FormatUint(uint64(le.Uint16(b)), 10)
	case ggufI16:
		return strconv.FormatInt(int64(int16(le.Uint16(b))), 10)
	case ggufU32:
		return strconv.FormatUint(uint64(le.Uint32(b)), 10)
	case ggufI32:
		return strconv.FormatInt(int64(int32(le.Uint32(b))), 10)
	case ggufF32:
		return strconv.FormatFloat(float64(math.Float32frombits(le.Uint32(b))), 'g', -1, 32)
	case ggufU64:
		return strconv.FormatUint(le.Uint64(b), 10)
	case ggufI64:
		return strconv.FormatInt(int64(le.Uint64(b)), 10)
	case ggufF64:
		return strconv.FormatFloat(math.Float64frombits(le.Uint64(b)), 'g', -1, 64)
	}
	return ""
}

// ParseGGUF reads a GGUF (version 2 or 3) header: magic, version, tensor
// and metadata counts, the metadata key-values and the tensor infos. Every
// tensor's data must lie inside the file.
func ParseGGUF(r io.ReaderAt, size int64) (*Info, error) {
	g := &ggufReader{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)}
	var magic [4]byte
	g.read(magic[:])
	version := g.u32()
	if g.err != nil || string(magic[:]) != "GGUF" {
		return nil, malformed(GGUF, "no GGUF magic")
	}
	if version != 2 && version != 3 {
		return nil, malformed(GGUF, "unsupported version %d", version)
	}
	nTensors, nKV := g.u64(), g.u64()
	if g.err == nil && (nTensors > MaxTensors || nKV > MaxGGUFKeyValues) {
		return nil, malformed(GGUF, "%d tensors or %d metadata entries exceed the limits", nTensors, nKV)
	}
	info := &Info{Format: GGUF, DTypes: map[string]int{}}
	alignment := uint64(ggufDefaultAlignment)
	for i := uint64(0); i < nKV && g.err == nil; i++ {
		key, t := g.str(), g.u32()
		v := g.value(t, 0)
		alignment = info.ggufMeta(key, v, alignment)
	}
	ends, err := info.ggufTensors(g, nTensors)
	if err != nil {
		return nil, err
	}
	if g.err != nil {
		return nil, malformed(GGUF, "%v", g.err)
	}
	info.HeaderSize = g.n
	dataStart := (g.n + alignment - 1) / alignment * alignment
	for _, end := range ends {
		if end > uint64(size) || dataStart+end > uint64(size) {
			return nil, malformed(GGUF, "tensor data ends at %d, past the end of the file (%d bytes)", dataStart+end, size)
		}
	}
	return info, nil
}

func (info *Info) ggufMeta(key, v string, alignment uint64) uint64 {
	switch key {
	case "general.architecture":
		info.Architecture = v
	case "general.file_type":
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			info.Quantization = llamaFileTypes[n]
			if info.Quantization == "" {
				info.Quantization = "file_type " + v
			}
		}
	case "general.alignment":
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && n > 0 && n&(n-1) == 0 {
			alignment = n
		}
	}
	info.addMeta(key, v)
	return alignment
}

// ggufTensors reads the tensor infos and returns where each tensor's data
// ends (or starts, for types of unknown layout), relative to the data
// section.
func (info *Info) ggufTensors(g *ggufReader, n uint64) ([]uint64, error) {
	ends := make([]uint64, 0, min(n, 4096))
	for i := uint64(0); i < n && g.err == nil; i++ {
		g.str()
		nd := g.u32()
		if g.err == nil && nd > MaxDims {
			return nil, malformed(GGUF, "tensor %d has %d dimensions, at most %d", i, nd, MaxDims)
		}
		dims := make([]uint64, nd)
		for j := range dims {
			dims[j] = g.u64()
		}
		t, off := g.u32(), g.u64()
		if g.err != nil {
			break
		}
		numel, ok := mulDims(dims)
		if !ok || off > MaxTensorOffset || numel > MaxTensorOffset {
			return nil, malformed(GGUF, "tensor %d: dimensions or offset overflow", i)
		}
		name := ggmlTypes[t]
		if name == "" {
			name = "type_" + strconv.FormatUint(uint64(t), 10)
		}
		info.Tensors++
		info.Params += numel
		info.DTypes[name]++
		end := off
		if blk, ok := ggmlBlock[t]; ok {
			end += (numel + blk[0] - 1) / blk[0] * blk[1]
		}
		ends = append(ends, end)
	}
	if g.err != nil {
		return nil, malformed(GGUF, "%v", g.err)
	}
	return ends, nil
}

// MaxTensorOffset bounds a GGUF tensor's data offset (1 PiB).
const MaxTensorOffset = 1 << 50
