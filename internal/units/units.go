// Package units parses the byte sizes and durations people write in
// configuration files and flags, strictly: a value means exactly one number
// or it is an error that says what is accepted. Nothing is guessed, so a
// typo never turns a limit into "no limit". It also formats byte counts for
// people (HumanBytes).
package units

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// MaxSizeLen bounds the text ParseSize reads; no real size is longer.
const MaxSizeLen = 64

// Byte multiples: SI units are powers of 1000, IEC units powers of 1024.
const (
	KB  = 1000
	MB  = 1000 * KB
	GB  = 1000 * MB
	TB  = 1000 * GB
	PB  = 1000 * TB
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
	TiB = 1 << 40
	PiB = 1 << 50
)

// sizeUnits are the unit spellings ParseSize accepts, case-sensitively:
// "Mb" (megabit) or "mb" (millibit) would be a guess, and "10M" or "10G"
// do not say whether 1000 or 1024 is meant.
var sizeUnits = map[string]int64{
	"B":  1,
	"kB": KB, "KB": KB, "KiB": KiB,
	"MB": MB, "MiB": MiB,
	"GB": GB, "GiB": GiB,
	"TB": TB, "TiB": TiB,
	"PB": PB, "PiB": PiB,
}

// SizeSyntax describes what ParseSize accepts, for error messages.
const SizeSyntax = "a whole number of bytes or a number with a unit: B, kB/KB, MB, GB, TB, PB (powers of 1000) or KiB, MiB, GiB, TiB, PiB (powers of 1024), e.g. 512MB, 10GiB, 1.5TB"

// ErrSyntax is returned (wrapped) for text that is not a size or duration.
var ErrSyntax = errors.New("invalid syntax")

// ErrRange is returned (wrapped) for a size above math.MaxInt64 bytes or a
// negative duration.
var ErrRange = errors.New("out of range")

// ParseSize parses a byte size: decimal digits, optionally a fraction, then
// optionally one space and a unit from SizeSyntax. A number without a unit
// (or with B) is a count of bytes and must be whole; with a larger unit a
// fraction is allowed and the result is rounded down to whole bytes
// ("1.5KiB" is 1536). Surrounding white space is ignored; signs, exponents,
// digit separators ("1,5GB" is an error, not 15 GB) and anything else are
// errors.
func ParseSize(s string) (int64, error) {
	if len(s) > MaxSizeLen {
		return 0, fmt.Errorf("size %.20q...: %w: longer than %d characters", s, ErrSyntax, MaxSizeLen)
	}
	t := strings.TrimSpace(s)
	whole, rest := leadingDigits(t)
	frac := ""
	if strings.HasPrefix(rest, ".") {
		frac, rest = leadingDigits(rest[1:])
		if frac == "" {
			return 0, fmt.Errorf("size %q: %w: want digits after the decimal point", s, ErrSyntax)
		}
	}
	if whole == "" {
		return 0, fmt.Errorf("size %q: %w: want %s", s, ErrSyntax, SizeSyntax)
	}
	mult := int64(1)
	if unit := strings.TrimPrefix(rest, " "); unit != "" {
		m, ok := sizeUnits[unit]
		if !ok {
			return 0, fmt.Errorf("size %q: %w: unknown unit %q; want %s", s, ErrSyntax, unit, SizeSyntax)
		}
		mult = m
	}
	if mult == 1 && frac != "" {
		return 0, fmt.Errorf("size %q: %w: a number of bytes must be whole", s, ErrSyntax)
	}
	// (whole.frac × mult) exactly: scale by 10^len(frac), multiply, divide.
	n, _ := new(big.Int).SetString(whole+frac, 10)
	n.Mul(n, big.NewInt(mult))
	n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !n.IsInt64() {
		return 0, fmt.Errorf("size %q: %w: more than %d bytes", s, ErrRange, int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

// leadingDigits splits s after its leading ASCII digits.
func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// DurationSyntax describes what ParseDuration accepts, for error messages.
const DurationSyntax = `a number with a unit (ms, s, m, h), e.g. 90s, 2m, 1h30m`

// ParseDuration parses a non-negative duration as Go writes them ("90s",
// "1h30m", "0"). A bare number other than 0 is an error: 120 could mean
// seconds or nanoseconds.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w: want %s", s, ErrSyntax, DurationSyntax)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: %w: negative", s, ErrRange)
	}
	return d, nil
}
