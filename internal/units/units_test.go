package units

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error // nil: want parses to want
		why  string
	}{
		{"0", 0, nil, "zero is a size (keys that document it mean off)"},
		{"33554432", 32 * MiB, nil, "a bare number is bytes"},
		{"512B", 512, nil, "B is bytes"},
		{"10GiB", 10 * GiB, nil, "IEC units are powers of 1024"},
		{"10GB", 10 * GB, nil, "SI units are powers of 1000"},
		{"1.5TB", 1500 * GB, nil, "a fraction with a unit"},
		{"512MB", 512 * MB, nil, "the issue's example"},
		{"10MiB", 10 * MiB, nil, "mebibytes"},
		{"8kB", 8000, nil, "SI kilo is a small k"},
		{"8KB", 8000, nil, "KB is kilobytes too, as most people write it"},
		{"4KiB", 4096, nil, "kibibytes"},
		{"1.5KiB", 1536, nil, "an exact fraction"},
		{"1.1GiB", 1181116006, nil, "a fraction is rounded down to whole bytes"},
		{"2PiB", 2 * PiB, nil, "the largest unit"},
		{"10 GiB", 10 * GiB, nil, "one space before the unit"},
		{"  10GiB\n", 10 * GiB, nil, "surrounding white space is ignored"},
		{"0.5PB", 500 * TB, nil, "a fraction below one"},
		{"9223372036854775807", math.MaxInt64, nil, "the largest size"},
		{"8191PiB", 8191 * PiB, nil, "just below the largest"},

		{"", 0, ErrSyntax, "empty is not a size (keys that document it mean off, read elsewhere)"},
		{"10MiBs", 0, ErrSyntax, "unknown unit"},
		{"10mb", 0, ErrSyntax, "lower-case m is milli"},
		{"10Mb", 0, ErrSyntax, "Mb is megabits"},
		{"10gib", 0, ErrSyntax, "unit case matters"},
		{"10G", 0, ErrSyntax, "G alone does not say 1000 or 1024"},
		{"10M", 0, ErrSyntax, "M alone does not say 1000 or 1024"},
		{"10k", 0, ErrSyntax, "k alone does not say 1000 or 1024"},
		{"1,5GB", 0, ErrSyntax, "a decimal comma is not 15 GB"},
		{"1,000MB", 0, ErrSyntax, "no digit separators"},
		{"1_000MB", 0, ErrSyntax, "no Go digit separators"},
		{"-1GB", 0, ErrSyntax, "no negative sizes"},
		{"+1GB", 0, ErrSyntax, "no signs"},
		{"1e9", 0, ErrSyntax, "no exponents"},
		{"0x10", 0, ErrSyntax, "no hexadecimal"},
		{".5GB", 0, ErrSyntax, "a digit before the point"},
		{"5.GB", 0, ErrSyntax, "a digit after the point"},
		{"1.5", 0, ErrSyntax, "fractional bytes"},
		{"1.5B", 0, ErrSyntax, "fractional bytes with B"},
		{"10  GB", 0, ErrSyntax, "one space at most"},
		{"10\tGB", 0, ErrSyntax, "a tab is not the space"},
		{"GB", 0, ErrSyntax, "a unit without a number"},
		{"ten GB", 0, ErrSyntax, "words are not numbers"},
		{"١٠GB", 0, ErrSyntax, "only ASCII digits"},
		{"10GB 5MB", 0, ErrSyntax, "one number only"},
		{"unlimited", 0, ErrSyntax, "off is written 0"},
		{"9223372036854775808", 0, ErrRange, "one byte past the largest"},
		{"8192PiB", 0, ErrRange, "past the largest with a unit"},
		{"99999999999999999999999999999999999999999999999999999999999999TB", 0, ErrRange, "far past the largest"},
		{"1" + string(make([]byte, MaxSizeLen)), 0, ErrSyntax, "longer than MaxSizeLen"},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseSize(%q) = %d, %v; want %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  error
		why  string
	}{
		{"2m", 2 * time.Minute, nil, "minutes"},
		{"90s", 90 * time.Second, nil, "seconds"},
		{"1h30m", 90 * time.Minute, nil, "Go's compound form"},
		{"300ms", 300 * time.Millisecond, nil, "milliseconds"},
		{"0", 0, nil, "zero needs no unit"},
		{"120", 0, ErrSyntax, "a bare number could be seconds or nanoseconds"},
		{"2 minutes", 0, ErrSyntax, "words are not units"},
		{"", 0, ErrSyntax, "empty"},
		{"-5s", 0, ErrRange, "negative"},
		{"1d", 0, ErrSyntax, "no days"},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseSize checks that ParseSize never panics, that what it accepts is
// a subset of what go-humanize accepts with the same meaning (humanize
// multiplies in floating point, so large values agree only to its
// precision), and that its result reads back as itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "10GiB", "10GB", "1.5TB", "512MB", "1,5GB", "1.1GiB", "10 kB", "9223372036854775807", "8191.99PiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		back, err := ParseSize(strconv.FormatInt(n, 10))
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, which reads back as %d, %v", s, n, back, err)
		}
		h, err := humanize.ParseBytes(s)
		if err != nil {
			return // beyond humanize's float range; ours is exact
		}
		if diff := math.Abs(float64(h) - float64(n)); diff > 1 && diff > float64(n)*1e-12 {
			t.Fatalf("ParseSize(%q) = %d, humanize says %d", s, n, h)
		}
	})
}
