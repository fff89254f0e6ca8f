package manifest

import (
	"fmt"
	"regexp"
	"strings"
)

// Bounds on selection patterns.
const (
	// MaxPatterns is the most include plus exclude patterns.
	MaxPatterns = 256
	// MaxPatternLen is the longest pattern, in bytes.
	MaxPatternLen = 512
)

// Select returns the files matching at least one include pattern (all if
// none) and no exclude pattern. Patterns are globs as in huggingface_hub's
// allow_patterns (fnmatch): "*" and "?" also match "/", "[...]" is a
// class; a pattern ending in "/" matches everything below that directory.
func Select(files []File, include, exclude []string) ([]File, error) {
	if len(include)+len(exclude) > MaxPatterns {
		return nil, fmt.Errorf("more than %d patterns", MaxPatterns)
	}
	inc, err := compileGlobs(include)
	if err != nil {
		return nil, err
	}
	exc, err := compileGlobs(exclude)
	if err != nil {
		return nil, err
	}
	var out []File
	for _, f := range files {
		if (len(inc) == 0 || anyMatch(inc, f.Path)) && !anyMatch(exc, f.Path) {
			out = append(out, f)
		}
	}
	return out, nil
}

func anyMatch(res []*regexp.Regexp, p string) bool {
	for _, re := range res {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

func compileGlobs(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, p := range patterns {
		re, err := compileGlob(p)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// compileGlob translates an fnmatch pattern to an anchored regexp.
func compileGlob(p string) (*regexp.Regexp, error) {
	if p == "" || len(p) > MaxPatternLen {
		return nil, fmt.Errorf("pattern %q: empty or longer than %d bytes", p, MaxPatternLen)
	}
	if strings.HasSuffix(p, "/") {
		p += "*"
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := strings.IndexByte(p[i+1:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := p[i+1 : i+1+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	return re, nil
}
