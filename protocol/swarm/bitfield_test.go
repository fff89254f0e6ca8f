package swarm

import (
	"bytes"
	"errors"
	"testing"
)

func TestBitfieldEncoding(t *testing.T) {
	cases := []struct {
		name string
		n    int
		set  []int
		want []byte
	}{
		{"no pieces: no bytes", 0, nil, []byte{}},
		{"piece 0 is the high bit of byte 0 (BitTorrent's order)", 8, []int{0}, []byte{0x80}},
		{"the last of 8 is the low bit", 8, []int{7}, []byte{0x01}},
		{"a partial last byte has zero padding", 10, []int{0, 9}, []byte{0x80, 0x40}},
		{"across a 64-bit word", 70, []int{63, 64, 69}, []byte{0, 0, 0, 0, 0, 0, 0, 0x01, 0x84}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBitfield(tc.n)
			for _, i := range tc.set {
				if !b.Set(i) {
					t.Fatalf("Set(%d) reported no change", i)
				}
			}
			got := b.Bytes()
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Bytes() = %x, want %x", got, tc.want)
			}
			back, err := ParseBitfield(got, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if back.Count() != len(tc.set) {
				t.Fatalf("parsed count %d, want %d", back.Count(), len(tc.set))
			}
			for _, i := range tc.set {
				if !back.Has(i) {
					t.Fatalf("parsed bitfield lacks %d", i)
				}
			}
		})
	}
}

func TestParseBitfieldRefuses(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		n    int
	}{
		{"too short", []byte{0xff}, 9},
		{"too long", []byte{0xff, 0}, 8},
		{"bits set past the last piece", []byte{0xff, 0x20}, 10},
		{"negative count", nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseBitfield(tc.data, tc.n); !errors.Is(err, ErrBitfield) {
				t.Fatalf("err = %v, want ErrBitfield", err)
			}
		})
	}
}

func TestBitfieldSetClearFull(t *testing.T) {
	b := FullBitfield(130)
	if !b.Full() || b.Count() != 130 || b.Has(130) || b.Has(-1) {
		t.Fatalf("full bitfield: count %d full %v", b.Count(), b.Full())
	}
	if b.Set(5) || !b.Clear(5) || b.Clear(5) || b.Full() {
		t.Fatal("Set/Clear reported the wrong change")
	}
	var got []int
	c := b.Clone()
	c.Set(5)
	b.Each(func(i int) { got = append(got, i) })
	if len(got) != 129 || got[5] != 6 || !c.Full() || b.Full() {
		t.Fatalf("Each listed %d pieces; clone independent: %v", len(got), !b.Full())
	}
	if _, err := ParseBitfield(FullBitfield(13).Bytes(), 13); err != nil {
		t.Fatalf("a full bitfield does not parse back: %v", err)
	}
}
