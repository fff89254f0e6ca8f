package api

import (
	"errors"
	"fmt"
	"testing"
)

func TestMark(t *testing.T) {
	cause := errors.New("manifest invalid")
	wrapped := fmt.Errorf("import: %w", cause)
	for _, tt := range []struct {
		name     string
		err      error
		kind     error
		wantNil  bool
		wantSame bool
	}{
		{"nil stays nil", nil, ErrBadInput, true, false},
		{"an error of the kind is returned as is", fmt.Errorf("x: %w", ErrBadInput), ErrBadInput, false, true},
		{"another error is marked", wrapped, ErrBadInput, false, false},
		{"any kind can be marked", wrapped, ErrNoSpace, false, false},
	} {
		got := Mark(tt.err, tt.kind)
		switch {
		case tt.wantNil:
			if got != nil {
				t.Errorf("%s: got %v", tt.name, got)
			}
			continue
		case tt.wantSame && got != tt.err:
			t.Errorf("%s: got %#v, want the error itself", tt.name, got)
		}
		if !errors.Is(got, tt.kind) {
			t.Errorf("%s: %v is not %v", tt.name, got, tt.kind)
		}
		if got.Error() != tt.err.Error() {
			t.Errorf("%s: message %q, want %q", tt.name, got, tt.err)
		}
		if !tt.wantSame && !errors.Is(got, cause) {
			t.Errorf("%s: the cause is lost", tt.name)
		}
	}
}

func TestBadInputIf(t *testing.T) {
	errInvalid, errOther := errors.New("invalid"), errors.New("other")
	if err := BadInputIf(fmt.Errorf("a: %w", errInvalid), errOther, errInvalid); !errors.Is(err, ErrBadInput) {
		t.Errorf("a listed cause: %v is not bad input", err)
	}
	if err := BadInputIf(fmt.Errorf("a: %w", errOther), errInvalid); errors.Is(err, ErrBadInput) {
		t.Errorf("an unlisted cause: %v is bad input", err)
	}
}

func TestParseCID(t *testing.T) {
	const c = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{c, true},
		{"/ipfs/" + c, true},
		{" " + c + "\n", true},
		{"not-a-cid", false},
		{"", false},
	} {
		got, err := ParseCID(tt.in)
		if tt.ok && (err != nil || got.String() != c) {
			t.Errorf("ParseCID(%q) = %v, %v", tt.in, got, err)
		}
		if !tt.ok && !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseCID(%q): %v, want ErrBadInput", tt.in, err)
		}
	}
}
