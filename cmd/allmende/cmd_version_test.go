package main

import (
	"runtime/debug"
	"testing"
)

func TestReadVersion(t *testing.T) {
	deps := []*debug.Module{
		{Path: libp2pModule, Version: "v0.51.0"},
		{Path: boxoModule, Version: "v0.40.0", Replace: &debug.Module{Path: boxoModule, Version: "v0.43.0"}},
	}
	tests := []struct {
		name           string
		bi             debug.BuildInfo
		linkedVersion  string
		linkedCommit   string
		version, commt string
		modified       bool
	}{
		{"a go install of a tagged release", debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Deps: deps},
			"", "", "v1.2.3", "", false},
		{"a build in a git clone with changes",
			debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			"", "", "(devel)", "abc123", true},
		{"a release build from packaging/ without a VCS stamp", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Deps: deps},
			"1.0.0", "def456", "1.0.0", "def456", false},
		{"the VCS stamp wins over the linked commit",
			debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Deps: deps, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}}},
			"", "def456", "(devel)", "abc123", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vi := readVersion(&tt.bi, tt.linkedVersion, tt.linkedCommit)
			if vi.Version != tt.version || vi.Commit != tt.commt || vi.Modified != tt.modified {
				t.Errorf("got version %q commit %q modified %v; want %q %q %v", vi.Version, vi.Commit, vi.Modified, tt.version, tt.commt, tt.modified)
			}
			if vi.Libp2p != "v0.51.0" || vi.Boxo != "v0.43.0" {
				t.Errorf("libp2p %q boxo %q; want v0.51.0 and the replacement v0.43.0", vi.Libp2p, vi.Boxo)
			}
		})
	}
}
