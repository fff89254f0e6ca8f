package manifest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/allmende/allmende/store/manifest"
)

// hostilePaths is the corpus of file paths a malicious manifest may carry.
// Each is refused by ValidatePath and by Decode (the way a manifest from a
// peer comes in), so nothing is fetched or written for it.
var hostilePaths = []struct{ path, why string }{
	{"..", "the parent of the output"},
	{"../x", "dot-dot escapes the output"},
	{"a/../../x", "dot-dot in the middle escapes too"},
	{"a/..", "trailing dot-dot"},
	{"./x", "a dot segment is a second name for the same file"},
	{"a/.", "trailing dot segment"},
	{".", "the output itself"},
	{"/etc/passwd", "absolute"},
	{"//server/share", "absolute (UNC-like with slashes)"},
	{"/", "the root"},
	{`..\x`, "backslash dot-dot: a separator on Windows"},
	{`a\..\..\x`, "backslash traversal in the middle"},
	{`C:\x`, "a Windows drive path"},
	{`\\server\share\x`, "a UNC path"},
	{"a\x00", "NUL truncates C paths"},
	{"\x00../x", "NUL hiding a traversal"},
	{"a\nb", "a newline forges log and progress lines"},
	{"\x1b[2Jx", "an escape sequence rewrites the terminal"},
	{"a\tb", "a tab, a control character too"},
	{"a\x7f", "DEL"},
	{"a//b", "empty segment"},
	{"a/", "trailing slash"},
	{"", "empty"},
	{"\xff\xfe", "not UTF-8"},
	{"\xc0\xae\xc0\xae/x", "overlong UTF-8 dots"},
	{strings.Repeat("a/", manifest.MaxPathDepth) + "b", "too deep"},
	{strings.Repeat("a", manifest.MaxPathLen+1), "too long"},
}

// collidingPaths are pairs that name one file on a case-insensitive or
// normalising file system (macOS, Windows): a manifest with both would let
// the second overwrite the first after it was verified.
var collidingPaths = []struct{ a, b, why string }{
	{"Model.bin", "model.bin", "case"},
	{"DIR/x", "dir", "a file and a directory differing in case"},
	{"caf\u00e9.txt", "cafe\u0301.txt", "NFC: precomposed and decomposed é"},
	{"\u212a.bin", "k.bin", "the Kelvin sign folds to k"},
	{"\u212b", "\u00e5", "the Ångström sign is Å after NFC, å after folding"},
	{"x.bin", "x.bin", "exact duplicate"},
	{"a", "a/b", "a file cannot also be a directory"},
}

// hostileManifest is a manifest with files at paths, encoded as a peer
// would send it (json.Marshal, since Encode may refuse it).
func hostileManifest(t *testing.T, paths ...string) []byte {
	t.Helper()
	m := sample()
	m.Files = nil
	for _, p := range paths {
		m.Files = append(m.Files, manifest.File{Path: p, Size: 1, SHA256: strings.Repeat("1", 64), CID: testCID})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestHostilePathCorpus(t *testing.T) {
	for _, c := range hostilePaths {
		t.Run(c.why, func(t *testing.T) {
			if err := manifest.ValidatePath(c.path); !errors.Is(err, manifest.ErrInvalid) {
				t.Errorf("ValidatePath(%q) = %v, want ErrInvalid", c.path, err)
			}
			if _, err := manifest.Decode(hostileManifest(t, "ok.bin", c.path)); !errors.Is(err, manifest.ErrInvalid) {
				t.Errorf("Decode accepted a manifest with %q: %v", c.path, err)
			}
		})
	}
	for _, c := range collidingPaths {
		t.Run("collision: "+c.why, func(t *testing.T) {
			if _, err := manifest.Decode(hostileManifest(t, c.a, c.b)); !errors.Is(err, manifest.ErrInvalid) {
				t.Errorf("Decode accepted %q and %q together: %v", c.a, c.b, err)
			}
		})
	}
}

// TestBenignPathsAccepted guards the corpus from over-reach: names that
// only look odd are fine.
func TestBenignPathsAccepted(t *testing.T) {
	for _, c := range []struct{ path, why string }{
		{"..a", "dots inside a name are not a dot segment"},
		{"a..", "trailing dots inside a name"},
		{"%2e%2e/x", "percent signs are literal here; URLs are decoded before"},
		{".hidden/config", "a hidden directory"},
		{"tokenizer/vocab.txt", "nested"},
		{"caf\u00e9/x", "non-ASCII"},
		{"a:b.bin", "a colon is an ordinary character on Linux and macOS"},
	} {
		if err := manifest.ValidatePath(c.path); err != nil {
			t.Errorf("%q (%s): %v", c.path, c.why, err)
		}
	}
}
