// Package license owns what allmende knows of model licences: the licence
// tags of Hugging Face model cards as SPDX ids, where each licence's text
// is, a card's licence fields, and a node's licence policy (which licences
// it re-seeds and its mirror fills: policy.licenses). It has no network or
// disk code.
package license

import (
	"regexp"
	"strings"
)

// Limits.
const (
	// MaxIDLen bounds one licence id; a longer tag is cut.
	MaxIDLen = 64
	// MaxExprTerms bounds the licences one expression (or card) names.
	MaxExprTerms = 16
)

// RefPrefix starts an SPDX id for a licence the SPDX list does not have.
const RefPrefix = "LicenseRef-"

// spdxURL is where the SPDX license list shows a licence's text.
const spdxURL = "https://spdx.org/licenses/"

// hubTags maps the licence tags the Hugging Face Hub offers in model and
// dataset cards to SPDX ids. Tags not here that are SPDX ids themselves
// (any case) are kept; others become LicenseRef-<tag>.
var hubTags = map[string]string{
	"apache-2.0": "Apache-2.0", "mit": "MIT", "afl-3.0": "AFL-3.0", "artistic-2.0": "Artistic-2.0",
	"bsl-1.0": "BSL-1.0", "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
	"bsd-3-clause-clear": "BSD-3-Clause-Clear", "c-uda": "C-UDA-1.0", "cc0-1.0": "CC0-1.0",
	"cc-by-2.0": "CC-BY-2.0", "cc-by-2.5": "CC-BY-2.5", "cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0",
	"cc-by-sa-3.0": "CC-BY-SA-3.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "cc-by-nc-2.0": "CC-BY-NC-2.0",
	"cc-by-nc-3.0": "CC-BY-NC-3.0", "cc-by-nc-4.0": "CC-BY-NC-4.0", "cc-by-nd-4.0": "CC-BY-ND-4.0",
	"cc-by-nc-nd-3.0": "CC-BY-NC-ND-3.0", "cc-by-nc-nd-4.0": "CC-BY-NC-ND-4.0",
	"cc-by-nc-sa-2.0": "CC-BY-NC-SA-2.0", "cc-by-nc-sa-3.0": "CC-BY-NC-SA-3.0",
	"cc-by-nc-sa-4.0": "CC-BY-NC-SA-4.0", "cdla-sharing-1.0": "CDLA-Sharing-1.0",
	"cdla-permissive-1.0": "CDLA-Permissive-1.0", "cdla-permissive-2.0": "CDLA-Permissive-2.0",
	"wtfpl": "WTFPL", "ecl-2.0": "ECL-2.0", "epl-1.0": "EPL-1.0", "epl-2.0": "EPL-2.0",
	"etalab-2.0": "etalab-2.0", "eupl-1.1": "EUPL-1.1", "eupl-1.2": "EUPL-1.2",
	// The Hub's GPL family tags name no "or later": SPDX's -only ids.
	"agpl-3.0": "AGPL-3.0-only", "gpl-2.0": "GPL-2.0-only", "gpl-3.0": "GPL-3.0-only",
	"lgpl-2.1": "LGPL-2.1-only", "lgpl-3.0": "LGPL-3.0-only", "gfdl": "GFDL-1.3-only",
	"isc": "ISC", "lppl-1.3c": "LPPL-1.3c", "ms-pl": "MS-PL", "mpl-2.0": "MPL-2.0",
	"odc-by": "ODC-By-1.0", "odbl": "ODbL-1.0", "osl-3.0": "OSL-3.0", "postgresql": "PostgreSQL",
	"ofl-1.1": "OFL-1.1", "ncsa": "NCSA", "unlicense": "Unlicense", "zlib": "Zlib", "pddl": "PDDL-1.0",
	"apple-ascl": "LicenseRef-apple-ascl",
}

// unknownTags say "no licence known".
var unknownTags = map[string]bool{"": true, "other": true, "unknown": true, "none": true, "noassertion": true}

// spdxIDs are the SPDX ids this package knows, by lower case.
var spdxIDs = func() map[string]string {
	m := make(map[string]string, len(hubTags))
	for _, id := range hubTags {
		if !strings.HasPrefix(id, RefPrefix) {
			m[strings.ToLower(id)] = id
		}
	}
	return m
}()

var refUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// Normalize maps one licence as a model card, the Hub or `allmende import
// --license` gives it to an SPDX id: a Hub tag to its SPDX id
// ("apache-2.0" → "Apache-2.0"), an SPDX id to its canonical case, a tag
// the SPDX list lacks to "LicenseRef-<tag>" ("llama3" →
// "LicenseRef-llama3"), and "", "other" or "unknown" to "" (unknown).
func Normalize(tag string) string {
	t := strings.TrimSpace(tag)
	low := strings.ToLower(t)
	if unknownTags[low] {
		return ""
	}
	if id, ok := hubTags[low]; ok {
		return id
	}
	if id, ok := spdxIDs[low]; ok {
		return id
	}
	if rest, ok := cutFold(t, RefPrefix); ok {
		t = rest
	}
	t = strings.Trim(refUnsafe.ReplaceAllString(t, "-"), "-")
	if t == "" {
		return ""
	}
	return RefPrefix + t[:min(len(t), MaxIDLen-len(RefPrefix))]
}

// cutFold is strings.CutPrefix without regard to case.
func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// IsSPDX reports whether id is an SPDX license list id this package knows
// (in canonical case), as opposed to a LicenseRef or unknown.
func IsSPDX(id string) bool {
	canon, ok := spdxIDs[strings.ToLower(id)]
	return ok && canon == id
}

// TextURL is where the text of licence id is: its page on the SPDX license
// list, or "" for a LicenseRef or unknown licence, whose text is the
// repository's own licence file (see File).
func TextURL(id string) string {
	if !IsSPDX(id) {
		return ""
	}
	return spdxURL + id + ".html"
}

// licenseFiles are the names a repository's licence text goes by, in the
// order File prefers them.
var licenseFiles = []string{"license", "license.md", "license.txt", "licence", "licence.md", "licence.txt",
	"copying", "copying.md", "copying.txt", "license.rst"}

// File returns the repository's licence file among paths (a manifest's
// file paths): LICENSE, LICENSE.md, LICENSE.txt, LICENCE or COPYING (any
// case) at the top level, or "" if there is none. The web page links it
// when TextURL has nothing.
func File(paths []string) string {
	best, rank := "", len(licenseFiles)
	for _, p := range paths {
		if strings.Contains(p, "/") {
			continue
		}
		for i, name := range licenseFiles[:rank] {
			if strings.EqualFold(p, name) {
				best, rank = p, i
				break
			}
		}
	}
	return best
}
