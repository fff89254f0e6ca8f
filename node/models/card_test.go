package models

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestCardLicense(t *testing.T) {
	tests := []struct {
		name, card, want string
	}{
		{"a Hub tag", "---\nlicense: apache-2.0\n---\n# tiny\n", "Apache-2.0"},
		{"other with a name", "---\nlicense: other\nlicense_name: llama3\n---\n", "LicenseRef-llama3"},
		{"several licences", "---\nlicense: [mit, cc-by-4.0]\n---\n", "MIT AND CC-BY-4.0"},
		{"no front matter", "# just a readme\n", ""},
		{"no card", "", ""},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.card != "" {
				if err := os.WriteFile(filepath.Join(dir, cardFile), []byte(tt.card), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := cardLicense(dir, log); got != tt.want {
				t.Errorf("cardLicense = %q, want %q", got, tt.want)
			}
		})
	}
}
