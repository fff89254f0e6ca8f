package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/allmende/allmende/store/format"
	"github.com/allmende/allmende/store/format/formattest"
)

func TestSafetensors(t *testing.T) {
	file := formattest.Safetensors([]formattest.Tensor{
		{Name: "a", DType: "BF16", Shape: []uint64{4, 8}},
		{Name: "b", DType: "F32", Shape: []uint64{3}},
		{Name: "c", DType: "BF16", Shape: []uint64{2, 2}},
	}, map[string]string{"format": "pt"})
	info, err := format.ParseSafetensors(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Tensors != 3 || info.Params != 32+3+4 || info.DTypes["BF16"] != 2 || info.Quantization != "pt" {
		t.Errorf("info = %+v", info)
	}
	if got := binary.LittleEndian.Uint64(file) + 8; info.HeaderSize != got {
		t.Errorf("header size %d, want %d", info.HeaderSize, got)
	}
}

func TestSafetensorsMalformed(t *testing.T) {
	good := formattest.Safetensors([]formattest.Tensor{{Name: "a", DType: "F32", Shape: []uint64{4}}}, nil)
	withHeader := func(js string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
		return append(append(b, js...), make([]byte, 16)...)
	}
	cases := []struct {
		name, why string
		file      []byte
	}{
		{"truncated", "shorter than the length prefix", good[:5]},
		{"huge length", "length beyond the file", binary.LittleEndian.AppendUint64(nil, 1<<40)},
		{"not JSON", "header must be a JSON object", withHeader("[1,2,3]")},
		{"unknown dtype", "dtypes are a closed set", withHeader(`{"a":{"dtype":"F99","shape":[4],"data_offsets":[0,16]}}`)},
		{"offsets mismatch", "data_offsets must match shape × dtype size", withHeader(`{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}`)},
		{"past the end", "tensor data must lie inside the file", withHeader(`{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`)},
		{"bad metadata", "__metadata__ maps strings to strings", withHeader(`{"__metadata__":{"a":1}}`)},
		{"overflow", "shape product must not overflow", withHeader(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := format.ParseSafetensors(bytes.NewReader(c.file), int64(len(c.file)))
			if !errors.Is(err, format.ErrMalformed) {
				t.Errorf("%s: err = %v, want ErrMalformed", c.why, err)
			}
		})
	}
}

func TestGGUF(t *testing.T) {
	file := formattest.GGUF("llama", 15, []formattest.Tensor{
		{Name: "tok", Shape: []uint64{8, 4}}, {Name: "out", Shape: []uint64{4}},
	})
	info, err := format.ParseGGUF(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Architecture != "llama" || info.Quantization != "Q4_K_M" || info.Tensors != 2 || info.Params != 36 || info.DTypes["F32"] != 2 {
		t.Errorf("info = %+v", info)
	}
	if info.Metadata["tokenizer.ggml.tokens"] != "[2 values]" {
		t.Errorf("array metadata = %q", info.Metadata["tokenizer.ggml.tokens"])
	}
}

func TestGGUFMalformed(t *testing.T) {
	good := formattest.GGUF("llama", 1, []formattest.Tensor{{Name: "t", Shape: []uint64{8}}})
	bump := func(off int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	cases := []struct {
		name, why string
		file      []byte
	}{
		{"no magic", "files must start with GGUF", append([]byte("GGML"), good[4:]...)},
		{"version 9", "only versions 2 and 3 exist", append(append([]byte("GGUF"), 9, 0, 0, 0), good[8:]...)},
		{"too many tensors", "tensor count is bounded", bump(8, 1<<40)},
		{"too many kvs", "metadata count is bounded", bump(16, 1<<40)},
		{"truncated", "header cut short", good[:40]},
		{"tensor past the end", "data must lie inside the file", good[:len(good)-32]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := format.ParseGGUF(bytes.NewReader(c.file), int64(len(c.file)))
			if !errors.Is(err, format.ErrMalformed) {
				t.Errorf("%s: err = %v, want ErrMalformed", c.why, err)
			}
		})
	}
}

func FuzzSafetensors(f *testing.F) {
	f.Add(formattest.Safetensors([]formattest.Tensor{{Name: "a", DType: "F32", Shape: []uint64{2}}}, map[string]string{"k": "v"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		format.ParseSafetensors(bytes.NewReader(b), int64(len(b)))
	})
}

func FuzzGGUF(f *testing.F) {
	f.Add(formattest.GGUF("llama", 2, []formattest.Tensor{{Name: "t", Shape: []uint64{2, 2}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		format.ParseGGUF(bytes.NewReader(b), int64(len(b)))
	})
}
