package license_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/allmende/allmende/policy/license"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want, why string }{
		{"apache-2.0", "Apache-2.0", "the Hub's most common tag"},
		{"MIT", "MIT", "an SPDX id in any case"},
		{"mit", "MIT", "a Hub tag"},
		{"cc-by-nc-4.0", "CC-BY-NC-4.0", "a Creative Commons tag"},
		{"Apache-2.0", "Apache-2.0", "already an SPDX id"},
		{"gpl-3.0", "GPL-3.0-only", "the Hub's GPL tags name no 'or later'"},
		{"odc-by", "ODC-By-1.0", "a data licence with its version added"},
		{"llama3", "LicenseRef-llama3", "a model licence the SPDX list lacks"},
		{"llama3.1", "LicenseRef-llama3.1", "dots are kept"},
		{"bigscience-openrail-m", "LicenseRef-bigscience-openrail-m", "a RAIL licence"},
		{"openrail++", "LicenseRef-openrail", "characters an SPDX ref cannot hold go"},
		{"LicenseRef-gemma", "LicenseRef-gemma", "a LicenseRef stays one"},
		{"licenseref-gemma", "LicenseRef-gemma", "its prefix in any case"},
		{"other", "", "other is unknown"},
		{"unknown", "", "unknown is unknown"},
		{"  ", "", "empty is unknown"},
		{"!!!", "", "nothing left after cleaning"},
		{strings.Repeat("x", 200), "LicenseRef-" + strings.Repeat("x", license.MaxIDLen-len("LicenseRef-")), "a long tag is cut"},
	}
	for _, tt := range tests {
		if got := license.Normalize(tt.in); got != tt.want {
			t.Errorf("%s: Normalize(%q) = %q, want %q", tt.why, tt.in, got, tt.want)
		}
	}
}

