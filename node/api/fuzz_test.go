package api

import (
	"errors"
	"testing"
)

func FuzzParseCID(f *testing.F) {
	for _, s := range []string{
		"bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
		"/ipfs/bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
		"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
		"", "b", "z", "f01", "not-a-cid", "/ipfs/", " bafy ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCID(s)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("ParseCID(%q) error %v is not ErrBadInput", s, err)
			}
			return
		}
		again, err := ParseCID(c.String())
		if err != nil || !again.Equals(c) {
			t.Errorf("ParseCID(%q) = %s, which does not parse back (%v)", s, c, err)
		}
	})
}
