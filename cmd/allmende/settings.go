package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/allmende/allmende/internal/units"
	"github.com/allmende/allmende/policy/denylist"
	"github.com/spf13/viper"
)

// zeroPolicy says whether a size or duration key may be 0 (or empty).
type zeroPolicy bool

const (
	// zeroIsOff: the key documents 0 (or empty) as "off" or "no limit".
	zeroIsOff zeroPolicy = true
	// positive: the key needs a value above 0.
	positive zeroPolicy = false
)

// settings reads typed values from a layered configuration strictly. Every
// value that does not parse is recorded as an error naming its key and the
// value; err returns them all, as a usage error (exit status 2).
//
// viper's own getters return 0 or false for what they cannot read, so a
// quota of "10GiG" or mdns.enabled "yes" (YAML 1.2 reads it as a string)
// would silently mean "no quota" or "off".
type settings struct {
	v    *viper.Viper
	errs []error
}

func (s *settings) fail(key string, val any, why string) {
	s.errs = append(s.errs, fmt.Errorf("config key %s: value %q: %s", key, fmt.Sprint(val), why))
}

// err is nil or every error recorded so far.
func (s *settings) err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return usageError{errors.Join(s.errs...)}
}

func (s *settings) str(key string) string { return s.v.GetString(key) }

// size reads a byte size (units.ParseSize); YAML numbers are bytes.
func (s *settings) size(key string, zero zeroPolicy) int64 {
	var n int64
	switch x := s.v.Get(key).(type) {
	case nil:
	case string:
		if strings.TrimSpace(x) == "" {
			break
		}
		var err error
		if n, err = units.ParseSize(x); err != nil {
			s.fail(key, x, "not a size: want "+units.SizeSyntax)
			return 0
		}
	case int, int64, uint64, uint, int32, uint32, float64:
		var ok bool
		if n, ok = wholeNumber(x); !ok {
			s.fail(key, x, "not a size: want "+units.SizeSyntax)
			return 0
		}
	default:
		s.fail(key, x, "not a size: want "+units.SizeSyntax)
		return 0
	}
	return s.checkZero(key, s.v.Get(key), n, zero)
}

// duration reads a duration (units.ParseDuration); a YAML number is an
// error unless it is 0.
func (s *settings) duration(key string, zero zeroPolicy) time.Duration {
	var d time.Duration
	switch x := s.v.Get(key).(type) {
	case nil:
	case time.Duration:
		d = x
	case string:
		if strings.TrimSpace(x) == "" {
			break
		}
		var err error
		if d, err = units.ParseDuration(x); err != nil {
			s.fail(key, x, "not a duration: want "+units.DurationSyntax)
			return 0
		}
	default:
		if n, ok := wholeNumber(x); !ok || n != 0 {
			s.fail(key, x, "not a duration: want "+units.DurationSyntax)
			return 0
		}
	}
	if d < 0 {
		s.fail(key, d, "negative")
		return 0
	}
	return time.Duration(s.checkZero(key, s.v.Get(key), int64(d), zero))
}

func (s *settings) checkZero(key string, raw any, n int64, zero zeroPolicy) int64 {
	if n == 0 && zero == positive {
		s.fail(key, orEmpty(raw), "must be more than 0")
	}
	return n
}

// integer reads a whole number above 0.
func (s *settings) integer(key string) int {
	raw := s.v.Get(key)
	n, ok := wholeNumber(raw)
	if str, isStr := raw.(string); isStr {
		v, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64)
		n, ok = v, err == nil && v >= 0
	}
	if !ok || n > math.MaxInt32 {
		s.fail(key, orEmpty(raw), "not a whole number")
		return 0
	}
	return int(s.checkZero(key, raw, n, positive))
}

// boolean reads true or false (or, from the environment, what
// strconv.ParseBool accepts). YAML 1.1's yes/no/on/off are errors: YAML
// 1.2 reads them as strings, and guessing is how "off" became "on".
func (s *settings) boolean(key string) bool {
	switch x := s.v.Get(key).(type) {
	case bool:
		return x
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b
		}
	}
	s.fail(key, orEmpty(s.v.Get(key)), "not a boolean: want true or false")
	return false
}

// oneOf reads a string that must be one of choices.
func (s *settings) oneOf(key string, choices ...string) string {
	v := s.v.GetString(key)
	if !slices.Contains(choices, v) {
		s.fail(key, v, "want one of "+strings.Join(choices, ", "))
	}
	return v
}

// wholeNumber converts a YAML number to int64 if it is a whole, non-negative one.
func wholeNumber(x any) (int64, bool) {
	switch n := x.(type) {
	case int:
		return int64(n), n >= 0
	case int32:
		return int64(n), n >= 0
	case int64:
		return n, n >= 0
	case uint:
		return int64(n), uint64(n) <= math.MaxInt64
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n >= 0 && n < math.MaxInt64 && n == math.Trunc(n)
	}
	return 0, false
}

func orEmpty(x any) any {
	if x == nil {
		return ""
	}
	return x
}

// denylists reads the denylists list (paths and https URLs), refusing an
// entry policy/denylist would not accept.
func (s *settings) denylists(key string) []string {
	list := stringList(s.v, key)
	if len(list) > denylist.MaxLists {
		s.fail(key, strings.Join(list, ","), fmt.Sprintf("more than %d lists", denylist.MaxLists))
		return nil
	}
	for _, entry := range list {
		if _, err := denylist.ParseSource(entry); err != nil {
			s.fail(key, entry, "want a path or an https:// URL")
		}
	}
	return list
}