func TestTextURLAndFile(t *testing.T) {
	urls := []struct{ id, want string }{
		{"Apache-2.0", "https://spdx.org/licenses/Apache-2.0.html"},
		{"CC-BY-NC-4.0", "https://spdx.org/licenses/CC-BY-NC-4.0.html"},
		{"apache-2.0", ""}, // not canonical: normalise first
		{"LicenseRef-llama3", ""},
		{"", ""},
	}
	for _, tt := range urls {
		if got := license.TextURL(tt.id); got != tt.want {
			t.Errorf("TextURL(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	files := []struct {
		why   string
		paths []string
		want  string
	}{
		{"LICENSE at the top", []string{"config.json", "LICENSE", "model.safetensors"}, "LICENSE"},
		{"LICENSE preferred to LICENSE.txt", []string{"LICENSE.txt", "LICENSE"}, "LICENSE"},
		{"a lower-case licence.md", []string{"licence.md"}, "licence.md"},
		{"COPYING", []string{"COPYING"}, "COPYING"},
		{"only at the top level", []string{"sub/LICENSE"}, ""},
		{"none", []string{"README.md", "USE_POLICY.md"}, ""},
	}
	for _, tt := range files {
		if got := license.File(tt.paths); got != tt.want {
			t.Errorf("%s: File = %q, want %q", tt.why, got, tt.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		why         string
		allow, deny []string
		unknown     string
		license     string
		allowed     bool
		whyContains string
	}{
		{why: "no policy allows everything", license: "LicenseRef-llama3", allowed: true},
		{why: "no policy allows an unknown licence", license: "", allowed: true},
		{why: "unknown: deny refuses a card saying other", unknown: "deny", license: "other", whyContains: "unknown"},
		{why: "a denied id, written as a Hub tag in the config", deny: []string{"cc-by-nc-4.0"}, license: "CC-BY-NC-4.0", whyContains: "policy.licenses.deny (cc-by-nc-4.0)"},
		{why: "a deny pattern", deny: []string{"CC-BY-NC-*"}, license: "cc-by-nc-sa-4.0", whyContains: "CC-BY-NC-SA-4.0 is denied"},
		{why: "a pattern does not reach other licences", deny: []string{"CC-BY-NC-*"}, license: "cc-by-4.0", allowed: true},
		{why: "an allow list admits its licences", allow: []string{"apache-2.0", "MIT"}, license: "mit", allowed: true},
		{why: "an allow list refuses the rest", allow: []string{"apache-2.0", "MIT"}, license: "llama3", whyContains: "LicenseRef-llama3 is not in policy.licenses.allow"},
		{why: "deny wins over allow", allow: []string{"*"}, deny: []string{"LicenseRef-*"}, license: "gemma", whyContains: "denied"},
		{why: "an allow list leaves unknown to its setting", allow: []string{"MIT"}, license: "", allowed: true},
		{why: "OR: one allowed alternative suffices", allow: []string{"MIT"}, license: "llama3 OR mit", allowed: true},
		{why: "AND: every part must be allowed", allow: []string{"MIT"}, license: "MIT AND llama3", whyContains: "LicenseRef-llama3"},
		{why: "AND: every part allowed", allow: []string{"MIT", "Apache-2.0"}, license: "mit and apache-2.0", allowed: true},
	}
	for _, tt := range tests {
		p, err := license.NewPolicy(tt.allow, tt.deny, tt.unknown)
		if err != nil {
			t.Fatalf("%s: %v", tt.why, err)
		}
		d := p.Decide(tt.license)
		if d.Allowed != tt.allowed || !strings.Contains(d.Why, tt.whyContains) {
			t.Errorf("%s: %+v", tt.why, d)
		}
		err = d.Err("acme/tiny")
		if tt.allowed != (err == nil) || (err != nil && (!errors.Is(err, license.ErrDenied) || !strings.HasPrefix(err.Error(), "acme/tiny: "))) {
			t.Errorf("%s: Err = %v", tt.why, err)
		}
	}
	var zero license.Policy
	if !zero.Decide("anything").Allowed {
		t.Error("the zero policy must allow")
	}
}

func TestNewPolicyRefuses(t *testing.T) {
	tests := []struct {
		why         string
		allow, deny []string
		unknown     string
	}{
		{why: "unknown is allow or deny", unknown: "maybe"},
		{why: "an unknown licence in a list", deny: []string{"other"}},
		{why: "a bad pattern", allow: []string{"CC-[BY"}},
		{why: "too many patterns", deny: make([]string, license.MaxPatterns+1)},
	}
	for i := range tests[3].deny {
		tests[3].deny[i] = "MIT"
	}
	for _, tt := range tests {
		if _, err := license.NewPolicy(tt.allow, tt.deny, tt.unknown); !errors.Is(err, license.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.why, err)
		}
	}
}

func TestParseCard(t *testing.T) {
	tests := []struct {
		why  string
		card string
		id   string
		ok   bool
	}{
		{"a single tag", "---\nlicense: apache-2.0\nlanguage: en\n---\n# Model\n", "Apache-2.0", true},
		{"other with a name", "---\nlicense: other\nlicense_name: llama3\nlicense_link: LICENSE\n---\n", "LicenseRef-llama3", true},
		{"a list: every licence applies", "---\nlicense:\n- mit\n- cc-by-4.0\n---\n", "MIT AND CC-BY-4.0", true},
		{"CRLF lines", "---\r\nlicense: mit\r\n---\r\n", "MIT", true},
		{"no licence field", "---\ntags: [x]\n---\n", "", true},
		{"other without a name is unknown", "---\nlicense: other\n---\n", "", true},
		{"no front matter", "# Model\nlicense: mit\n", "", false},
		{"no closing line", "---\nlicense: mit\n", "", false},
		{"not YAML", "---\nlicense: [unclosed\n---\n", "", false},
		{"a licence that is a map", "---\nlicense: {a: b}\n---\n", "", false},
		{"front matter too large", "---\n" + strings.Repeat("# pad\n", license.MaxFrontMatter/6+1) + "license: mit\n---\n", "", false},
	}
	for _, tt := range tests {
		c, err := license.ParseCard(strings.NewReader(tt.card))
		if (err == nil) != tt.ok || c.ID() != tt.id {
			t.Errorf("%s: ID %q, err %v; want %q", tt.why, c.ID(), err, tt.id)
		}
	}
	c, _ := license.ParseCard(strings.NewReader("---\nlicense: other\nlicense_name: llama3\nlicense_link: LICENSE\n---\n"))
	if c.Link != "LICENSE" || c.Name != "llama3" {
		t.Errorf("license_link and license_name: %+v", c)
	}
}

func TestNormalizeExpr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mit or apache-2.0", "MIT OR Apache-2.0"},
		{"MIT AND llama3 OR gpl-3.0", "MIT AND LicenseRef-llama3 OR GPL-3.0-only"},
		{"other OR mit", "MIT"},
		{"other", ""},
	}
	for _, tt := range tests {
		if got := license.NormalizeExpr(tt.in); got != tt.want {
			t.Errorf("NormalizeExpr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseCard(f *testing.F) {
	f.Add([]byte("---\nlicense: other\nlicense_name: llama3\n---\n"))
	f.Add([]byte("---\nlicense:\n- mit\n- cc-by-4.0\n---\nbody"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := license.ParseCard(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		if len(c.Licenses) > license.MaxExprTerms {
			t.Fatalf("%d licences", len(c.Licenses))
		}
		// Whatever a card says, the id is a well-formed expression the
		// policy can decide on.
		id := c.ID()
		if id != "" && license.NormalizeExpr(id) != id {
			t.Fatalf("ID %q does not normalise to itself (%q)", id, license.NormalizeExpr(id))
		}
		p, _ := license.NewPolicy([]string{"MIT"}, nil, "deny")
		p.Decide(id)
	})
}

func FuzzDecide(f *testing.F) {
	f.Add("MIT OR llama3 AND apache-2.0")
	f.Fuzz(func(t *testing.T, expr string) {
		p, _ := license.NewPolicy(nil, []string{"CC-BY-NC-*"}, "deny")
		d := p.Decide(expr)
		if d.Allowed && strings.HasPrefix(strings.ToLower(d.License), "cc-by-nc-") {
			t.Fatalf("%q allowed as %q", expr, d.License)
		}
	})
}
