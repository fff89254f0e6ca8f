package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
)

// safetensorsDTypeSize is the byte size of each safetensors dtype.
var safetensorsDTypeSize = map[string]uint64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

type safetensor struct {
	DType       string   `json:"dtype"`
	Shape       []uint64 `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// ParseSafetensors reads a safetensors header: an 8-byte little-endian
// length, then that many bytes of JSON mapping tensor names to dtype, shape
// and data offsets, plus optional "__metadata__" strings. Every tensor must
// lie inside the data section and match its dtype and shape.
func ParseSafetensors(r io.ReaderAt, size int64) (*Info, error) {
	const kind = Safetensors
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, malformed(kind, "reading length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n < 2 || n > MaxHeaderSize || n > uint64(size)-8 || size < 8 {
		return nil, malformed(kind, "header length %d does not fit (file %d bytes, limit %d)", n, size, MaxHeaderSize)
	}
	raw := make([]byte, n)
	if _, err := r.ReadAt(raw, 8); err != nil {
		return nil, malformed(kind, "reading header: %v", err)
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, malformed(kind, "header JSON: %v", err)
	}
	info := &Info{Format: kind, HeaderSize: 8 + n, DTypes: map[string]int{}}
	dataSize := uint64(size) - 8 - n
	for name, v := range doc {
		if name == "__metadata__" {
			if err := info.safetensorsMeta(v); err != nil {
				return nil, err
			}
			continue
		}
		if err := info.addSafetensor(name, v, dataSize); err != nil {
			return nil, err
		}
	}
	if info.Tensors > MaxTensors {
		return nil, malformed(kind, "%d tensors, at most %d", info.Tensors, MaxTensors)
	}
	return info, nil
}

func (i *Info) safetensorsMeta(v json.RawMessage) error {
	var meta map[string]string
	if err := json.Unmarshal(v, &meta); err != nil {
		return malformed(Safetensors, "__metadata__ must map strings to strings: %v", err)
	}
	for k, s := range meta {
		i.addMeta(k, s)
	}
	if f, ok := meta["format"]; ok {
		i.Quantization = f
	}
	return nil
}

func (i *Info) addSafetensor(name string, v json.RawMessage, dataSize uint64) error {
	var t safetensor
	if err := json.Unmarshal(v, &t); err != nil {
		return malformed(Safetensors, "tensor %q: %v", name, err)
	}
	es, ok := safetensorsDTypeSize[t.DType]
	if !ok {
		return malformed(Safetensors, "tensor %q: unknown dtype %q", name, t.DType)
	}
	if len(t.Shape) > MaxDims || len(t.DataOffsets) != 2 {
		return malformed(Safetensors, "tensor %q: bad shape or data_offsets", name)
	}
	numel, ok := mulDims(t.Shape)
	begin, end := t.DataOffsets[0], t.DataOffsets[1]
	if !ok || numel > ^uint64(0)/es || begin > end || end > dataSize || end-begin != numel*es {
		return malformed(Safetensors, "tensor %q: %d elements of %s do not match data_offsets [%d, %d] in %d data bytes",
			name, numel, t.DType, begin, end, dataSize)
	}
	i.Tensors++
	i.Params += numel
	i.DTypes[t.DType]++
	return nil
}
