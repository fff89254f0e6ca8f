// Package configs holds allmende's embedded configuration: default.yaml
// (every key, documented) and the built-in profiles (profile-NAME.yaml).
package configs

import (
	"embed"
	"fmt"
)

//go:embed default.yaml profile-*.yaml
var files embed.FS

// Default returns default.yaml.
func Default() []byte {
	b, err := files.ReadFile("default.yaml")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Profile returns the overrides of the named built-in profile.
func Profile(name string) ([]byte, error) {
	b, err := files.ReadFile("profile-" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown profile %q (known: test)", name)
	}
	return b, nil
}
