package main

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestConfigLayers(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		key  string
		want []string
	}{
		{"the default profile bootstraps from public peers", nil, "bootstrap", nil},
		{"an empty variable clears a list instead of being ignored", map[string]string{"ALLMENDE_BOOTSTRAP": ""}, "bootstrap", []string{}},
		{"profile test keeps everything on loopback", map[string]string{"ALLMENDE_PROFILE": "test"}, "listen",
			[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}},
		{"lists come comma-separated from the environment", map[string]string{"ALLMENDE_MIRROR_ALLOW": "10.0.0.0/8, 192.168.1.0/24"}, "mirror.allow",
			[]string{"10.0.0.0/8", "192.168.1.0/24"}},
		{"the environment beats the profile", map[string]string{"ALLMENDE_PROFILE": "test", "ALLMENDE_LISTEN": "/ip4/10.0.0.1/tcp/4001"}, "listen",
			[]string{"/ip4/10.0.0.1/tcp/4001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("ALLMENDE_PROFILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			g := &globalOptions{home: filepath.Join(t.TempDir(), "home")}
			v, _, err := loadConfig(g, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := stringList(v, tt.key)
			if tt.want == nil {
				if len(got) == 0 {
					t.Errorf("%s is empty, want the default list", tt.key)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}
