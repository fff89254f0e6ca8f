package webpage

import (
	"bytes"
	"strings"
	"testing"

	"github.com/allmende/allmende/node/api"
	"github.com/allmende/allmende/store/manifest"
)

// TestRenderLicensesAndAttestations: each model's licence links to its
// text (the SPDX page, else the model's own licence file), and the keys
// that attested it are named, trusted or not.
func TestRenderLicensesAndAttestations(t *testing.T) {
	const (
		trustedKey   = "12D3KooWTrustedMirrorKey"
		untrustedKey = "12D3KooWSomeOtherKey"
	)
	model := func(name, lic string, paths ...string) *manifest.Manifest {
		m := &manifest.Manifest{Kind: manifest.KindModel, Name: name, Revision: "main", License: lic}
		for _, p := range paths {
			m.Files = append(m.Files, manifest.File{Path: p, Size: 10})
		}
		return m
	}
	tests := []struct {
		why  string
		held Held
		want []string
		not  []string
	}{
		{"an SPDX licence links to its SPDX page; attesters are named, trusted or not",
			Held{Manifest: model("acme/tiny", "apache-2.0", "config.json"), Attestations: []api.Attestation{
				{Signer: trustedKey, Trusted: true, Upstream: "https://huggingface.co", Commit: "abc123"},
				{Signer: untrustedKey},
			}},
			[]string{`<a href="https://spdx.org/licenses/Apache-2.0.html">Apache-2.0</a>`,
				trustedKey + `</code> <span class="trusted">(trusted)`, untrustedKey + `</code> <span class="muted">(not trusted here)`,
				"from https://huggingface.co", "abc123"},
			nil},
		{"a licence outside SPDX links to the model's own licence file",
			Held{Manifest: model("meta/llama", "llama3", "LICENSE", "model.safetensors")},
			[]string{`<a href="/meta/llama/resolve/main/LICENSE">LicenseRef-llama3</a>`},
			[]string{"Attested by"}},
		{"an expression links each licence and shows the expression",
			Held{Manifest: model("acme/dual", "mit OR apache-2.0", "a.bin")},
			[]string{`<a href="https://spdx.org/licenses/MIT.html">MIT</a>`, `<a href="https://spdx.org/licenses/Apache-2.0.html">Apache-2.0</a>`,
				"(MIT OR Apache-2.0)"},
			nil},
		{"no licence says so",
			Held{Manifest: model("acme/nolicense", "", "a.bin")},
			[]string{"License: not stated"},
			[]string{"spdx.org"}},
		{"a licence outside SPDX without a licence file is named, unlinked",
			Held{Manifest: model("acme/custom", "my-terms", "a.bin")},
			[]string{"License: LicenseRef-my-terms"},
			[]string{"<a href=\"\""}},
	}
	for _, tt := range tests {
		t.Run(tt.why, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, Page{Host: "mirror.lan", Models: Models([]Held{tt.held})}); err != nil {
				t.Fatal(err)
			}
			html := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(html, n) {
					t.Errorf("the page has %q", n)
				}
			}
			if t.Failed() {
				t.Log(html)
			}
		})
	}
}
